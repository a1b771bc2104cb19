"""Tool schemas: OpenAI function schemas from Python functions (type hints + docstring) or from JSON schema.

    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
        '''Get the current weather.

        Args:
            city: City name.
            unit: Temperature unit.
        '''

`tool_schema(get_weather)` gives {"type": "function", "function": {"name": "get_weather", "description": "Get the
current weather.", "parameters": {"type": "object", "properties": {...}, "required": ["city"]}}}.
Hints understood: str, int, float, bool, None, list[X], tuple[X, ...], set[X], dict[str, X], Optional[X] / X | None
(nullable), Literal[...] (enum), enum.Enum subclasses, dataclasses and TypedDicts (nested objects), Any.
Docstrings: Google style (`Args:`) and NumPy style (`Parameters` + dashes); `Returns:` becomes the tool's
ignored (the template has no use for it).
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from sealion.errors import SealionError


class ToolSchemaError(SealionError):
    """A Python function or schema that cannot describe a tool; the message names the function and parameter."""


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
           tuple: "array", set: "array", frozenset: "array", bytes: "string"}


def _literal_schema(values: tuple) -> dict:
    kinds = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if kinds <= {str}:
        schema["type"] = "string"
    elif kinds <= {bool}:
        schema["type"] = "boolean"
    elif kinds <= {int}:
        schema["type"] = "integer"
    elif kinds <= {int, float}:
        schema["type"] = "number"
    return schema


def _object_schema(cls: type, where: str) -> dict:
    hints = get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        names = list(fields)
    else:  # TypedDict
        names = list(hints)
        required = [n for n in names if n in getattr(cls, "__required_keys__", set(names))]
    docs = _param_docs(inspect.getdoc(cls) or "")
    properties = {}
    for name in names:
        prop = type_schema(hints[name], f"{where}.{name}")
        if name in docs:
            prop["description"] = docs[name]
        properties[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    summary = _summary(inspect.getdoc(cls) or "")
    if summary and not (dataclasses.is_dataclass(cls) and summary.startswith(cls.__name__ + "(")):
        schema["description"] = summary
    return schema


def type_schema(hint: Any, where: str = "value") -> dict:
    """A JSON schema for one type hint. `where` names the parameter in errors."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Literal:
        return _literal_schema(args)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        members = [a for a in args if a is not type(None)]
        nullable = len(members) != len(args)
        if len(members) == 1:
            schema = type_schema(members[0], where)
        else:
            schema = {"anyOf": [type_schema(a, where) for a in members]}
        if nullable:
            schema["nullable"] = True
        return schema
    if origin in (list, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Set, cabc.Iterable):
        schema = {"type": "array"}
        if args:
            schema["items"] = type_schema(args[0], f"{where}[]")
        return schema
    if origin is tuple:
        schema = {"type": "array"}
        if len(args) == 2 and args[1] is Ellipsis:
            schema["items"] = type_schema(args[0], f"{where}[]")
        elif args:
            schema["prefixItems"] = [type_schema(a, f"{where}[{i}]") for i, a in enumerate(args)]
        return schema
    if origin in (dict, cabc.Mapping, cabc.MutableMapping):
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = type_schema(args[1], f"{where}{{}}")
        return schema
    if origin is typing.Annotated:
        return type_schema(args[0], where)
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return _literal_schema(tuple(m.value for m in hint))
        if dataclasses.is_dataclass(hint) or typing.is_typeddict(hint):
            return _object_schema(hint, where)
        for base, name in _SIMPLE.items():
            if issubclass(hint, base):
                return {"type": name}
    raise ToolSchemaError(f"{where}: cannot describe type {hint!r} as JSON schema "
                          "(use str, int, float, bool, list[...], dict[...], Literal, Enum, a dataclass or TypedDict)")


# ------------------------------------------------------------------------------------------ docstrings

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Examples?|Notes?|"
                      r"See Also|Attributes|References|Warnings?)\s*:?\s*$")
_GOOGLE_ARG = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^\s*(\w+)\s*(?::\s*(.*))?$")


def _sections(doc: str) -> tuple[list[str], dict[str, list[str]]]:
    """Split a docstring into its summary lines and named sections (Google or NumPy headers)."""
    lines = doc.splitlines()
    summary: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _SECTION.match(line)
        numpy_rule = i + 1 < len(lines) and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1] or "")
        if match and (line.rstrip().endswith(":") or numpy_rule):
            name = match.group(1).lower()
            name = {"arguments": "args", "parameters": "args", "params": "args", "return": "returns"}.get(name, name)
            current = sections.setdefault(name, [])
            if numpy_rule:
                sections.setdefault("_numpy", []).append(name)
            i += 2 if numpy_rule else 1
            continue
        (current if current is not None else summary).append(line)
        i += 1
    return summary, sections


def _summary(doc: str) -> str:
    summary, _ = _sections(doc)
    return " ".join(" ".join(summary).split())


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _param_docs(doc: str) -> dict[str, str]:
    """Argument descriptions from a Google- or NumPy-style docstring."""
    _, sections = _sections(doc)
    lines = [ln for ln in sections.get("args", [])]
    out: dict[str, str] = {}
    entries = [ln for ln in lines if ln.strip()]
    if not entries:
        return out
    base = min(_indent(ln) for ln in entries)
    numpy = "args" in sections.get("_numpy", [])
    name = None
    for line in lines:
        if not line.strip():
            continue
        if _indent(line) == base and numpy:  # "name : type" then indented description lines
            match = _NUMPY_ARG.match(line)
            name = match.group(1) if match else None
            if name:
                out[name] = ""
            continue
        if _indent(line) == base:
            google = _GOOGLE_ARG.match(line)
            if google and (google.group(3) or google.group(2) is not None or line.rstrip().endswith(":")):
                name = google.group(1)
                out[name] = google.group(3).strip()
                continue
            numpy = _NUMPY_ARG.match(line)
            if numpy:
                name = numpy.group(1)
                out[name] = ""
                continue
            name = None
        elif name is not None:
            out[name] = (out[name] + " " + line.strip()).strip()
    return out


# ------------------------------------------------------------------------------------------ functions

def function_schema(fn: Callable) -> dict:
    """The OpenAI tool schema of a Python function, from its signature, type hints and docstring."""
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise ToolSchemaError("a tool must be a named function (lambdas have no usable name)")
    try:
        hints = get_type_hints(fn, include_extras=False)
    except Exception as e:  # unresolvable forward references
        raise ToolSchemaError(f"tool {name}: cannot read its type hints ({e})") from None
    doc = inspect.getdoc(fn) or ""
    docs = _param_docs(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in ("self", "cls"):
            continue
        hint = hints.get(param.name, inspect.Parameter.empty)
        prop = type_schema(hint, f"tool {name}, parameter {param.name}")
        if param.name in docs and docs[param.name]:
            prop["description"] = docs[param.name]
        if param.default is not inspect.Parameter.empty:
            if param.default is None:
                prop.setdefault("nullable", True)
        else:
            required.append(param.name)
        properties[param.name] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    # no `response` from `Returns:`: Gemma's declaration leaves a response block without an OBJECT type unclosed
    function: dict[str, Any] = {"name": name, "description": _summary(doc), "parameters": parameters}
    return {"type": "function", "function": function}


def tool_schema(tool: Any) -> dict:
    """An OpenAI tool schema from a Python function, an OpenAI tool dict, or a bare function schema."""
    if callable(tool) and not isinstance(tool, Mapping):
        return function_schema(tool)
    if not isinstance(tool, Mapping):
        raise ToolSchemaError(f"a tool must be a function or a JSON-schema dict, not {type(tool).__name__}")
    if "function" in tool:
        function = tool["function"]
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ToolSchemaError("tool.function.name: a tool schema needs a function name")
        return {"type": tool.get("type", "function"), "function": dict(function)}
    if isinstance(tool.get("name"), str):  # bare {"name", "description", "parameters"}
        return {"type": "function", "function": dict(tool)}
    raise ToolSchemaError("a tool schema needs {'type': 'function', 'function': {'name': ...}} or {'name': ...}")

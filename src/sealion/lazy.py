"""Package exports imported on first use, so that `sealion --help` (which imports every verb's parser, and with it
each area's package) does not pay torch's import time."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: `name` is imported from the submodule `homes[name]` when first used."""

    def __getattr__(name: str):
        if name in homes:
            return getattr(importlib.import_module(f".{homes[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

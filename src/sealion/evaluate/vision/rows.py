"""Rows of the vision tasks, in the hub datasets' own layouts, read from `--data` or the hub.

Each loader turns one dataset's columns into the runner's row shape (``id``, ``prompts``, ``label``,
``metadata``) plus ``images`` (checked bytes, in the order the model sees them) the way SEA-HELM's dataloaders
(``seahelm_tasks/vision/*/*_dataloader.py``) read the same datasets:

* ``cvqa`` (afaji/cvqa, split ``test``): rows of the language's ``Subset`` (``"('Indonesian', 'Indonesia')"`` ...),
  ``Question``, ``Options`` (4), ``Label`` 0-3 -> A-D, ``image``.
* ``marvl`` (floschne/marvl, split = language; English reads the Indonesian split's ``hypo_en``): ``hypothesis``,
  boolean ``label`` -> the language's true/false word, ``left_img`` then ``right_img``. Chinese is converted to
  simplified characters with OpenCC, as SEA-HELM does (skipped when `opencc` is not installed).
* ``world_cuisine`` (worldcuisines/vqa-v1.1, config task1 / task2, split ``test_large``): rows of the language
  (``id_formal``, ``zh_cn`` ...), prompt types 1, 3, 4 (task1) or 2 (task2); within each type the correct option is
  moved to a position drawn by SEA-HELM's generator (seed 3722236, ``[0..4] * n/5`` shuffled); ``image_path`` is
  relative to the dataset folder.
* ``xm3600`` (floschne/xm3600, split = language, ``fil`` for tl): ``image_id``, ``captions`` (the references),
  ``image``.

Local data (`--data DIR[,DIR]`): under a root, the first of ``vision/<task>/``, ``seahelm_tasks/vision/<task>/``,
``<hub id>/`` and ``<hub name>/`` that exists is the dataset folder (a hub snapshot, e.g. ``huggingface-cli download
--repo-type dataset afaji/cvqa --local-dir DIR/afaji/cvqa``); in it (or its ``<config>/`` folder, then ``data/``) the
split's files ``<split>.parquet|jsonl|json`` or ``<split>-*.parquet``, or a ``datasets.save_to_disk`` folder
``<split>/``. Images may be embedded bytes, base64 data URLs or paths relative to the file or the dataset folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ...errors import DataError
from ..data import DataSource, MissingData
from .images import image_bytes

CVQA_SUBSETS = {"id": "('Indonesian', 'Indonesia')", "ms": "('Malay', 'Malaysia')",
                "tl": "('Filipino', 'Philippines')", "zh": "('Chinese', 'Singapore')", "ta": "('Tamil', 'India')", "jv": "('Javanese', 'Indonesia')",
                "su": "('Sundanese', 'Indonesia')"}
MARVL_LABELS = {"en": ("True", "False"), "id": ("Benar", "Salah"), "ta": ("உண்மை", "பொய்"), "zh": ("正确", "错误")}
WC_LANGS = {"id": "id_formal", "zh": "zh_cn", "jv": "jv_krama", "su": "su_loma"}
WC_PROMPT_TYPES = {"task1": (1, 3, 4), "task2": (2,)}
WC_SEED = 3722236  # SEA-HELM's WorldCuisineDataloader generator
XM3600_SPLITS = {"tl": "fil"}


class Table:
    """Rows of one split with where they came from (for error messages and relative image paths)."""

    def __init__(self, rows: list[dict], files: list[Path], root: Path | None, origins: list[tuple[Path, int]]):
        self.rows, self.files, self.root, self.origins = rows, files, root, origins

    def where(self, i: int) -> str:
        path, line = self.origins[i]
        return f"{path}: row {line}"

    def bases(self, i: int) -> list[Path]:
        return [p for p in (self.origins[i][0].parent, self.root) if p is not None]


def hub_split(loader: str, lang: str, task: str) -> tuple[str | None, str]:
    """(config, split) of the hub dataset for a language, as SEA-HELM loads it."""
    if loader == "cvqa":
        return None, "test"
    if loader == "marvl":
        return None, "id" if lang == "en" else lang
    if loader == "world_cuisine":
        return task.replace("-", "_").rsplit("_", 1)[-1], "test_large"
    return None, XM3600_SPLITS.get(lang, lang)


# --------------------------------------------------------------------------------------------------- reading


def _read_file(path: Path, where: tuple[str, Any] | None = None) -> list[dict]:
    """Rows of one file; `where` = (column, value) keeps only those rows of a parquet file while reading (CVQA holds
    every language's images in one split: reading them all would cost gigabytes)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if where is not None:
            try:
                return pq.read_table(path, filters=[(where[0], "==", where[1])]).to_pylist()
            except Exception:  # no such column: read everything, the loader names the missing column
                pass
        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:
            raise DataError(f"{path}: cannot read parquet ({type(e).__name__}: {str(e)[:160]})") from None
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise DataError(f"{path}: invalid JSON ({e})") from None
        rows = data.get("rows", data.get("data")) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a list of rows")
        return rows
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise DataError(f"{path}:{n}: invalid JSON ({e})") from None
    return rows


def _split_files(folder: Path, config: str | None, split: str) -> list[Path] | Path | None:
    """The split's data files in a dataset folder, or a save_to_disk folder; None when there are none."""
    for base in ([folder / config] if config else []) + [folder]:
        for d in (base, base / "data"):
            if (d / split / "state.json").is_file():
                return d / split
            if not d.is_dir():
                continue
            files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".parquet", ".jsonl", ".json")
                           and (p.stem == split or p.stem.startswith(split + "-")))
            if files:
                return files
    return None


def dataset_folder(source: DataSource, task_dir: str, hub: str | None) -> Path | None:
    names = [f"vision/{task_dir}", f"seahelm_tasks/vision/{task_dir}"]
    if hub:
        names += [hub, hub.split("/")[-1]]
    for root in source.roots:
        for name in names:
            if (root / name).is_dir():
                return root / name
    return None


def local_table(source: DataSource, task_dir: str, hub: str | None, config: str | None, split: str,
                task: str, lang: str, where: tuple[str, Any] | None = None) -> Table:
    folder = dataset_folder(source, task_dir, hub)
    if folder is None:
        raise MissingData(f"task {task!r} [{lang}]: no dataset folder vision/{task_dir}"
                          + (f" or {hub}" if hub else "") + f" under {source.describe()}")
    found = _split_files(folder, config, split)
    if found is None:
        raise MissingData(f"task {task!r} [{lang}]: no files of split {split!r}"
                          + (f" (config {config})" if config else "") + f" in {folder}")
    if isinstance(found, Path):  # datasets.save_to_disk
        import datasets

        ds = datasets.load_from_disk(str(found))
        ds = _undecoded(ds)
        rows = [dict(r) for r in ds]
        return Table(rows, [found], folder, [(found, i + 1) for i in range(len(rows))])
    rows, origins = [], []
    for f in found:
        part = _read_file(f, where)
        rows += part
        origins += [(f, i + 1) for i in range(len(part))]  # 1-based: the jsonl line, the parquet/json row
    return Table(rows, list(found), folder, origins)


def _undecoded(ds):
    """Image columns as {bytes, path} (decoding is ours: one error per bad row, not a crash inside datasets)."""
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds


def hub_table(hub: str, config: str | None, split: str, *, task: str, lang: str, snapshot: bool = False,
              where: tuple[str, Any] | None = None) -> Table:
    try:
        import datasets

        ds = _undecoded(datasets.load_dataset(hub, config, split=split))
        if where is not None and where[0] in ds.column_names:  # before the image bytes become Python objects
            ds = ds.filter(lambda v: v == where[1], input_columns=[where[0]])
        root = None
        if snapshot:  # WorldCuisines: image_path is relative to the dataset repository
            from huggingface_hub import snapshot_download

            root = Path(snapshot_download(repo_id=hub, repo_type="dataset"))
    except Exception as e:  # offline, gated, missing config: the pair is skipped with this line
        raise MissingData(f"task {task!r} [{lang}]: hub dataset {hub} [{config or 'default'}/{split}]: "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}") from None
    rows = [dict(r) for r in ds]
    origin = Path(f"hub:{hub}/{split}")
    return Table(rows, [], root, [(origin, i + 1) for i in range(len(rows))])


# --------------------------------------------------------------------------------------------------- loaders


def _need(row: dict, col: str, t: Table, i: int) -> Any:
    if col not in row:
        raise DataError(f"{t.where(i)}: no column {col!r} (has {', '.join(sorted(row))})")
    return row[col]


def _images(t: Table, i: int, cols: tuple[str, ...]) -> list[bytes]:
    out = []
    for c in cols:
        value = _need(t.rows[i], c, t, i)
        path = value.get("path") if isinstance(value, dict) and not value.get("bytes") else value
        base = None
        if isinstance(path, str) and not path.startswith("data:"):  # relative: the file's folder, else the dataset's
            bases = t.bases(i)
            base = next((b for b in bases if (b / path).exists()), bases[0] if bases else None)
        out.append(image_bytes(value, base=base, where=f"{t.where(i)} column {c!r}"))
    return out


def _options(t: Table, i: int, n: int) -> list[str]:
    opts = _need(t.rows[i], "Options" if "Options" in t.rows[i] else "options", t, i)
    if isinstance(opts, str):
        opts = json.loads(opts) if opts.startswith("[") else [opts]
    if not isinstance(opts, list) or len(opts) != n:
        raise DataError(f"{t.where(i)}: expected {n} options, got {opts!r:.120}")
    return [str(o) for o in opts]


def _index_label(value: Any, letters: str, t: Table, i: int, col: str) -> int:
    if isinstance(value, str) and value.strip().upper() in letters and value.strip():
        return letters.index(value.strip().upper())
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = -1
    if not 0 <= k < len(letters):
        raise DataError(f"{t.where(i)}: column {col!r} is {value!r}, not an option index 0-{len(letters) - 1} "
                        "(the public afaji/cvqa hides its answers as -1)")
    return k


def cvqa_rows(t: Table, lang: str, limit: int | None) -> list[dict]:
    subset = CVQA_SUBSETS.get(lang)
    keep = [i for i, r in enumerate(t.rows) if subset is None or _need(r, "Subset", t, i) == subset]
    out = []
    for i in keep[:limit] if limit else keep:
        r = t.rows[i]
        opts = _options(t, i, 4)
        k = _index_label(_need(r, "Label", t, i), "ABCD", t, i, "Label")
        out.append({"id": str(_need(r, "ID", t, i)), "label": "ABCD"[k],
                    "prompts": [{"question": str(_need(r, "Question", t, i)), **_letters(opts)}],
                    "images": _images(t, i, ("image",)),
                    "metadata": {"category": r.get("Category"), "subset": r.get("Subset"), "language": lang}})
    return out


def _letters(opts: list[str]) -> dict[str, str]:
    return {f"option_{'abcde'[j]}": o for j, o in enumerate(opts)}


def _truth(value: Any, t: Table, i: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DataError(f"{t.where(i)}: column 'label' is {value!r}, not true/false")


def marvl_rows(t: Table, lang: str, limit: int | None) -> list[dict]:
    convert: Callable[[str], str] = str
    if lang == "zh":
        try:
            import opencc
        except ImportError:
            raise MissingData("marvl [zh]: SEA-HELM converts the hypotheses to simplified Chinese with OpenCC; "
                              "install it (pip install opencc-python-reimplemented)") from None
        convert = opencc.OpenCC("t2s").convert
    true_word, false_word = MARVL_LABELS.get(lang, MARVL_LABELS["en"])
    out = []
    for i in range(min(limit, len(t.rows)) if limit else len(t.rows)):
        r = t.rows[i]
        text = _need(r, "hypo_en", t, i) if lang == "en" else convert(str(_need(r, "hypothesis", t, i)))
        out.append({"id": str(_need(r, "id", t, i)),
                    "label": true_word if _truth(_need(r, "label", t, i), t, i) else false_word,
                    "prompts": [{"hypothesis": str(text)}], "images": _images(t, i, ("left_img", "right_img")),
                    "metadata": {k: r.get(k) for k in ("chapter", "concept", "language")}})
    return out


def world_cuisine_rows(t: Table, lang: str, limit: int | None, task: str) -> list[dict]:
    import numpy as np

    want = WC_LANGS.get(lang, lang)
    keep = [i for i, r in enumerate(t.rows) if _need(r, "lang", t, i) == want]
    keep = keep[:limit] if limit else keep
    rng = np.random.default_rng(seed=WC_SEED)
    out = []
    for ptype in WC_PROMPT_TYPES.get(task, ()):
        subset = [i for i in keep if int(_need(t.rows[i], "prompt_type", t, i)) == ptype]
        # SEA-HELM: [0..4] * (n // 5), shuffled; a subset whose size is no multiple of 5 (a --limit slice) gets the
        # list for the next multiple of 5, cut to n (SEA-HELM would stop there)
        order = [0, 1, 2, 3, 4] * (-(-len(subset) // 5))
        rng.shuffle(order)
        for i, pos in zip(subset, order):
            r = t.rows[i]
            opts = _options(t, i, 5)
            gold = _index_label(_need(r, "mcq_answer_index", t, i), "ABCDE", t, i, "mcq_answer_index")
            correct = opts.pop(gold)
            opts.insert(pos, correct)
            out.append({"id": str(_need(r, "qa_id", t, i)), "label": "ABCDE"[pos],
                        "prompts": [{"question": str(_need(r, "question", t, i)), **_letters(opts)}],
                        "images": _images(t, i, ("image_path",)),
                        "metadata": {"language": lang, **{k: r.get(k) for k in
                                                          ("food_id", "prompt_id", "prompt_type", "task")}}})
    return out


def xm3600_rows(t: Table, lang: str, limit: int | None) -> list[dict]:
    out = []
    for i in range(min(limit, len(t.rows)) if limit else len(t.rows)):
        r = t.rows[i]
        caps = _need(r, "captions", t, i)
        if isinstance(caps, str):
            caps = json.loads(caps) if caps.startswith("[") else [caps]
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
            raise DataError(f"{t.where(i)}: column 'captions' must be a non-empty list of strings")
        out.append({"id": str(_need(r, "image_id", t, i)), "label": list(caps), "prompts": [{}],
                    "images": _images(t, i, ("image",)), "metadata": {"image_locale": r.get("image_locale")}})
    return out


LOADERS = {"cvqa": cvqa_rows, "marvl": marvl_rows, "world_cuisine": world_cuisine_rows, "xm3600": xm3600_rows}


def load_vision_rows(loader: str, *, task: str, lang: str, hub: str | None, source: DataSource,
                     limit: int | None) -> list[dict]:
    if loader not in LOADERS:
        raise DataError(f"task {task!r}: unknown vision loader {loader!r} (known: {', '.join(LOADERS)})")
    config, split = hub_split(loader, lang, task)
    where = (("Subset", CVQA_SUBSETS[lang]) if loader == "cvqa" and lang in CVQA_SUBSETS
             else ("lang", WC_LANGS.get(lang, lang)) if loader == "world_cuisine" else None)
    if source.kind == "hub":
        if not hub:
            raise MissingData(f"task {task!r} [{lang}]: no hub dataset")
        t = hub_table(hub, config, split, task=task, lang=lang, snapshot=loader == "world_cuisine", where=where)
    else:
        t = local_table(source, loader, hub, config, split, task, lang, where)
    if loader == "world_cuisine":
        return world_cuisine_rows(t, lang, limit, config or "")
    return LOADERS[loader](t, lang, limit)

"""`merge(config, out_dir)`: plan, stream every tensor through its method into planned shards, copy the base's
tokenizer/processor/config files, then publish the directory in one rename.

Crash safety: everything is written under `.<out>.sealion-merge/` beside the output. A shard is written as
`*.partial` and renamed when complete, so after a kill the finished shards are intact and `resume=True` skips them
(the plan's fingerprint must match). The output directory appears only when the merge is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ..errors import ConfigError, SealionError
from ..io import write_json, write_text
from . import chunked
from .config import MergeConfig, load_config, tensor_params
from .methods import merge_tensor
from .plan import Plan, TensorPlan, build_plan, read_config
from .tensor_io import INDEX_NAME, CheckpointReader, ShardWriter, shard_header

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".partial")
STATE_NAME = "sealion_merge_state.json"


@dataclass
class MergeSummary:
    out_dir: Path
    method: str
    family: str
    merged: list[str] = field(default_factory=list)
    copied: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    files_copied: list[str] = field(default_factory=list)
    shards: int = 0
    shards_resumed: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        reasons: dict[str, int] = {}
        for _, why in self.copied:
            reasons[why] = reasons.get(why, 0) + 1
        return {
            "out_dir": str(self.out_dir), "method": self.method, "family": self.family,
            "merged": len(self.merged), "copied": len(self.copied), "copied_by_reason": reasons,
            "dropped": [{"tensor": n, "reason": r} for n, r in self.dropped],
            "ignored": [{"tensor": n, "reason": r} for n, r in self.ignored][:50],
            "files_copied": self.files_copied, "shards": self.shards, "shards_resumed": self.shards_resumed,
            "bytes_written": self.bytes_written, "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        d = self.to_dict()
        lines = [f"merged {d['merged']} tensors with {self.method} ({self.family}); copied {d['copied']}"]
        for why, n in sorted(d["copied_by_reason"].items()):
            lines.append(f"  copied {n}: {why}")
        for n, r in self.dropped:
            lines.append(f"  not written: {n} ({r})")
        if self.ignored:
            lines.append(f"  skipped {len(self.ignored)} tensor(s) found only in non-base models")
        lines.append(f"  {self.shards} shard(s), {self.bytes_written / 1e9:.2f} GB, {self.shards_resumed} resumed, "
                     f"{self.seconds:.1f} s -> {self.out_dir}")
        return "\n".join(lines)


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().rstrip("B")
    mult = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(float(s))


def assign_shards(tensors: list[TensorPlan], shard_bytes: int) -> list[list[TensorPlan]]:
    shards: list[list[TensorPlan]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def shard_names(n: int) -> list[str]:
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def _fingerprint(cfg: MergeConfig, shards: list[list[TensorPlan]], dtype: str | None) -> str:
    payload = {
        "config": cfg.raw, "dtype": dtype, "seed": cfg.seed,
        "inputs": {str(s.path): _dir_stamp(s.path) for s in ([cfg.base] if cfg.base else []) + cfg.models},
        "shards": [[(t.name, t.action, str(t.source), str(t.dtype), t.shape) for t in sh] for sh in shards],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _dir_stamp(path: Path) -> list:
    return sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.glob("*.safetensors"))


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="merge", dynamic_ncols=True)


def merge(
    config_or_path,
    out_dir: str | os.PathLike,
    *,
    dtype: str | None = None,
    resume: bool = False,
    device: str = "cpu",
    shard_size: str | int = "5GB",
    overwrite: bool = False,
    progress: bool = True,
    chunk_elems: int = 1 << 24,
) -> MergeSummary:
    """Merge per a mergekit-style config (a path, a dict, or a MergeConfig) into `out_dir`."""
    start = time.monotonic()
    cfg = config_or_path if isinstance(config_or_path, MergeConfig) else load_config(config_or_path)
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here")

    paths = {s.path for s in cfg.models} | ({cfg.base.path} if cfg.base else set())
    readers = {p: CheckpointReader(p) for p in paths}
    try:
        plan = build_plan(cfg, readers, dtype)
        shards = assign_shards(plan.tensors, parse_size(shard_size))
        # resolve every tensor's parameters now, so a missing parameter fails before anything is written
        resolved = {t.name: _params_for(cfg, t) for t in plan.tensors if t.action == "merge"}
        summary = MergeSummary(out, cfg.method.name, plan.family, dropped=plan.dropped, ignored=plan.ignored)
        work = out.parent / f".{out.name}.sealion-merge"
        fp = _fingerprint(cfg, shards, dtype)
        _prepare_workdir(work, fp, resume)
        names = shard_names(len(shards))
        done = _finished_shards(work, names, shards)
        total = sum(t.nbytes for sh, nm in zip(shards, names) if nm not in done for t in sh)
        bar = _progress(total, progress)
        for sh, nm in zip(shards, names):
            if nm in done:
                summary.shards_resumed += 1
            else:
                _write_shard(work / nm, sh, cfg, readers, resolved, dev, chunk_elems, bar)
            for t in sh:
                (summary.merged.append(t.name) if t.action == "merge" else summary.copied.append((t.name, t.reason)))
            summary.bytes_written += sum(t.nbytes for t in sh)
        if bar is not None:
            bar.close()
        summary.shards = len(shards)
        weight_map = {t.name: nm for sh, nm in zip(shards, names) for t in sh}
        write_json(work / INDEX_NAME, {"metadata": {"total_size": summary.bytes_written}, "weight_map": weight_map})
        summary.files_copied = _copy_side_files(cfg, plan, work, dtype)
        summary.seconds = time.monotonic() - start
        write_text(work / "merge_config.yaml", yaml.safe_dump(cfg.raw, sort_keys=False))
        write_json(work / "sealion_merge.json", summary.to_dict())
        (work / STATE_NAME).unlink(missing_ok=True)
        _publish(work, out)
        return summary
    finally:
        for r in readers.values():
            r.close()


def _params_for(cfg: MergeConfig, t: TensorPlan):
    sl = cfg.slices[t.slice_index]
    sources = sl.sources
    if cfg.method.needs_base:
        sources = [s for s in sources if s.path != cfg.base.path]
    params, options = tensor_params(cfg, sl, t.name, t.t, sources)
    return sources, params, options


def _prepare_workdir(work: Path, fp: str, resume: bool) -> None:
    state = work / STATE_NAME
    if work.exists():
        old = json.loads(state.read_text()).get("fingerprint") if state.exists() else None
        if resume and old == fp:
            return
        if resume and old is not None:
            raise ConfigError(f"{work}: the unfinished merge there used a different config or inputs; "
                              "run without --resume to start over")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json(state, {"fingerprint": fp})


def _finished_shards(work: Path, names: list[str], shards: list[list[TensorPlan]]) -> set[str]:
    done = set()
    for nm, sh in zip(names, shards):
        p = work / nm
        expect = len(shard_header([(t.name, t.dtype, t.shape) for t in sh])) + sum(t.nbytes for t in sh)
        if p.exists() and p.stat().st_size == expect:
            done.add(nm)
    for p in work.glob("*.partial"):
        p.unlink()
    return done


_KILL_AFTER = os.environ.get("SEALION_MERGE_KILL_AFTER_TENSORS")  # test hook: simulate a crash mid-merge
_written = 0


def _write_shard(path: Path, shard, cfg, readers, resolved, dev, chunk_elems, bar) -> None:
    global _written
    tmp = path.with_name(path.name + ".partial")
    writer = ShardWriter(tmp, [(t.name, t.dtype, t.shape) for t in shard])
    try:
        for t in shard:
            def emit(block: torch.Tensor, t: TensorPlan = t) -> None:
                out = block.to("cpu").to(t.dtype)
                writer.write(t.name, out)
                if bar is not None:
                    bar.update(out.numel() * out.element_size())

            if t.action == "copy":
                r = readers[t.source]
                info = r.tensors[t.name]
                for r0, r1 in chunked.blocks(info.rows, max(1, info.numel // max(1, info.rows)), chunk_elems):
                    emit(r.read(t.name, r0, r1) if info.shape else r.read(t.name))
            else:
                _merge_one(t, cfg, readers, resolved[t.name], dev, chunk_elems, emit)
            _written += 1
            if _KILL_AFTER and _written >= int(_KILL_AFTER):
                os.kill(os.getpid(), 9)
        writer.finish()
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _merge_one(t: TensorPlan, cfg: MergeConfig, readers, resolved, dev, chunk_elems: int, emit) -> None:
    sources, params, options = resolved
    spec = cfg.method
    base_r = readers[cfg.base.path] if cfg.base else None
    info = (base_r or readers[sources[0].path]).tensors[t.name]
    math_dtype = torch.float64 if info.dtype == torch.float64 else torch.float32

    def read(r0: int | None = None, r1: int | None = None):
        def one(r):
            x = r.read(t.name) if r0 is None or not info.shape else r.read(t.name, r0, r1)
            return x.to(dev).to(math_dtype)
        return (one(base_r) if base_r is not None else None), [one(readers[s.path]) for s in sources]

    rows = info.rows
    row_elems = max(1, info.numel // max(1, rows))
    try:
        if info.numel > chunk_elems and info.shape and chunked.can_chunk(spec, params, options):
            chunked.run(spec, rows, row_elems, chunk_elems, read, emit, params, options)
        else:
            b, ms = read()
            emit(merge_tensor(spec, b, ms, params, options, seed=cfg.seed, tensor_name=t.name).reshape(info.shape))
    except ValueError as e:
        raise SealionError(f"{t.name}: {e}") from None


def _copy_side_files(cfg: MergeConfig, plan: Plan, work: Path, dtype: str | None) -> list[str]:
    """Config, generation config, tokenizer, processor and chat template from the base (tokenizer files from the
    tokenizer source); config.json's dtype follows the output."""
    anchor = (cfg.base or cfg.slices[0].sources[0]).path
    copied = []
    tok_dir = cfg.tokenizer_source or anchor
    tokenizer_like = ("tokenizer", "special_tokens", "vocab", "merges", "added_tokens", "chat_template", "spiece")
    for src_dir, pick in ((anchor, lambda n: not n.startswith(tokenizer_like)), (tok_dir, lambda n: n.startswith(tokenizer_like))):
        for p in sorted(src_dir.iterdir()):
            n = p.name
            if not p.is_file() or n.startswith(".") or n.endswith(WEIGHT_SUFFIXES) or n == INDEX_NAME:
                continue
            if n in ("sealion_merge.json", "merge_config.yaml", "mergekit_config.yml", "sealion_conversion.json", "README.md") or not pick(n):
                continue
            if n == "config.json":
                c = read_config(src_dir)
                out_dtypes = {str(t.dtype).replace("torch.", "") for t in plan.tensors if t.dtype.is_floating_point}
                if len(out_dtypes) == 1:
                    (d,) = out_dtypes
                    for holder in [c] + [c[k] for k in ("text_config", "vision_config", "audio_config") if isinstance(c.get(k), dict)]:
                        if "dtype" in holder or "torch_dtype" in holder or holder is c:
                            holder["dtype"] = d
                            holder.pop("torch_dtype", None)
                write_json(work / n, c)
            else:
                shutil.copy2(p, work / n)
            copied.append(n)
    return copied


def _publish(work: Path, out: Path) -> None:
    if out.exists():
        trash = out.parent / f".{out.name}.sealion-old"
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(out, trash)
        os.replace(work, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(work, out)

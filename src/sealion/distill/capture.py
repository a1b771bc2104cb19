"""`sealion distill capture`: score instruction data with the teacher and keep, for every assistant position,
its top-k token ids, log-probabilities and remaining mass, in compact resumable shards.

Backends:
* `transformers` (default): the teacher in-process, data-parallel over processes with torch.distributed
  (`torchrun` / `accelerate launch`): rank r writes shards r, r+world, ...; rank 0 writes the manifest.
* `vllm`: vLLM's prompt scoring (`prompt_logprobs=k`, one prefill per example, no generation) with tensor
  parallelism, for large teachers on GPUs. This path needs vLLM and a GPU; it is not exercised by the test suite.
* `served` (chosen when the teacher is an http(s) URL): one or more OpenAI-compatible servers that return vLLM's
  `prompt_logprobs` (vLLM, `sealion serve`), N of them for N data-parallel teacher instances, combined by weight
  (served.py).

Only the positions that predict assistant tokens are scored and stored (prompts carry no KD signal, and it
halves the cache). Each shard appears in one rename, so a killed run resumes at the first missing shard, and a
run over a finished capture with the same settings returns at once.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import io as sio
from ..errors import ConfigError, DataError
from .codec import CodecConfig, tail_logmass
from .data import Example, batches_of, collate, data_fingerprint, load_examples, tokenizer_fingerprint
from .losses import chunked_topk
from .modeling import barrier, hidden_states, init_distributed, load_model, load_tokenizer, output_projection, softcap_of
from .store import FORMAT, MANIFEST, shard_name, write_shard

BACKENDS = ("transformers", "vllm", "served")


@dataclass
class CaptureConfig:
    teacher: str
    data: list[str]
    out: str
    k: int = 64
    temperature: float = 1.0
    # temperatures whose tail mass is stored besides `temperature` (what training at those temperatures with
    # missing="tail" needs; None: 1 and 2 in-process, none for vLLM, which returns only the top-k)
    tail_temperatures: list[float] | None = None
    max_length: int = 2048
    shard_size: int = 256  # examples per shard
    batch_tokens: int = 4096  # tokens per teacher forward (examples are packed into rows)
    batch_rows: int = 8
    step: float = 1.0 / 64  # codec grid (nats)
    compressor: str = "lzma"
    backend: str = "transformers"
    dtype: str | None = None
    split: str = "train"
    data_config: str | None = None
    limit: int | None = None  # first N rows only
    tensor_parallel: int = 1  # vllm
    # served teachers (teacher is a URL): further URLs, the weights of all of them, the local tokenizer to render
    # the data with (default: the served model's id), requests in flight, retries per request
    extra_teachers: list[str] = field(default_factory=list)
    teacher_weights: list[float] | None = None
    tokenizer: str | None = None
    concurrency: int = 8
    retries: int = 4
    overwrite: bool = False
    progress: bool = True
    callback: Callable[[dict], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from .served import is_url

        if is_url(self.teacher):
            self.backend = "served"

    def validate(self) -> None:
        if self.backend == "served":
            from .served import parse_teachers

            parse_teachers(self.teacher, self.extra_teachers, self.teacher_weights)
            if self.temperature != 1.0:
                raise ConfigError("temperature: a served teacher's prompt log-probs are at temperature 1; capture "
                                  "at 1 and set the temperature at train time (with missing='zero' for T != 1)")
            if self.concurrency < 1 or self.retries < 0:
                raise ConfigError("concurrency must be >= 1 and retries >= 0")
        elif self.extra_teachers or self.teacher_weights:
            raise ConfigError("extra_teachers / teacher_weights: only served (URL) teachers can be combined")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if any(not t > 0 for t in self.tail_temperatures or []):
            raise ConfigError(f"tail_temperatures must all be > 0, got {self.tail_temperatures}")
        if self.backend != "transformers" and set(self.stored_tail_temperatures()) != {self.temperature}:
            raise ConfigError(f"tail_temperatures: backend {self.backend!r} returns only the top-k, so only the tail "
                              f"at the capture temperature ({self.temperature}) can be stored")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.shard_size < 1 or self.batch_tokens < 2 or self.batch_rows < 1:
            raise ConfigError("shard_size, batch_rows must be >= 1 and batch_tokens >= 2")
        if not self.data:
            raise ConfigError("data: give at least one file, directory or hub dataset")
        try:
            CodecConfig(step=self.step, compressor=self.compressor)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def stored_tail_temperatures(self) -> list[float]:
        """Every temperature whose tail the capture stores, the capture temperature first."""
        extra = ([1.0, 2.0] if self.backend == "transformers" else []) if self.tail_temperatures is None \
            else self.tail_temperatures
        return [float(self.temperature)] + sorted({float(t) for t in extra} - {float(self.temperature)})

    def identity(self) -> dict:
        """The settings a capture is defined by; a rerun must match them to resume or to be a no-op."""
        ident = {"teacher": self.teacher, "data": list(self.data), "k": self.k, "temperature": self.temperature,
                 "tail_temperatures": self.stored_tail_temperatures(),
                 "max_length": self.max_length, "shard_size": self.shard_size, "split": self.split,
                 "data_config": self.data_config, "limit": self.limit,
                 "codec": CodecConfig(self.step, self.compressor).to_dict()}
        if self.backend == "served":
            ident["teachers"] = [[e.url, e.weight] for e in self._endpoints()]
        return ident

    def _endpoints(self):
        from .served import parse_teachers

        return parse_teachers(self.teacher, self.extra_teachers, self.teacher_weights)


class HFTeacher:
    """The teacher in-process: packed forward passes, top-k from chunked lm_head projections."""

    def __init__(self, model, *, k: int, temperature: float, batch_tokens: int, batch_rows: int,
                 extra_temperatures: tuple[float, ...] = ()):
        self.model = model.eval()
        self.k, self.temperature = k, temperature
        self.extra_temperatures = tuple(extra_temperatures)
        self.batch_tokens, self.batch_rows = batch_tokens, batch_rows
        self.device = next(model.parameters()).device
        self.softcap = softcap_of(model)

    @torch.no_grad()
    def score(self, examples: list[Example]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per example: top-k ids, log-probs, tail log-mass at the capture temperature, and [n, m] tails at the
        extra temperatures."""
        results: list = [None] * len(examples)
        pad = self.model.config.get_text_config().pad_token_id or 0
        for batch_rows in batches_of(examples, batch_size=self.batch_rows, max_tokens=self.batch_tokens, pack_rows=True):
            rows = [[examples[i] for i in row] for row in batch_rows]
            b = collate(rows, pad_id=pad)
            h = hidden_states(self.model, b.input_ids.to(self.device), b.position_ids.to(self.device))
            h = h[b.score_rows.to(self.device), b.score_cols.to(self.device)]
            # temperature is applied to the logits (softcap first, as the model does)
            res = chunked_topk(h, *output_projection(self.model), self.k, softcap=self.softcap,
                               temperature=self.temperature, tail_temperatures=self.extra_temperatures)
            ids, lps, tails = (x.cpu().numpy() for x in res[:3])
            extra = res[3].cpu().numpy() if self.extra_temperatures else np.zeros((len(ids), 0), np.float32)
            flat = [i for row in batch_rows for i in row]
            for i, (s, e) in zip(flat, b.example_spans):
                results[i] = (ids[s:e], lps[s:e], tails[s:e], extra[s:e])
        return results


class VLLMTeacher:
    """The teacher behind vLLM's offline engine: prompt scoring only (max_tokens=1), top-k prompt logprobs.

    vLLM returns, for prompt position t, the top-k of p(. | tokens < t) plus the actual token t when it ranks
    below k; entries with rank > k are dropped. Logprobs are raw (`logprobs_mode="raw_logprobs"`): after the
    final soft-capping, before any sampling processing. Needs a GPU machine with vLLM installed.
    """

    def __init__(self, path: Path, *, k: int, temperature: float, tensor_parallel: int, max_length: int):
        try:
            from vllm import LLM, SamplingParams  # type: ignore
        except ImportError as e:
            raise ConfigError("backend 'vllm' needs vLLM (pip install 'sealion[vllm]' on a GPU machine)") from e
        if temperature != 1.0:
            raise ConfigError("backend 'vllm' captures at temperature 1 (raw logprobs); set temperature at train time")
        self.k = k
        self.llm = LLM(model=str(path), tensor_parallel_size=tensor_parallel, max_logprobs=k,
                       logprobs_mode="raw_logprobs", max_model_len=max_length + 1, enable_prefix_caching=False)
        self.params = SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=1, prompt_logprobs=k,
                                     detokenize=False)

    def score(self, examples: list[Example]):
        prompts = [{"prompt_token_ids": [int(t) for t in ex.input_ids]} for ex in examples]
        outputs = self.llm.generate(prompts, self.params, use_tqdm=False)
        results = []
        for ex, out in zip(examples, outputs):
            positions = np.nonzero(ex.target_mask[1:])[0]
            ids = np.zeros((len(positions), self.k), np.int64)
            lps = np.full((len(positions), self.k), -np.inf, np.float32)
            for row, t in enumerate(positions):
                entries = out.prompt_logprobs[t + 1] or {}
                top = sorted(((lp.rank, tok, lp.logprob) for tok, lp in entries.items() if lp.rank <= self.k))
                for j, (_, tok, lp) in enumerate(top[: self.k]):
                    ids[row, j], lps[row, j] = tok, lp
            results.append((ids, lps, tail_logmass(lps).astype(np.float32), np.zeros((len(ids), 0), np.float32)))
        return results


def _read_manifest(out: Path) -> dict | None:
    mf = out / MANIFEST
    if not mf.exists():
        return None
    try:
        return json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{mf}: invalid JSON ({getattr(e, 'msg', e)})") from None


def capture(cfg: CaptureConfig) -> dict:
    """Run (or resume, or skip) a capture. Returns the final manifest."""
    cfg.validate()
    out = Path(cfg.out)
    rank, world = init_distributed()
    ident = cfg.identity()
    existing = _read_manifest(out)
    if existing is not None and not cfg.overwrite:
        if existing.get("identity") != ident:
            diff = sorted(k for k in ident if existing.get("identity", {}).get(k) != ident[k])
            raise ConfigError(f"{out}: holds a capture with different settings ({', '.join(diff)}); "
                              "use another --out or --overwrite")
        if existing.get("complete"):
            if rank == 0:
                _emit(cfg, {"event": "done", "message": f"{out}: capture already complete, nothing to do"})
            return existing
    if existing is not None and cfg.overwrite and rank == 0:
        for p in out.glob("shard-*.npz"):
            p.unlink()
        (out / MANIFEST).unlink()
    barrier()

    tokenizer, _ = load_tokenizer(_tokenizer_ref(cfg))
    examples, report = load_examples(cfg.data, tokenizer, max_length=cfg.max_length, split=cfg.split,
                                     config=cfg.data_config, limit=cfg.limit, progress=cfg.progress and rank == 0)
    if not examples:
        raise DataError(f"no usable rows in {', '.join(cfg.data)} ({len(report.skipped)} skipped"
                        + (f"; first: {report.skipped[0]}" if report.skipped else "") + ")")
    fp = data_fingerprint(examples)
    tok_fp = tokenizer_fingerprint(tokenizer)
    if existing is not None and not cfg.overwrite:
        if existing.get("data_fingerprint") != fp or existing.get("tokenizer_fingerprint") != tok_fp:
            raise ConfigError(f"{out}: the data or tokenizer changed since this capture started "
                              "(fingerprints differ); use another --out or --overwrite")
    n_shards = math.ceil(len(examples) / cfg.shard_size)
    manifest = {
        "format": FORMAT, "identity": ident, "teacher": cfg.teacher, "tokenizer_fingerprint": tok_fp,
        "vocab_size": len(tokenizer), "k": cfg.k, "temperature": cfg.temperature,
        "tail_temperatures": cfg.stored_tail_temperatures(),
        "codec": CodecConfig(cfg.step, cfg.compressor).to_dict(), "data_fingerprint": fp,
        "backend": cfg.backend, "num_examples": len(examples), "num_shards": n_shards,
        "shard_size": cfg.shard_size, "data_report": report.summary(), "complete": False,
    }
    if rank == 0:
        sio.write_json(out / MANIFEST, manifest)
        for line in report.skipped[:20]:
            _emit(cfg, {"event": "skipped_row", "message": f"skipped {line}"})
    barrier()

    todo = [i for i in range(rank, n_shards, world) if not (out / shard_name(i)).exists()]
    if todo:
        _run_shards(cfg, out, examples, todo, rank)
    barrier()
    if rank != 0:
        return manifest
    return _finish(cfg, out, manifest, examples, report)


def _tokenizer_ref(cfg: CaptureConfig) -> str:
    """What to render the data with: the teacher, or for a served teacher --tokenizer, else the served model's id."""
    if cfg.tokenizer or cfg.backend != "served":
        return cfg.tokenizer or cfg.teacher
    from .served import ServedTeacher

    teacher = ServedTeacher(cfg._endpoints()[:1], k=cfg.k, retries=cfg.retries)
    try:
        return teacher.endpoints[0].model
    finally:
        teacher.close()


def _make_teacher(cfg: CaptureConfig):
    if cfg.backend == "served":
        from .served import ServedTeacher

        return ServedTeacher(cfg._endpoints(), k=cfg.k, concurrency=cfg.concurrency, retries=cfg.retries,
                             api_key=__import__("os").environ.get("OPENAI_API_KEY"))
    if cfg.backend == "vllm":
        from .modeling import resolve_path

        return VLLMTeacher(resolve_path(cfg.teacher), k=cfg.k, temperature=cfg.temperature,
                           tensor_parallel=cfg.tensor_parallel, max_length=cfg.max_length)
    model, _, _ = load_model(cfg.teacher, dtype=cfg.dtype)
    if torch.cuda.is_available():
        local = int(__import__("os").environ.get("LOCAL_RANK", "0"))
        model = model.to(f"cuda:{local}")
    return HFTeacher(model, k=cfg.k, temperature=cfg.temperature, batch_tokens=cfg.batch_tokens,
                     batch_rows=cfg.batch_rows, extra_temperatures=tuple(cfg.stored_tail_temperatures()[1:]))


def _run_shards(cfg: CaptureConfig, out: Path, examples: list[Example], todo: list[int], rank: int) -> None:
    teacher = _make_teacher(cfg)
    codec = CodecConfig(cfg.step, cfg.compressor)
    total = sum(len(examples[i * cfg.shard_size : (i + 1) * cfg.shard_size]) for i in todo)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"capture[rank {rank}]", unit="ex", position=rank)
    t0 = time.time()
    done_tokens = 0
    try:
        for i in todo:
            shard = examples[i * cfg.shard_size : (i + 1) * cfg.shard_size]
            scored = teacher.score(shard)
            ids = np.concatenate([s[0] for s in scored])
            lps = np.concatenate([s[1] for s in scored])
            tail = np.concatenate([s[2] for s in scored])
            extra = np.concatenate([s[3] for s in scored]).T
            nbytes = write_shard(out / shard_name(i), shard, ids, lps, tail, codec, extra_tails=extra)
            done_tokens += sum(len(e.input_ids) for e in shard)
            if bar is not None:
                bar.update(len(shard))
            _emit(cfg, {"event": "shard", "shard": i, "examples": len(shard), "positions": len(ids),
                        "bytes": nbytes, "tokens_per_s": done_tokens / max(time.time() - t0, 1e-9)})
    finally:
        if bar is not None:
            bar.close()


def _finish(cfg: CaptureConfig, out: Path, manifest: dict, examples: list[Example], report) -> dict:
    shards = []
    for i in range(manifest["num_shards"]):
        path = out / shard_name(i)
        if not path.exists():
            raise DataError(f"{path}: missing after capture (a rank failed?); rerun to finish")
        part = examples[i * cfg.shard_size : (i + 1) * cfg.shard_size]
        shards.append({"file": path.name, "examples": len(part), "tokens": int(sum(len(e.input_ids) for e in part)),
                       "positions": int(sum(e.target_mask[1:].sum() for e in part)), "bytes": path.stat().st_size})
    positions = sum(s["positions"] for s in shards)
    nbytes = sum(s["bytes"] for s in shards)
    manifest.update({
        "shards": shards, "complete": True, "positions": positions,
        "tokens": sum(s["tokens"] for s in shards), "bytes": nbytes,
        "bytes_per_position": round(nbytes / max(positions, 1), 2),
    })
    sio.write_json(out / MANIFEST, manifest)
    _emit(cfg, {"event": "done", "message": (
        f"{out}: {len(examples)} examples, {positions} scored positions, {nbytes / 1e6:.2f} MB "
        f"({manifest['bytes_per_position']} B/position at k={cfg.k}); {len(report.skipped)} rows skipped")})
    return manifest


def _emit(cfg: CaptureConfig, event: dict) -> None:
    if cfg.callback is not None:
        cfg.callback(event)
    elif "message" in event and cfg.progress:
        print(event["message"], flush=True)


def config_dict(cfg: CaptureConfig) -> dict:
    d = asdict(cfg)
    d.pop("callback", None)
    return d

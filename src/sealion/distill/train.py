"""`sealion distill train`: logit distillation of a student from a capture (offline) or a live teacher (online).

Loss = kd_weight * T^2 * D(teacher || student) + ce_weight * CE(labels), averaged over the assistant positions of
the global batch (so any split over processes or micro-batches gives the same gradient). The student's logits are
never materialised for the whole batch: hidden states are gathered at the scored positions and projected through
the lm_head `chunk_size` positions at a time, each chunk's gradient written down as it is projected
(head_loss.py).

Runs under `accelerate launch` unchanged (DDP or FSDP, see distill/configs/). Checkpoints (accelerate state: model,
optimizer, RNG; plus scheduler and data position) are written to a temporary directory and renamed, and
`--resume` continues from the newest one exactly where it stopped. The result is a Hugging Face directory with the
tokenizer and a chat template.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import io as sio
from ..errors import ConfigError
from .data import Example, batches_of, collate, load_examples, tokenizer_fingerprint
from .head_loss import HeadTargets, fused_kd_ce
from .losses import LossConfig, chunked_topk
from .modeling import hidden_states, load_model, output_projection, softcap_of
from .store import Capture

STATE_FILE = "trainer_state.json"


@dataclass
class TrainConfig:
    student: str
    out: str
    capture: str | list[str] | None = None  # offline: one or more capture directories (same teacher and k)
    teacher: str | None = None  # online: the teacher in the loop ...
    data: list[str] = field(default_factory=list)  # ... on this data
    online_k: int = 128
    max_length: int = 2048  # online data only
    # loss
    divergence: str = "fkl"
    beta: float = 0.5
    temperature: float = 1.0
    missing: str = "tail"
    kd_weight: float = 0.9
    ce_weight: float = 0.1
    chunk_size: int = 128
    # optimisation
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8  # rows per optimiser step, over all processes
    micro_batch_size: int = 2  # rows per forward pass, per process
    max_tokens: int = 2048  # row length when packing
    pack: bool = False
    grad_clip: float = 1.0
    seed: int = 0
    dtype: str | None = None
    gradient_checkpointing: bool = False
    # bookkeeping
    holdout: int = 0  # examples kept out of training for the held-out KL
    eval_every: int = 0
    log_every: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    resume: bool = False
    tensorboard: bool = False
    progress: bool = True
    callback: Callable[[dict], None] | None = field(default=None, repr=False, compare=False)

    def loss_config(self) -> LossConfig:
        try:
            return LossConfig(divergence=self.divergence, beta=self.beta, temperature=self.temperature,
                              missing=self.missing, kd_weight=self.kd_weight, ce_weight=self.ce_weight,
                              chunk_size=self.chunk_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def validate(self) -> None:
        self.loss_config()
        if (self.capture is None) == (self.teacher is None):
            raise ConfigError("give either capture (offline) or teacher + data (online)")
        if self.teacher is not None and not self.data:
            raise ConfigError("online mode (teacher) needs data")
        if self.batch_size < 1 or self.micro_batch_size < 1:
            raise ConfigError("batch_size and micro_batch_size must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.online_k < 1:
            raise ConfigError(f"online_k must be >= 1, got {self.online_k}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("callback", None)
        return d


# ------------------------------------------------------------------------------------------------ pieces


class DistillObjective(nn.Module):
    """Wraps the student so DDP/FSDP see one forward: hidden states -> (loss, per-position KD, CE, top-1 agreement).

    loss = kd_coef * sum(KD) + ce_coef * sum(CE); its gradient comes from the fused head (head_loss.py).
    """

    def __init__(self, model, loss_cfg: LossConfig, capture_temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.loss_cfg = loss_cfg
        self.capture_temperature = capture_temperature
        self.softcap = softcap_of(model)

    def forward(self, input_ids, position_ids, score_rows, score_cols, targets, ids, logprobs, tail,
                kd_coef: float = 1.0, ce_coef: float = 0.0):
        h = hidden_states(self.model, input_ids, position_ids)
        h = h[score_rows, score_cols]
        weight, bias = output_projection(self.model)
        return fused_kd_ce(h, weight, bias, HeadTargets(
            targets, ids, logprobs, tail, self.loss_cfg, kd_coef=kd_coef, ce_coef=ce_coef, softcap=self.softcap,
            capture_temperature=self.capture_temperature))


class OnlineTeacher:
    def __init__(self, model, k: int):
        self.model = model.eval()
        self.k = k
        self.softcap = softcap_of(model)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def targets(self, batch, device):
        h = hidden_states(self.model, batch.input_ids.to(device), batch.position_ids.to(device))
        h = h[batch.score_rows.to(device), batch.score_cols.to(device)]
        weight, bias = output_projection(self.model)
        return chunked_topk(h, weight, bias, self.k, softcap=self.softcap)


@dataclass
class Item:
    """An example with its teacher rows (offline) or without (online)."""

    example: Example
    ids: np.ndarray | None = None
    logprobs: np.ndarray | None = None
    tail: np.ndarray | None = None


def plan_epoch(items: list[Item], cfg: TrainConfig, epoch: int) -> list[list[list[int]]]:
    """The epoch's batches (lists of rows of item indices), a pure function of the seed and the epoch."""
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(len(items)).tolist()
    shuffled = [items[i].example for i in order]
    batches = batches_of(shuffled, batch_size=cfg.batch_size, max_tokens=cfg.max_tokens, pack_rows=cfg.pack)
    if cfg.pack:  # packing sorts by length; shuffle the packed rows again so batches mix lengths
        rows = [r for b in batches for r in b]
        rows = [rows[i] for i in rng.permutation(len(rows))]
        batches = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
    return [[[order[i] for i in row] for row in batch] for batch in batches]


def _targets_count(items: list[Item], rows: list[list[int]]) -> int:
    return int(sum(items[i].example.target_mask[1:].sum() for row in rows for i in row))


def _tensors(items: list[Item], rows: list[list[int]], pad_id: int, device):
    batch = collate([[items[i].example for i in row] for row in rows], pad_id=pad_id)
    out = {
        "input_ids": batch.input_ids.to(device), "position_ids": batch.position_ids.to(device),
        "score_rows": batch.score_rows.to(device), "score_cols": batch.score_cols.to(device),
        "targets": batch.targets.to(device),
    }
    flat = [items[i] for row in rows for i in row]
    if flat and flat[0].ids is not None:
        out["ids"] = torch.from_numpy(np.concatenate([it.ids for it in flat])).long().to(device)
        out["logprobs"] = torch.from_numpy(np.concatenate([it.logprobs for it in flat])).float().to(device)
        out["tail"] = torch.from_numpy(np.concatenate([it.tail for it in flat])).float().to(device)
    return out, batch


def _lr_lambda(cfg: TrainConfig, total: int):
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


class _Stats:
    """Sums of per-position KD, CE and agreement, overall and per language, between two log points."""

    def __init__(self):
        self.sums = defaultdict(lambda: np.zeros(4))  # kd, ce, agree, count

    def add(self, kd, ce, agree, langs):
        kd, ce, agree = (t.detach().float().cpu().numpy() for t in (kd, ce, agree))
        for lang in set(langs):
            m = np.array([x == lang for x in langs])
            self.sums[lang] += [kd[m].sum(), ce[m].sum(), agree[m].sum(), m.sum()]

    def reduce(self, accelerator) -> dict:
        langs = sorted(self.sums)
        if accelerator is not None and accelerator.num_processes > 1:
            gathered = accelerator.gather_for_metrics([{k: v.tolist() for k, v in self.sums.items()}], use_gather_object=True)
            merged = defaultdict(lambda: np.zeros(4))
            for part in gathered:
                for k, v in part.items():
                    merged[k] += np.array(v)
            self.sums = merged
            langs = sorted(merged)
        total = sum((self.sums[k] for k in langs), np.zeros(4))
        n = max(total[3], 1)
        out = {"kd": total[0] / n, "ce": total[1] / n, "top1_agree": total[2] / n, "positions": int(total[3]),
               "per_language": {k: {"kd": v[0] / max(v[3], 1), "ce": v[1] / max(v[3], 1),
                                    "top1_agree": v[2] / max(v[3], 1), "positions": int(v[3])}
                                for k, v in ((k, self.sums[k]) for k in langs)}}
        self.sums = defaultdict(lambda: np.zeros(4))
        return out


# ------------------------------------------------------------------------------------------------ train


def _load_items(cfg: TrainConfig, student_tok) -> tuple[list[Item], dict, float]:
    fp = tokenizer_fingerprint(student_tok)
    if cfg.capture is not None:
        paths = [cfg.capture] if isinstance(cfg.capture, (str, Path)) else list(cfg.capture)
        items, caps = [], [Capture(p) for p in paths]
        for cap in caps:
            if cap.tokenizer_fingerprint != fp:
                raise ConfigError(
                    f"{cfg.student}: tokenizer differs from the capture's teacher tokenizer (fingerprint {fp} vs "
                    f"{cap.tokenizer_fingerprint} in {cap.path}/manifest.json); logit distillation needs the same "
                    "vocabulary")
            if (cap.manifest.get("teacher"), cap.temperature, cap.k) != (
                    caps[0].manifest.get("teacher"), caps[0].temperature, caps[0].k):
                raise ConfigError(f"{cap.path}: captured with another teacher, temperature or k than {caps[0].path}")
            items.extend(Item(c.example, c.ids, c.logprobs, c.tail) for c in cap.examples())
        return items, {"capture": [str(c.path) for c in caps], "k": [c.k for c in caps],
                       "teacher": caps[0].manifest.get("teacher")}, caps[0].temperature
    examples, report = load_examples(cfg.data, student_tok, max_length=cfg.max_length, progress=cfg.progress)
    for line in report.skipped[:20]:
        print(f"skipped {line}", flush=True)
    return [Item(e) for e in examples], {"data_report": report.summary(), "teacher": cfg.teacher}, 1.0


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) and write the student to cfg.out. Returns the run summary."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cfg.validate()
    loss_cfg = cfg.loss_config()
    out = Path(cfg.out)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    is_main = accelerator.is_main_process
    set_seed(cfg.seed)
    ckpt_root = out / "checkpoints"
    latest = _latest_checkpoint(ckpt_root) if cfg.resume else None
    if not cfg.resume and (ckpt_root.exists() or (out / "metrics.jsonl").exists()):
        raise ConfigError(f"{out}: holds a previous run; pass --resume to continue it or choose another --out")

    model, tokenizer, student_path = load_model(cfg.student, dtype=cfg.dtype)
    teacher_tok = None
    if cfg.teacher is not None:
        teacher_model, teacher_tok, _ = load_model(cfg.teacher, dtype=cfg.dtype)
        if tokenizer_fingerprint(teacher_tok) != tokenizer_fingerprint(tokenizer):
            raise ConfigError(f"{cfg.student}: tokenizer differs from the teacher's ({cfg.teacher})")
    items, source, cap_temp = _load_items(cfg, tokenizer)
    if len(items) <= cfg.holdout:
        raise ConfigError(f"holdout={cfg.holdout} leaves no training examples (have {len(items)})")
    eval_items = items[len(items) - cfg.holdout :] if cfg.holdout else []
    items = items[: len(items) - cfg.holdout]
    max_id = max(int(it.example.input_ids.max()) for it in items)
    if max_id >= model.get_input_embeddings().weight.shape[0]:
        raise ConfigError(f"{cfg.student}: vocabulary smaller than token id {max_id} in the data")

    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    objective = DistillObjective(model, loss_cfg, cap_temp)
    decay, no_decay = [], []
    for n, p in objective.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel (CPU and CUDA) does the update in one sweep per tensor instead of a dozen
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    steps_per_epoch = len(plan_epoch(items, cfg, 0))
    total = cfg.max_steps or max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total))
    # the scheduler stays unprepared: accelerate would step it once per process
    objective, optimizer = accelerator.prepare(objective, optimizer)
    device = accelerator.device
    teacher = OnlineTeacher(teacher_model.to(device), cfg.online_k) if cfg.teacher is not None else None
    pad_id = tokenizer.pad_token_id or 0

    state = {"step": 0, "tokens": 0, "target_tokens": 0, "elapsed": 0.0}
    if latest is not None:
        accelerator.load_state(str(latest))
        saved = json.loads((latest / STATE_FILE).read_text())
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        _emit(cfg, is_main, {"event": "resume", "message": f"resuming from {latest} at step {state['step']}"})
    elif cfg.resume:
        _emit(cfg, is_main, {"event": "resume", "message": f"{ckpt_root}: no checkpoint, starting fresh"})

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        sio.write_json(out / "train_config.json", {**cfg.to_dict(), "source": source, "world_size": world})
    writer = _tensorboard(cfg, out) if is_main else None
    metrics_path = out / "metrics.jsonl"

    def log(row: dict) -> None:
        if not is_main:
            return
        sio.append_jsonl(metrics_path, [row])
        if writer is not None:
            for key in ("loss", "kd", "ce", "top1_agree", "lr", "tokens_per_s"):
                if key in row:
                    writer.add_scalar(f"{row['split']}/{key}", row[key], row["step"])
            for lang, v in row.get("per_language", {}).items():
                writer.add_scalar(f"{row['split']}/kd/{lang}", v["kd"], row["step"])

    def evaluate() -> dict | None:
        if not eval_items:
            return None
        stats = _Stats()
        objective.eval()
        with torch.no_grad():
            shard = list(range(rank, len(eval_items), world))
            for s in range(0, len(shard), cfg.micro_batch_size):
                rows = [[i] for i in shard[s : s + cfg.micro_batch_size]]
                tensors, batch = _tensors(eval_items, rows, pad_id, device)
                if teacher is not None:
                    tensors["ids"], tensors["logprobs"], tensors["tail"] = teacher.targets(batch, device)
                kd, ce, agree = _eval_forward(objective, tensors, cap_temp, accelerator)
                stats.add(kd, ce, agree, batch.languages)
        objective.train()
        res = stats.reduce(accelerator)
        row = {"split": "eval", "step": state["step"], **res}
        log(row)
        _emit(cfg, is_main, {"event": "eval", **row})
        return row

    first_eval = evaluate() if state["step"] == 0 and cfg.eval_every >= 0 else None
    bar = None
    if cfg.progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=state["step"], desc="distill", unit="step")
    stats = _Stats()
    t_start = time.time() - state["elapsed"]
    t_log, tok_log = time.time(), state["tokens"]
    last_saved = state["step"]
    plan_cache: dict[int, list] = {}
    try:
        while state["step"] < total:
            step = state["step"]
            epoch, idx = divmod(step, steps_per_epoch)
            if epoch not in plan_cache:
                plan_cache = {epoch: plan_epoch(items, cfg, epoch)}
            global_rows = plan_cache[epoch][idx]
            n_global = max(_targets_count(items, global_rows), 1)
            my_rows = global_rows[rank::world]
            micro = [my_rows[i : i + cfg.micro_batch_size] for i in range(0, len(my_rows), cfg.micro_batch_size)] or [[]]
            optimizer.zero_grad(set_to_none=True)
            step_tokens = sum(len(items[i].example.input_ids) for row in global_rows for i in row)
            for m_i, rows in enumerate(micro):
                sync = m_i == len(micro) - 1
                ctx = accelerator.no_sync(objective) if not sync and world > 1 else _nullcontext()
                with ctx:
                    if rows:
                        tensors, batch = _tensors(items, rows, pad_id, device)
                        if teacher is not None:
                            tensors["ids"], tensors["logprobs"], tensors["tail"] = teacher.targets(batch, device)
                        # sum over this process's positions / all positions of the global batch; x world because
                        # DDP averages gradients over processes
                        scale = world / n_global
                        loss, kd, ce, agree = objective(**tensors, kd_coef=loss_cfg.kd_weight * scale,
                                                        ce_coef=loss_cfg.ce_weight * scale)
                        stats.add(kd, ce, agree, batch.languages)
                    else:  # a process without rows this step still joins the gradient all-reduce
                        loss = sum(p.sum() for p in objective.parameters() if p.requires_grad) * 0.0
                    accelerator.backward(loss)
            if cfg.grad_clip and cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(objective.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["tokens"] += step_tokens
            state["target_tokens"] += n_global
            state["elapsed"] = time.time() - t_start
            if bar is not None:
                bar.update(1)
            if cfg.log_every and (state["step"] % cfg.log_every == 0 or state["step"] == total):
                res = stats.reduce(accelerator)
                now = time.time()
                row = {"split": "train", "step": state["step"], "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                       "loss": loss_cfg.kd_weight * res["kd"] + loss_cfg.ce_weight * res["ce"], **res,
                       "tokens": state["tokens"], "tokens_per_s": (state["tokens"] - tok_log) / max(now - t_log, 1e-9),
                       "peak_rss_mb": _peak_rss_mb()}
                t_log, tok_log = now, state["tokens"]
                log(row)
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", kd=f"{res['kd']:.4f}", agree=f"{res['top1_agree']:.2f}")
                _emit(cfg, is_main, {"event": "step", **row})
            if cfg.eval_every and state["step"] % cfg.eval_every == 0 and state["step"] != total:
                evaluate()
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and state["step"] != total:
                _save_checkpoint(accelerator, ckpt_root, state, scheduler, cfg)
                last_saved = state["step"]
    except KeyboardInterrupt:
        if state["step"] > last_saved:
            _save_checkpoint(accelerator, ckpt_root, state, scheduler, cfg)
        raise
    finally:
        if bar is not None:
            bar.close()
    final_eval = evaluate()
    summary = {"steps": state["step"], "tokens": state["tokens"], "target_tokens": state["target_tokens"],
               "elapsed_s": state["elapsed"], "tokens_per_s": state["tokens"] / max(state["elapsed"], 1e-9),
               "peak_rss_mb": _peak_rss_mb(), "eval_before": first_eval, "eval_after": final_eval,
               "world_size": world, "source": source}
    _save_final(accelerator, objective, tokenizer, student_path, out, summary)
    if writer is not None:
        writer.close()
    _emit(cfg, is_main, {"event": "done", "message": f"{out}: {state['step']} steps, "
                         f"{summary['tokens_per_s']:.1f} tokens/s" + (
                             f"; held-out KL {first_eval['kd']:.4f} -> {final_eval['kd']:.4f}"
                             if first_eval and final_eval else "")})
    return summary


def _eval_forward(objective, tensors, cap_temp, accelerator):
    """Held-out metrics always use forward KL at T=1 with the tail bucket: comparable across runs and settings."""
    inner = accelerator.unwrap_model(objective)
    saved = inner.loss_cfg
    inner.loss_cfg = LossConfig(divergence="fkl", temperature=1.0, missing="tail", chunk_size=saved.chunk_size)
    try:
        return inner(**tensors)[1:]
    finally:
        inner.loss_cfg = saved


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensorboard(cfg: TrainConfig, out: Path):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError("--tensorboard needs the tensorboard package (pip install tensorboard)") from e
    return SummaryWriter(str(out / "tensorboard"))


def _emit(cfg: TrainConfig, is_main: bool, event: dict) -> None:
    if not is_main:
        return
    if cfg.callback is not None:
        cfg.callback(event)
    elif "message" in event and cfg.progress:
        print(event["message"], flush=True)


def _latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if pointer.exists():
        p = root / pointer.read_text().strip()
        if (p / STATE_FILE).exists():
            return p
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).exists())
    return done[-1] if done else None


def _save_checkpoint(accelerator, root: Path, state: dict, scheduler, cfg: TrainConfig) -> None:
    name = f"step-{state['step']:08d}"
    tmp = root / f".{name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        payload = {"state": state, "scheduler": scheduler.state_dict(),
                   "python_rng": repr(random.getstate()[1][:4]), "config": cfg.to_dict()}
        sio.write_json(tmp / STATE_FILE, payload)
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        sio.write_text(root / "latest", name + "\n")
        old = sorted(p for p in root.glob("step-*") if p.is_dir())
        for p in old[: max(0, len(old) - cfg.keep_checkpoints)]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


def _save_final(accelerator, objective, tokenizer, student_path: Path, out: Path, summary: dict) -> None:
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(objective)
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(objective).model
    prefix = "model."
    state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.use_cache = True
    model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    _ensure_chat_template(tmp, tokenizer)
    for extra in ("generation_config.json", "processor_config.json", "preprocessor_config.json"):
        if (student_path / extra).exists() and not (tmp / extra).exists():
            shutil.copy(student_path / extra, tmp / extra)
    for p in tmp.iterdir():
        os.replace(p, out / p.name)
    tmp.rmdir()
    sio.write_json(out / "train_summary.json", summary)


def _ensure_chat_template(path: Path, tokenizer) -> None:
    """A checkpoint without a template gets the package's Gemma 4 template (what the data was rendered with)."""
    if getattr(tokenizer, "chat_template", None):
        return
    try:
        from sealion.chat import gemma4_template  # type: ignore[attr-defined]
    except ImportError:
        return
    sio.write_text(path / "chat_template.jinja", gemma4_template())

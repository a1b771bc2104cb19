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
from .data import collate, load_examples, tokenizer_fingerprint
from .head_loss import HeadTargets, fused_kd_ce
from .losses import LossConfig, Workspace, chunked_topk
from .modeling import hidden_states, load_model, output_projection, softcap_of
from .record import GradientLedger, write_record
from .store import Capture
from .stream import CaptureSource, MemorySource, Planner, Ref, ShardCache
from .tied_rows import TiedRowGradients

STATE_FILE = "trainer_state.json"


@dataclass
class TrainConfig:
    student: str
    out: str
    capture: str | list[str] | None = None  # offline: one or more capture directories (same teacher and k)
    teacher: str | None = None  # online: the teacher in the loop ...
    data: list[str] = field(default_factory=list)  # ... on this data
    online_k: int = 128  # >= the vocabulary: the dense objective (every id, no tail)
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
    shuffle_shards: int = 4  # shards shuffled together (and decoded at once) when streaming a capture
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
        if self.shuffle_shards < 1:
            raise ConfigError(f"shuffle_shards must be >= 1, got {self.shuffle_shards}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("callback", None)
        return d


# ------------------------------------------------------------------------------------------------ pieces


class DistillObjective(nn.Module):
    """Wraps the student so DDP/FSDP see one forward: hidden states -> (loss, per-position KD, CE, top-1 agreement).

    loss = kd_coef * sum(KD) + ce_coef * sum(CE); its gradient comes from the fused head (head_loss.py).
    """

    def __init__(self, model, loss_cfg: LossConfig):
        super().__init__()
        self.model = model
        self.loss_cfg = loss_cfg
        self.softcap = softcap_of(model)
        self.workspace = Workspace()

    def forward(self, input_ids, position_ids, score_rows, score_cols, targets, ids, logprobs, tail,
                kd_coef: float = 1.0, ce_coef: float = 0.0, capture_temperature: float = 1.0):
        h = hidden_states(self.model, input_ids, position_ids)
        h = h[score_rows, score_cols]
        weight, bias = output_projection(self.model)
        return fused_kd_ce(h, weight, bias, HeadTargets(
            targets, ids, logprobs, tail, self.loss_cfg, kd_coef=kd_coef, ce_coef=ce_coef, softcap=self.softcap,
            capture_temperature=capture_temperature, workspace=self.workspace))


class OnlineTeacher:
    def __init__(self, model, k: int, workspace: Workspace | None = None):
        self.model = model.eval()
        self.k = k
        self.softcap = softcap_of(model)
        self.workspace = workspace if workspace is not None else Workspace()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def targets(self, batch, device, temperature: float):
        """Top-k ids, log-probs and tail at `temperature` itself: exact for the tempered tail bucket."""
        h = hidden_states(self.model, batch.input_ids.to(device), batch.position_ids.to(device))
        h = h[batch.score_rows.to(device), batch.score_cols.to(device)]
        weight, bias = output_projection(self.model)
        # the returned rows live in the workspace: they serve one forward pass, and the next call overwrites them
        return chunked_topk(h, weight, bias, self.k, softcap=self.softcap, temperature=temperature,
                            workspace=self.workspace)


def _tensors(cache: ShardCache, rows: list[list[Ref]], pad_id: int, device, temperature: float, vocab: int):
    """Model inputs for `rows` and the teacher rows, with the tail at `temperature`."""
    items = [cache.items(row) for row in rows]
    batch = collate([[it.example for it in row] for row in items], pad_id=pad_id)
    if batch.input_ids.numel() and int(batch.input_ids.max()) >= vocab:
        raise ConfigError(f"student vocabulary ({vocab} rows) is smaller than token id {int(batch.input_ids.max())} "
                          "in the data")
    out = {
        "input_ids": batch.input_ids.to(device), "position_ids": batch.position_ids.to(device),
        "score_rows": batch.score_rows.to(device), "score_cols": batch.score_cols.to(device),
        "targets": batch.targets.to(device),
    }
    flat = [it for row in items for it in row]
    if flat and flat[0].ids is not None:
        out["ids"] = torch.from_numpy(np.concatenate([it.ids for it in flat])).long().to(device)
        out["logprobs"] = torch.from_numpy(np.concatenate([it.logprobs for it in flat])).float().to(device)
        tails = [it.tails.get(temperature) for it in flat]  # absent: missing="zero", which needs no tail
        out["tail"] = None if any(t is None for t in tails) else torch.from_numpy(np.concatenate(tails)).float().to(device)
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


def open_captures(cfg: TrainConfig) -> list[Capture]:
    """Open and check every capture (manifests and shard structure) and the loss settings they must serve,
    before anything is loaded: bad input costs nothing."""
    paths = [cfg.capture] if isinstance(cfg.capture, (str, Path)) else list(cfg.capture)
    caps = [Capture(p) for p in paths]
    for cap in caps:
        if (cap.manifest.get("teacher"), cap.temperature, cap.k, cap.tail_temperatures) != (
                caps[0].manifest.get("teacher"), caps[0].temperature, caps[0].k, caps[0].tail_temperatures):
            raise ConfigError(f"{cap.path}: captured with another teacher, temperature, k or tail temperatures "
                              f"than {caps[0].path}")
    cap = caps[0]
    if cfg.missing == "tail" and float(cfg.temperature) not in cap.tail_temperatures:
        raise ConfigError(
            f"temperature: {cfg.temperature} with missing='tail' needs the teacher's tail mass at that temperature, "
            f"and {cap.path}/manifest.json stores it only at {list(cap.tail_temperatures)}; recapture with "
            f"--tail-temperatures {cfg.temperature:g}, train at one of those, or use --missing zero")
    return caps


def _check_tokenizer(caps: list[Capture], student: str, student_tok) -> None:
    fp = tokenizer_fingerprint(student_tok)
    for cap in caps:
        if cap.tokenizer_fingerprint != fp:
            raise ConfigError(
                f"{student}: tokenizer differs from the capture's teacher tokenizer (fingerprint {fp} vs "
                f"{cap.tokenizer_fingerprint} in {cap.path}/manifest.json); logit distillation needs the same "
                "vocabulary")


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) and write the student to cfg.out. Returns the run summary."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed

    cfg.validate()
    loss_cfg = cfg.loss_config()
    out = Path(cfg.out)
    caps = open_captures(cfg) if cfg.capture is not None else None  # bad input fails here, before any model
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
    if caps is not None:
        _check_tokenizer(caps, cfg.student, tokenizer)
        source = CaptureSource(caps)
        source_info = {"capture": [str(c.path) for c in caps], "k": [c.k for c in caps],
                       "teacher": caps[0].manifest.get("teacher")}
        # the top-k are at the capture temperature; training uses the tail stored at cfg.temperature, held-out
        # KL the one at 1 (else at the capture temperature, for captures made before tails were stored per T)
        train_cap_t = caps[0].temperature
        eval_t = 1.0 if 1.0 in caps[0].tail_temperatures else caps[0].temperature
    else:
        examples, report = load_examples(cfg.data, tokenizer, max_length=cfg.max_length, progress=cfg.progress)
        for line in report.skipped[:20]:
            print(f"skipped {line}", flush=True)
        source = MemorySource(examples)
        source_info = {"data_report": report.summary(), "teacher": cfg.teacher}
        train_cap_t, eval_t = float(cfg.temperature), 1.0  # the online teacher scores at the temperature in use
    planner = Planner(source, batch_size=cfg.batch_size, pack_rows=cfg.pack, max_tokens=cfg.max_tokens,
                      seed=cfg.seed, window=cfg.shuffle_shards, holdout=cfg.holdout)
    if planner.num_train <= 0:
        raise ConfigError(f"holdout={cfg.holdout} leaves no training examples (have {planner.total})")
    cache = ShardCache(source, 2 * cfg.shuffle_shards + 1)
    eval_refs = planner.heldout_refs()
    vocab = model.get_input_embeddings().weight.shape[0]

    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    if accelerator.distributed_type == DistributedType.NO:  # DDP/FSDP reduce a gradient before the rows arrive
        TiedRowGradients.install(model, output_projection(model)[0])
    objective = DistillObjective(model, loss_cfg)
    decay, no_decay = [], []
    for n, p in objective.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel (CPU and CUDA) does the update in one sweep per tensor instead of a dozen
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    steps_per_epoch = planner.steps_in_epoch(0)
    total = cfg.max_steps or max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total))
    # the scheduler stays unprepared: accelerate would step it once per process
    objective, optimizer = accelerator.prepare(objective, optimizer)
    ledger = GradientLedger(accelerator.unwrap_model(objective).model)  # what was trained, for the merge
    device = accelerator.device
    # one workspace for the teacher's rows and the student's head: a buffer they both use is never alive in both
    workspace = accelerator.unwrap_model(objective).workspace
    teacher = OnlineTeacher(teacher_model.to(device), cfg.online_k, workspace) if cfg.teacher is not None else None
    pad_id = tokenizer.pad_token_id or 0

    state = {"step": 0, "epoch": 0, "epoch_step": 0, "tokens": 0, "target_tokens": 0, "elapsed": 0.0}
    if latest is not None:
        accelerator.load_state(str(latest))
        saved = json.loads((latest / STATE_FILE).read_text())
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        if "epoch" not in state:  # a checkpoint from before streaming: the position was step mod epoch length
            state["epoch"], state["epoch_step"] = divmod(state["step"], steps_per_epoch)
        _emit(cfg, is_main, {"event": "resume", "message": f"resuming from {latest} at step {state['step']}"})
    elif cfg.resume:
        _emit(cfg, is_main, {"event": "resume", "message": f"{ckpt_root}: no checkpoint, starting fresh"})

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        sio.write_json(out / "train_config.json", {**cfg.to_dict(), "source": source_info, "world_size": world,
                                                   "distributed_type": str(accelerator.distributed_type)})
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
        if not eval_refs:
            return None
        stats = _Stats()
        objective.eval()
        with torch.no_grad():
            mine = eval_refs[rank::world]
            for s in range(0, len(mine), cfg.micro_batch_size):
                rows = [[r] for r in mine[s : s + cfg.micro_batch_size]]
                tensors, batch = _tensors(cache, rows, pad_id, device, eval_t, vocab)
                cap_t = train_cap_t
                if teacher is not None:
                    tensors["ids"], tensors["logprobs"], tensors["tail"] = teacher.targets(batch, device, eval_t)
                    cap_t = eval_t
                kd, ce, agree = _eval_forward(objective, tensors, cap_t, eval_t, accelerator)
                stats.add(kd, ce, agree, batch.languages)
        objective.train()
        res = stats.reduce(accelerator)
        row = {"split": "eval", "step": state["step"], "temperature": eval_t, **res}
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
    plan = planner.epoch(state["epoch"], skip=state["epoch_step"])
    try:
        while state["step"] < total:
            planned = next(plan, None)
            if planned is None:  # the epoch is over: the next one has its own shard order and packing
                state["epoch"], state["epoch_step"] = state["epoch"] + 1, 0
                plan = planner.epoch(state["epoch"])
                continue
            epoch = state["epoch"]
            n_global = max(planned.positions, 1)
            my_rows = planned.rows[rank::world]
            micro = [my_rows[i : i + cfg.micro_batch_size] for i in range(0, len(my_rows), cfg.micro_batch_size)] or [[]]
            optimizer.zero_grad(set_to_none=True)
            for m_i, rows in enumerate(micro):
                sync = m_i == len(micro) - 1
                ctx = accelerator.no_sync(objective) if not sync and world > 1 else _nullcontext()
                with ctx:
                    if rows:
                        tensors, batch = _tensors(cache, rows, pad_id, device, float(cfg.temperature), vocab)
                        if teacher is not None:
                            tensors["ids"], tensors["logprobs"], tensors["tail"] = teacher.targets(
                                batch, device, float(cfg.temperature))
                        # sum over this process's positions / all positions of the global batch; x world because
                        # DDP averages gradients over processes
                        scale = world / n_global
                        loss, kd, ce, agree = objective(**tensors, kd_coef=loss_cfg.kd_weight * scale,
                                                        ce_coef=loss_cfg.ce_weight * scale,
                                                        capture_temperature=train_cap_t)
                        stats.add(kd, ce, agree, batch.languages)
                    else:  # a process without rows this step still joins the gradient all-reduce
                        loss = sum(p.sum() for p in objective.parameters() if p.requires_grad) * 0.0
                    accelerator.backward(loss)
            ledger.update()
            if cfg.grad_clip and cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(objective.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["epoch_step"] += 1
            state["tokens"] += planned.tokens
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
                       "peak_rss_mb": _peak_rss_mb(), "shards_decoded": cache.decoded}
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
               "world_size": world, "source": source_info, "shards_decoded": cache.decoded}
    _save_final(accelerator, objective, tokenizer, student_path, out, summary)
    if is_main:
        tied = bool(getattr(model.config.get_text_config(), "tie_word_embeddings", False)
                    or getattr(model.config, "tie_word_embeddings", False))
        write_record(out, ledger.record(tied=tied))
    if writer is not None:
        writer.close()
    _emit(cfg, is_main, {"event": "done", "message": f"{out}: {state['step']} steps, "
                         f"{summary['tokens_per_s']:.1f} tokens/s" + (
                             f"; held-out KL {first_eval['kd']:.4f} -> {final_eval['kd']:.4f}"
                             if first_eval and final_eval else "")})
    return summary


def _eval_forward(objective, tensors, cap_temp, eval_temp, accelerator):
    """Held-out metrics always use forward KL with the tail bucket at T=1 (or, for a capture without the tail at 1,
    at its own temperature): comparable across runs and settings."""
    inner = accelerator.unwrap_model(objective)
    saved = inner.loss_cfg
    inner.loss_cfg = LossConfig(divergence="fkl", temperature=eval_temp, missing="tail", chunk_size=saved.chunk_size)
    try:
        return inner(**tensors, capture_temperature=cap_temp)[1:]
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

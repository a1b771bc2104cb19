"""Worker for test_fsdp.py: sealion's distillation objective on a tiny Gemma 4 student, sharded with FSDP2
(torch.distributed.fsdp.fully_shard: one unit per decoder layer plus the root, as distill/configs/fsdp.yaml asks
accelerate to do) over gloo on CPU, or unsharded in one process. Writes the per-step global loss as JSON.

    python -m torch.distributed.run --nproc_per_node=2 fsdp_worker.py STUDENT CAPTURE OUT.json fsdp
    python fsdp_worker.py STUDENT CAPTURE OUT.json single
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from sealion.distill.losses import LossConfig
from sealion.distill.modeling import load_model
from sealion.distill.store import Capture
from sealion.distill.stream import CaptureSource, Planner, ShardCache
from sealion.distill.train import DistillObjective, _tensors

STEPS, BATCH, MICRO, LR = 3, 4, 1, 3e-3


def main(student: str, capture: str, out: str, mode: str) -> None:
    sharded = mode == "fsdp"
    if sharded:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    torch.manual_seed(0)
    model, tok, _ = load_model(student)
    model.config.use_cache = False
    model.train()
    loss_cfg = LossConfig(divergence="fkl", temperature=1.0, missing="tail", kd_weight=0.9, ce_weight=0.1)
    objective = DistillObjective(model, loss_cfg)
    if sharded:
        from torch.distributed.fsdp import fully_shard

        for m in objective.modules():
            if type(m).__name__ == "Gemma4TextDecoderLayer":
                fully_shard(m)
        fully_shard(objective)
    opt = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=LR)
    source = CaptureSource([Capture(capture)])
    planner = Planner(source, batch_size=BATCH, pack_rows=False, max_tokens=2048, seed=0, window=2, holdout=0)
    cache = ShardCache(source, 5)
    vocab = model.get_input_embeddings().weight.shape[0]
    plan = planner.epoch(0)
    losses = []
    for _ in range(STEPS):
        planned = next(plan)
        n_global = max(planned.positions, 1)
        mine = planned.rows[rank::world]
        micro = [mine[i : i + MICRO] for i in range(0, len(mine), MICRO)]
        opt.zero_grad(set_to_none=True)
        kd_sum = torch.zeros((), dtype=torch.float64)
        ce_sum = torch.zeros((), dtype=torch.float64)
        for rows in micro:
            tensors, _ = _tensors(cache, rows, tok.pad_token_id or 0, "cpu", 1.0, vocab)
            # each rank's sum over its positions / all positions: FSDP's reduce-scatter averages over ranks
            scale = world / n_global
            loss, kd, ce, _ = objective(**tensors, kd_coef=0.9 * scale, ce_coef=0.1 * scale, capture_temperature=1.0)
            loss.backward()
            kd_sum += kd.double().sum()
            ce_sum += ce.double().sum()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), 1.0)
        opt.step()
        if sharded:
            dist.all_reduce(kd_sum)
            dist.all_reduce(ce_sum)
        losses.append({"kd": float(kd_sum) / n_global, "ce": float(ce_sum) / n_global, "positions": n_global})
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"world": world, "losses": losses,
                       "sharded": sharded and type(next(objective.parameters())).__name__ == "DTensor"}, f)
    if sharded:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])

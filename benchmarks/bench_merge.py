"""sealion merge vs mergekit on the demo model (google/gemma-3-270m, fp32) and a perturbed copy.

The perturbed copy is every tensor + 0.01 * randn (one torch generator seeded 0, tensors in name order). Each
method runs both tools as subprocesses under /usr/bin/time -v (wall time, peak RSS), then compares the outputs
tensor by tensor. Run it under the heavy-job lock:

    flock /tmp/sealion-heavy.lock .venv/bin/python benchmarks/bench_merge.py --methods linear ties

mergekit lives in its own venv (.venvs/mergekit: python3 -m venv .venvs/mergekit &&
.venvs/mergekit/bin/pip install torch==2.13.0 mergekit).
"""

from __future__ import annotations

import tempfile
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sealion.merge.tensor_io import CheckpointReader, ShardWriter  # noqa: E402

MERGEKIT = REPO / ".venvs" / "mergekit" / "bin" / "mergekit-yaml"


def perturbed_copy(src: Path, dst: Path) -> Path:
    """Streamed, so building it costs one tensor of memory; reused when already built."""
    marker = dst / ".bench-complete"
    if marker.exists():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and not p.name.endswith(".safetensors") and not p.name.endswith(".index.json"):
            shutil.copy2(p, dst / p.name)
    reader = CheckpointReader(src)
    names = sorted(reader.names())
    infos = [reader.tensors[n] for n in names]
    writer = ShardWriter(dst / "model.safetensors", [(i.name, i.dtype, i.shape) for i in infos], durable=False)
    g = torch.Generator().manual_seed(0)
    for info in infos:
        x = reader.read(info.name)
        if x.is_floating_point():
            x = (x.float() + 0.01 * torch.randn(x.shape, generator=g)).to(x.dtype)
        writer.write(info.name, x)
    writer.finish()
    marker.write_text("ok\n")
    return dst


def config_for(method: str, base: Path, other: Path) -> dict:
    if method == "linear":
        return {"merge_method": "linear", "models": [
            {"model": str(base), "parameters": {"weight": 0.5}}, {"model": str(other), "parameters": {"weight": 0.5}}],
            "dtype": "float32"}
    if method == "task_arithmetic":
        return {"merge_method": "task_arithmetic", "base_model": str(base), "models": [
            {"model": str(base), "parameters": {"weight": 0.5}}, {"model": str(other), "parameters": {"weight": 0.5}}],
            "dtype": "float32"}
    if method == "ties":
        return {"merge_method": "ties", "base_model": str(base), "models": [
            {"model": str(base), "parameters": {"weight": 0.5, "density": 0.5}},
            {"model": str(other), "parameters": {"weight": 0.5, "density": 0.5}}], "dtype": "float32"}
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": str(base), "models": [{"model": str(base)}, {"model": str(other)}],
                "parameters": {"t": 0.3}, "dtype": "float32"}
    raise SystemExit(f"unknown method {method}")


def timed(cmd: list[str], env: dict | None = None) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(rss_kb / 1024)}


def compare(a: Path, b: Path) -> dict:
    ra, rb = CheckpointReader(a), CheckpointReader(b)
    names_a, names_b = set(ra.names()), set(rb.names())
    worst, worst_name, differ, total = 0.0, None, 0, 0
    for n in sorted(names_a & names_b):
        x, y = ra.read(n).double(), rb.read(n).double()
        if x.shape != y.shape:
            return {"error": f"shape mismatch {n}"}
        d = (x - y).abs()
        total += d.numel()
        differ += int((d > 0).sum())
        m = float(d.max()) if d.numel() else 0.0
        if m > worst:
            worst, worst_name = m, n
    return {"tensors": len(names_a & names_b), "only_ours": sorted(names_a - names_b),
            "only_mergekit": sorted(names_b - names_a), "max_abs_diff": worst, "worst_tensor": worst_name,
            "elements_differing": differ, "elements": total}


def ties_differences_are_threshold_ties(ours: Path, theirs: Path, base: Path, other: Path, density: float) -> dict:
    """Where the TIES outputs differ, is |τ| exactly the tensor's trim threshold (a tie both tools may break
    differently)? Returns counts; `all_at_ties` True means every difference is such a tie."""
    ro, rt, rb, rp = (CheckpointReader(p) for p in (ours, theirs, base, other))
    at_ties = total = 0
    for n in sorted(ro.names()):
        d = ro.read(n) != rt.read(n)
        if not bool(d.any()):
            continue
        tau = (rp.read(n).float() - rb.read(n).float()).abs().reshape(-1)
        k = max(1, int(density * tau.numel()))
        thr = torch.kthvalue(tau, tau.numel() - k + 1).values
        hit = tau[d.reshape(-1)] == thr
        total += int(d.sum())
        at_ties += int(hit.sum())
    return {"differing": total, "at_trim_threshold_ties": at_ties, "all_at_ties": total == at_ties}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["linear", "ties"])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "sealion-bench-merge"))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep outputs and the perturbed copy")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not MERGEKIT.exists():
        raise SystemExit(f"{MERGEKIT} not found; see this file's docstring")
    from sealion.models import demo_path

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = demo_path()
    other = perturbed_copy(base, work / "perturbed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    results = []
    for method in args.methods:
        cfg_path = work / f"{method}.yaml"
        cfg_path.write_text(yaml.safe_dump(config_for(method, base, other), sort_keys=False))
        ours_out, mk_out = work / f"ours-{method}", work / f"mergekit-{method}"
        runs = {"sealion": [], "mergekit": []}
        for _ in range(args.repeats):
            for tool in ("mergekit", "sealion"):
                out = mk_out if tool == "mergekit" else ours_out
                shutil.rmtree(out, ignore_errors=True)
                if tool == "mergekit":
                    cmd = [str(MERGEKIT), str(cfg_path), str(out), "--quiet"]
                else:
                    cmd = [sys.executable, "-m", "sealion", "merge", str(cfg_path), "--out", str(out), "--no-progress"]
                runs[tool].append(timed(cmd, env))
        diff = compare(ours_out, mk_out)
        if method == "ties" and diff.get("elements_differing"):
            diff["tie_analysis"] = ties_differences_are_threshold_ties(ours_out, mk_out, base, other, 0.5)
        best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
        row = {
            "method": method, "sealion": runs["sealion"], "mergekit": runs["mergekit"], "outputs": diff,
            "wall_ratio_sealion_over_mergekit": round(best["sealion"]["wall_s"] / best["mergekit"]["wall_s"], 3),
            "rss_ratio_sealion_over_mergekit": round(
                max(r["peak_rss_mib"] for r in runs["sealion"]) / max(r["peak_rss_mib"] for r in runs["mergekit"]), 3),
        }
        results.append(row)
        print(json.dumps(row, indent=1), flush=True)
        if not args.keep:
            shutil.rmtree(ours_out, ignore_errors=True)
            shutil.rmtree(mk_out, ignore_errors=True)
    print("\nmethod            sealion wall / RSS      mergekit wall / RSS     wall ratio  RSS ratio  max|diff|  differing")
    for r in results:
        s = min(r["sealion"], key=lambda x: x["wall_s"])
        m = min(r["mergekit"], key=lambda x: x["wall_s"])
        o = r["outputs"]
        print(f"{r['method']:<16}  {s['wall_s']:>7.2f} s / {s['peak_rss_mib']:>5} MiB   {m['wall_s']:>7.2f} s / "
              f"{m['peak_rss_mib']:>5} MiB   {r['wall_ratio_sealion_over_mergekit']:>9.3f}  "
              f"{r['rss_ratio_sealion_over_mergekit']:>9.3f}  {o.get('max_abs_diff', 'n/a'):.3g}  "
              f"{o.get('elements_differing')}/{o.get('elements')}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(work / "perturbed", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

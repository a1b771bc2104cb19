"""`sealion eval` vs lm-evaluation-harness on the same items with identical prompts, greedy, in one run.

Items: the first N rows of SEA-HELM v1 `id_xcopa` (causal reasoning, Indonesian). Our side runs the task through
`sealion.evaluate.run_eval` with the demo model (a base model: plain completion prompt, zero-shot here to match
peers.md row 2a), max 16 new tokens, stop at a blank line, greedy. The exact prompt strings our runner sent are then
given to lm-eval as a custom `generate_until` task over a local JSONL (HF backend, fp32, same stop and budget), in
its own venv (.venvs/lmeval). Both sides are timed from a loaded model to finished scoring, `--repeats` times each
with the model loaded once (the first run of each pays its one-time costs), and the medians are compared; the
extracted answers (SEA-HELM's rule applied to both raw outputs) must be identical on every item.

lm-eval runs twice: at OUR batch size (the like-for-like comparison) and at each of `--peer-batch-sizes`, of which
the fastest is lm-eval's best; both speed-ups are printed side by side (issue 15 asks >= 3x in both).

    flock /tmp/sealion-heavy.lock .venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LM_DRIVER = textwrap.dedent('''
    import json, sys, time
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    path, task_dir, bs, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    t0 = time.perf_counter()
    lm = HFLM(pretrained=path, dtype="float32", batch_size=bs, device="cpu", add_bos_token=True)
    load = time.perf_counter() - t0
    tm = TaskManager(include_path=task_dir)
    times = []
    for _ in range(repeats):
        t1 = time.perf_counter()
        res = simple_evaluate(model=lm, tasks=["sealion_bench"], task_manager=tm, log_samples=True)
        times.append(time.perf_counter() - t1)
    samples = sorted(res["samples"]["sealion_bench"], key=lambda s: s["doc_id"])
    print("@@RESULT@@" + json.dumps({"times": times, "load_seconds": load,
                                     "responses": [s["resps"][0][0] for s in samples]}))
''')

TASK_YAML = """task: sealion_bench
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: {max_tokens}
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
"""


def run_ours(data: str, n: int, batch_size: int, max_tokens: int, out: Path, repeats: int = 1) -> dict:
    """`repeats` evaluations with one loaded engine, each into a fresh output directory (no response cache)."""
    from sealion.engine import open_engine
    from sealion.models import demo_path
    from sealion.evaluate import EvalConfig, run_eval

    t0 = time.perf_counter()
    engine = open_engine(str(demo_path()), max_batch_size=batch_size)
    load = time.perf_counter() - t0
    times, gen = [], []
    for i in range(repeats):
        run_out = out / f"rep{i}"
        t1 = time.perf_counter()
        res = run_eval(EvalConfig(model="demo", engine=engine, tasks=["causal"], languages=["id"], data=data, limit=n,
                                  runs=1, max_tokens=max_tokens, temperature=0.0, shots=0, base_model=True,
                                  out=str(run_out), progress=False, batch_size=batch_size))
        times.append(time.perf_counter() - t1)
        gen.append(res["timing"]["generation_seconds"])
    rows = [json.loads(x) for x in (run_out / "runs/run_0/id/causal.jsonl").read_text().splitlines()]
    return {"times": times, "load_seconds": load, "rows": rows, "generation_times": gen,
            "score": res["results"]["id"]["nlr"]["causal"]["mean"]}


def run_lmeval(python: str, rows: list[dict], batch_size: int, max_tokens: int, work: Path, repeats: int = 1) -> dict:
    from sealion.models import demo_path

    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["prompt"][0], "label": str(r["label"])}, ensure_ascii=False) + "\n"
                            for r in rows), encoding="utf-8")
    task_dir = work / "tasks"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "sealion_bench.yaml").write_text(TASK_YAML.format(data=data, max_tokens=max_tokens))
    driver = work / "driver.py"
    driver.write_text(LM_DRIVER)
    proc = subprocess.run([python, str(driver), str(demo_path()), str(task_dir), str(batch_size), str(repeats)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@RESULT@@")), None)
    if line is None:
        raise SystemExit(f"lm-eval failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(line[len("@@RESULT@@"):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/seahelm-v1"))
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=40, help="ours (rows per forward pass)")
    ap.add_argument("--peer-batch-sizes", default="8,16,32",
                    help="lm-eval batch sizes tried besides ours; the fastest is reported as lm-eval's best")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed evaluations per side with one loaded model each; the median is compared")
    ap.add_argument("--lmeval-python", default=os.environ.get("SEALION_LM_EVAL_PYTHON",
                                                              str(REPO / ".venvs/lmeval/bin/python")),
                    help="python of the lm-eval venv (benchmarks/setup_peers.sh makes .venvs/lmeval)")
    args = ap.parse_args()

    from sealion.evaluate.extraction import extract_choice

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        work = Path(tmp)
        ours = run_ours(args.data, args.n, args.batch_size, args.max_tokens, work / "ours", args.repeats)
        sizes = [args.batch_size] + [b for b in (int(x) for x in args.peer_batch_sizes.split(",") if x.strip())
                                     if b != args.batch_size]
        peers = {}
        for bs in sizes:
            peers[bs] = run_lmeval(args.lmeval_python, ours["rows"], bs, args.max_tokens, work, args.repeats)
            peers[bs]["seconds"] = statistics.median(peers[bs]["times"])
    ours["seconds"] = statistics.median(ours["times"])
    same_bs = args.batch_size
    best_bs = min(peers, key=lambda b: peers[b]["seconds"])
    peer = peers[same_bs]
    n = len(ours["rows"])
    ours_ans = [r["extracted"] for r in ours["rows"]]
    peer_ans = [extract_choice(t.split("\n\n")[0], "Jawaban:", ["A", "B"]) for t in peer["responses"]]
    same_answer = sum(a == b for a, b in zip(ours_ans, peer_ans))
    same_text = sum(r["responses"][0].strip() == t.strip() for r, t in zip(ours["rows"], peer["responses"]))
    ips_ours, ips_peer = n / ours["seconds"], n / peer["seconds"]
    print(f"items: {n} (id_xcopa, zero-shot completion prompt, greedy, max {args.max_tokens} tokens, stop '\\n\\n')")
    def runs(times: list[float]) -> str:
        return ", ".join(f"{t:.2f}" for t in times)

    print(f"sealion eval : {ours['seconds']:.2f} s = {ips_ours:.2f} items/s  (median of {runs(ours['times'])} s; "
          f"batch {args.batch_size}; generation {runs(ours['generation_times'])} s; model load "
          f"{ours['load_seconds']:.2f} s)")
    for bs, p in peers.items():
        tag = ", ".join(x for x, c in (("same batch", bs == same_bs), ("best", bs == best_bs)) if c)
        print(f"lm-eval      : {p['seconds']:.2f} s = {n / p['seconds']:.2f} items/s  (median of {runs(p['times'])} s; "
              f"HF backend, batch {bs}{'; ' + tag if tag else ''}; model load {p['load_seconds']:.2f} s)")
    print(f"speed-up     : {ips_ours / ips_peer:.2f}x at the same batch size ({same_bs}); "
          f"{ips_ours / (n / peers[best_bs]['seconds']):.2f}x against lm-eval's best (batch {best_bs})")
    for bs, p in peers.items():
        if bs != same_bs:
            other = [extract_choice(t.split("\n\n")[0], "Jawaban:", ["A", "B"]) for t in p["responses"]]
            same_answer = min(same_answer, sum(a == b for a, b in zip(ours_ans, other)))
    print(f"identical extracted answers: {same_answer}/{n}; identical raw responses: {same_text}/{n}")
    for i, (a, b) in enumerate(zip(ours_ans, peer_ans)):
        if a != b:
            print(f"  item {i}: ours {a!r} vs lm-eval {b!r}")
    return 0 if same_answer == n else 1


if __name__ == "__main__":
    sys.exit(main())

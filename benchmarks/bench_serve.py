"""`sealion serve` vs `transformers serve` on the same model, in one run.

Both servers run as separate processes on 127.0.0.1. C client threads (one `openai` client each) send R sequential
`/v1/completions` requests (max_tokens 32, temperature 0). Reported per server and C: aggregate generated tokens/s
(completion tokens from `usage` over the phase's wall time) and p50/p95 request latency, the median over
`--repeats` phases, and each server's peak RSS (VmHWM, summed over its processes). The phases alternate (ours,
theirs) at each C and repeat, so both see the same machine load.

`--ttft` adds the shared-prefix check: two streamed requests share a ~2,000-token system prompt and differ in the
question; time to first token of the second over the first, per repeat (a fresh system prompt each time, so every
first request is a miss). Ours gets it as a chat request (the prefix cache keeps the system turn); the peer, which
has no chat template for the demo model, gets the same rendered prompt text on /v1/completions. Run under the
heavy-job lock:

    flock /tmp/sealion-heavy.lock .venv/bin/python benchmarks/bench_serve.py --model demo
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Ibu kota Indonesia adalah",
    "Thủ đô của Việt Nam là",
    "The largest island in Southeast Asia is",
    "Nasi goreng is a dish made from",
    "เมืองหลวงของประเทศไทยคือ",
    "Kuala Lumpur is the capital of",
    "The Mekong River flows through",
    "Bahasa Melayu dituturkan di",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a server and its child processes, MiB: the sum of each process's VmHWM (an upper
    bound on the tree's peak). transformers serve --continuous-batching runs its model in a spawned child."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:  # a child that has just exited
            pass
    return total


def system_prompt(tokenizer, session: int, tokens: int = 2000) -> str:
    """A deterministic system prompt of about `tokens` tokens, distinct per session (so its first use misses)."""
    lines = [f"Session {session}. You are a travel assistant for Southeast Asia. Reference notes follow."]
    i = 0
    while len(tokenizer("\n".join(lines))["input_ids"]) < tokens:
        lines.append(f"Note {session}.{i}: {PROMPTS[i % len(PROMPTS)]} ... (see note {i + 1}).")
        i += 1
    return "\n".join(lines)


def first_token_s(create) -> float:
    """Seconds from sending a streamed request to its first chunk that carries generated text."""
    t = time.monotonic()
    ttft = float("nan")
    for chunk in create():
        if ttft != ttft and chunk.choices:
            delta = getattr(chunk.choices[0], "delta", None)  # chat chunks carry a delta, completions text
            text = delta.content if delta is not None else chunk.choices[0].text
            if text:
                ttft = time.monotonic() - t
    return ttft


def ttft_pair(base_url: str, model: str, name: str, tokenizer, session: int) -> tuple[float, float]:
    """(first, second) time to first token for two requests sharing one long system prompt."""
    from sealion.engine.prompting import render_chat

    client = openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0, timeout=1800)
    system = system_prompt(tokenizer, session)
    out = []
    for question in ("Where should I go first?", "Which dish should I try in Hanoi?"):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        if name == "sealion":
            out.append(first_token_s(lambda: client.chat.completions.create(
                model=model, messages=messages, max_tokens=4, temperature=0, stream=True)))
        else:
            prompt = render_chat(tokenizer, messages)
            out.append(first_token_s(lambda: client.completions.create(
                model=model, prompt=prompt, max_tokens=4, temperature=0, stream=True)))
    return out[0], out[1]


def run_phase(base_url: str, model: str, clients: int, per_client: int, max_tokens: int) -> dict:
    latencies: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0, timeout=1800)
        for i in range(per_client):
            prompt = PROMPTS[(k + i) % len(PROMPTS)]
            t = time.monotonic()
            try:
                r = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0)
            except Exception as e:  # recorded, not fatal: a lost request shows up in the table
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            dt = time.monotonic() - t
            with lock:
                latencies.append(dt)
                tokens[0] += r.usage.completion_tokens if r.usage else 0

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")

    return {"clients": clients, "requests": clients * per_client, "ok": len(lat), "errors": errors[:3],
            "tokens": tokens[0], "wall_s": wall, "tok_s": tokens[0] / wall if wall else 0.0,
            "p50_s": statistics.median(lat) if lat else float("nan"), "p95_s": pct(0.95)}


def median_phase(runs: list[dict]) -> dict:
    """One row from repeated phases: the median of each figure, the totals of the counts."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("tok_s", "p50_s", "p95_s", "wall_s")}
    out.update({k: sum(r[k] for r in runs) for k in ("requests", "ok", "tokens")})
    out.update(clients=runs[0]["clients"], repeats=len(runs), tok_s_all=[r["tok_s"] for r in runs],
               errors=[e for r in runs for e in r["errors"]][:3])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo", help="model reference (default: the demo model)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--requests", type=int, default=2, help="sequential requests per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--peer", choices=["default", "cb", "none"], default="default",
                    help="transformers serve mode: default, --continuous-batching, or none (ours only)")
    ap.add_argument("--repeats", type=int, default=3, help="phases per (server, C); medians are reported")
    ap.add_argument("--ttft", action="store_true", help="also measure TTFT with a shared 2,000-token system prompt")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")

    # a SIGTERM (timeout, Ctrl-C from a wrapper) still runs the `finally` that stops both servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(REPO / "src"))
    from sealion.models import resolve

    model_dir = str(resolve(args.model))
    clients = [int(c) for c in args.clients.split(",")]
    logs = REPO / "runs" / "bench_serve"
    logs.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    servers = {}
    port = free_port()
    servers["sealion"] = (f"http://127.0.0.1:{port}", "bench", start(
        [py, "-m", "sealion", "serve", model_dir, "--port", str(port), "--served-model-name", "bench",
         "--max-batch", "32", "--dtype", "float32", "--device", "cpu", "--log-level", "warning"],
        logs / "sealion.log"))
    if args.peer != "none":
        port = free_port()
        # the peer's own venv (benchmarks/setup_peers.sh tfserve) when present, else the transformers beside us
        peer_tf = REPO / ".venvs" / "tfserve" / "bin" / "transformers"
        tf = str(peer_tf if peer_tf.exists() else Path(py).with_name("transformers"))
        cmd = [tf, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--dtype", "float32"]
        if args.peer == "cb":
            cmd.append("--continuous-batching")
        servers["transformers"] = (f"http://127.0.0.1:{port}", model_dir, start(cmd, logs / "transformers.log"))
    results: dict[str, list[dict]] = {name: [] for name in servers}
    ttft: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    rss: dict[str, float] = {}
    try:
        for name, (url, _, proc) in servers.items():
            print(f"{name}: ready in {wait_ready(url, proc):.1f} s", flush=True)
        for name, (url, model, _) in servers.items():  # warm-up (first-request costs are not serving speed)
            run_phase(url, model, 1, 1, args.max_tokens)
        for c in clients:
            runs: dict[str, list[dict]] = {name: [] for name in servers}
            for rep in range(args.repeats):
                for name, (url, model, _) in servers.items():
                    r = run_phase(url, model, c, args.requests, args.max_tokens)
                    runs[name].append(r)
                    print(f"{name:13s} C={c:3d} #{rep + 1}  {r['tok_s']:7.2f} tok/s  p50 {r['p50_s']:6.2f} s  "
                          f"p95 {r['p95_s']:6.2f} s  ({r['ok']}/{r['requests']} ok, {r['tokens']} tokens, "
                          f"{r['wall_s']:.1f} s)", flush=True)
            for name in servers:
                results[name].append(median_phase(runs[name]))
        if args.ttft:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            for rep in range(args.repeats):
                for name, (url, model, _) in servers.items():
                    first, second = ttft_pair(url, model, name, tokenizer, session=rep)
                    ttft[name].append((first, second))
                    print(f"{name:13s} TTFT #{rep + 1}: first {first:.3f} s, second {second:.3f} s "
                          f"({second / first:.3f}x)", flush=True)
        for name, (_, _, proc) in servers.items():
            rss[name] = peak_rss_mib(proc.pid)
    finally:
        for _, _, proc in servers.values():
            stop(proc)

    print("\n| clients | sealion tok/s | p50 / p95 s | transformers tok/s | p50 / p95 s | throughput ratio |")
    print("|---|---|---|---|---|---|")
    for i, c in enumerate(clients):
        ours = results["sealion"][i]
        theirs = results.get("transformers", [None] * len(clients))[i]
        if theirs:
            ratio = ours["tok_s"] / theirs["tok_s"] if theirs["tok_s"] else float("inf")
            print(f"| {c} | {ours['tok_s']:.1f} | {ours['p50_s']:.2f} / {ours['p95_s']:.2f} | {theirs['tok_s']:.1f} | "
                  f"{theirs['p50_s']:.2f} / {theirs['p95_s']:.2f} | **{ratio:.2f}x** |")
        else:
            print(f"| {c} | {ours['tok_s']:.1f} | {ours['p50_s']:.2f} / {ours['p95_s']:.2f} | - | - | - |")
    print("\npeak server RSS (VmHWM over its processes): " + ", ".join(f"{n} {v:.0f} MiB" for n, v in rss.items())
          + (f"; ratio {rss['sealion'] / rss['transformers']:.2f}x" if "transformers" in rss else ""))
    for name, pairs in ttft.items():
        if pairs:
            first = statistics.median(p[0] for p in pairs)
            second = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[1] / p[0] for p in pairs)
            print(f"TTFT {name}: first {first:.3f} s, second {second:.3f} s, second/first {ratio:.3f}x "
                  f"(median of {len(pairs)})")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": results,
                                         "peak_rss_mib": rss, "ttft_s": ttft}, indent=2, default=str))
    lost = sum(r["requests"] - r["ok"] for rs in results.values() for r in rs)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

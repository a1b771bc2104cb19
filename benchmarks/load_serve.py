"""Load and fault run against a real `sealion serve` process: 64 concurrent streaming `openai` clients mixing text
and image requests, a third of them disconnecting mid-stream.

Model: the tiny random multimodal Gemma 4 (sliding, full and KV-shared layers, vision and audio towers), written by
`sealion.models.tiny` into the work directory; the server is a separate `sealion serve` process on 127.0.0.1.

1. Reference: every request is sent alone, one after another (greedy ones and seeded sampled ones).
2. Rounds: all 64 requests at once from 64 threads (a barrier releases them together); clients k % 3 == 0 close
   their stream after three chunks. Every other client's full text must equal its reference (a cross-wired or
   truncated response differs), and no request may get a 5xx (the client's status codes and the server's own
   `sealion_requests_total` both count).
3. After each round: the server's batch and queue drain to zero and its RSS is read from /proc; the run passes
   only if RSS after the last round is within `--rss-slack` of RSS after the first (no growth per round).

    .venv/bin/python benchmarks/load_serve.py [--clients 64] [--rounds 3] [--max-tokens 24] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is in the picture?", "Apa yang ada di gambar ini?", "Có gì trong bức ảnh này?",
             "ภาพนี้มีอะไร", "Ano ang nasa larawan?", "படத்தில் என்ன இருக்கிறது?"]
TOPICS = ["rice", "monsoon", "ferries", "batik", "durian", "temples", "markets", "rivers"]


def _png(seed: int, h: int, w: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1000 + seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def build_requests(n: int, max_tokens: int) -> list[dict]:
    """Half image requests (different pictures and sizes), half text; a quarter of all sampled with a seed."""
    reqs = []
    for k in range(n):
        if k % 2 == 0:
            url = "data:image/png;base64," + base64.b64encode(_png(k, 32 + 8 * (k % 5), 40 + 8 * (k % 3))).decode()
            messages = [{"role": "system", "content": "You describe images."},
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                     {"type": "text", "text": QUESTIONS[k % len(QUESTIONS)]}]}]
        else:
            messages = [{"role": "user", "content": f"Tell me about {TOPICS[k % len(TOPICS)]}, item {k}."}]
        sampled = k % 4 == 1
        reqs.append({"messages": messages, "max_tokens": max_tokens,
                     "temperature": 0.8 if sampled else 0.0, **({"seed": 7 + k} if sampled else {})})
    return reqs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metrics(url: str) -> dict:
    import httpx

    text = httpx.get(url + "/metrics", timeout=30).text
    out = {"5xx": 0, "running": None, "waiting": None}
    for line in text.splitlines():
        m = re.match(r'sealion_requests_total\{endpoint="[^"]*",status="(\d+)"\} (\d+)', line)
        if m and m.group(1).startswith("5"):
            out["5xx"] += int(m.group(2))
        elif line.startswith("sealion_running_requests "):
            out["running"] = int(float(line.split()[1]))
        elif line.startswith("sealion_queue_depth "):
            out["waiting"] = int(float(line.split()[1]))
    return out


def stream_one(client, req: dict, *, disconnect_after: int | None = None) -> tuple[str, str | None]:
    """(text, error): the streamed content, or where the client hung up, the text up to then."""
    import openai

    try:
        stream = client.chat.completions.create(model="tiny", stream=True, **req)
        parts, chunks = [], 0
        for chunk in stream:
            chunks += 1
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            if disconnect_after is not None and chunks >= disconnect_after:
                stream.close()
                break
        return "".join(parts), None
    except openai.APIStatusError as e:
        return "", f"HTTP {e.status_code}: {e.message[:120]}"
    except Exception as e:  # a lost request is a failure, reported with the rest
        return "", f"{type(e).__name__}: {e}"[:160]


def wait_drained(url: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while True:
        m = metrics(url)
        if (m["running"] == 0 and m["waiting"] == 0) or time.time() - t0 > timeout:
            return m
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--rss-slack", type=float, default=0.05, help="allowed RSS growth from round 1 to the last")
    ap.add_argument("--work", default=str(REPO / "runs" / "load_serve"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openai

    from sealion.models.tiny import make_tiny_gemma4

    work = Path(args.work)
    model_dir = work / "tiny-mm"
    if not (model_dir / "config.json").exists():
        make_tiny_gemma4(model_dir, multimodal=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sealion_bin = Path(sys.executable).with_name("sealion")
    server = subprocess.Popen([str(sealion_bin), "serve", str(model_dir), "--port", str(port), "--served-model-name",
                               "tiny", "--max-batch", "32", "--max-queue", "256", "--log-level", "warning"],
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    report: dict = {"clients": args.clients, "rounds": [], "failures": []}
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"load_serve: the server exited with {server.returncode} before it was ready")
            time.sleep(0.5)
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)
        reqs = build_requests(args.clients, args.max_tokens)

        t0 = time.time()
        reference = []
        for k, req in enumerate(reqs):
            text, err = stream_one(client, req)
            if err:
                report["failures"].append(f"reference {k}: {err}")
            reference.append(text)
        report["reference_s"] = round(time.time() - t0, 1)
        report["distinct_reference_texts"] = len(set(reference))
        report["rss_baseline_mib"] = round(rss_mib(server.pid), 1)

        for rnd in range(args.rounds):
            results: list = [None] * len(reqs)
            barrier = threading.Barrier(len(reqs))

            def worker(k: int) -> None:
                c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)
                barrier.wait()
                results[k] = stream_one(c, reqs[k], disconnect_after=3 if k % 3 == 0 else None)

            t0 = time.time()
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(reqs))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(900)
            wall = time.time() - t0
            wrong = 0
            for k, (text, err) in enumerate(results):
                if err:
                    report["failures"].append(f"round {rnd} client {k}: {err}")
                elif k % 3 != 0 and text != reference[k]:
                    wrong += 1
                    report["failures"].append(f"round {rnd} client {k}: text differs from its solo reference")
                elif k % 3 == 0 and not reference[k].startswith(text):
                    wrong += 1
                    report["failures"].append(f"round {rnd} client {k}: the partial text is not a prefix")
            drained = wait_drained(url)
            report["rounds"].append({"wall_s": round(wall, 2), "wrong": wrong,
                                     "errors": sum(1 for _, e in results if e),
                                     "disconnected": sum(1 for k in range(len(reqs)) if k % 3 == 0),
                                     "drained": drained["running"] == 0 and drained["waiting"] == 0,
                                     "rss_mib": round(rss_mib(server.pid), 1)})
        final = metrics(url)
        report["server_5xx"] = final["5xx"]
        first, last = report["rounds"][0]["rss_mib"], report["rounds"][-1]["rss_mib"]
        report["rss_growth_first_to_last"] = round(last / first - 1, 4)
        if final["5xx"]:
            report["failures"].append(f"the server counted {final['5xx']} 5xx answers")
        if not all(r["drained"] for r in report["rounds"]):
            report["failures"].append("the batch or queue did not drain after a round")
        if last > first * (1 + args.rss_slack):
            report["failures"].append(f"server RSS grew from {first} MiB to {last} MiB over the rounds")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    report["ok"] = not report["failures"]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""sealion distill vs DistillKit's codec and TRL's GKDTrainer, in one run.

Part 1, capture codec: the demo teacher scores real Indonesian / Vietnamese / Thai text (Belebele passages); for
k = 16, 64, 128 we report bytes per position of sealion's codec, of dense logits (bf16 / fp32), and of DistillKit's
recommended codec (k=128, 16 exact bf16 + 6-term polynomial tail in f32 + 18-bit ids = 344 B at Gemma's vocabulary,
re-implemented here only to measure its fidelity on the same rows). Fidelity = KL(stored || teacher) in nats/position.

Part 2, training (peers.md row 3 settings): teacher = demo (18 layers), student = its layers 0,3,6,9,12,17;
batch 2 x 256 tokens (BOS + 255 tokens of Indonesian Belebele passages, first 16 = prompt), JSD beta 0.5, lr 1e-5,
fp32, 20 steps, tokens/s over steps 4-20, peak RSS of each run's own process. `--repeats N` runs every run N
times, alternating ours and TRL's so a machine's slow spell falls on both, and compares medians; `--runs` picks
which (e.g. `--runs sealion-dense,trl-gkd` for comparison (a) alone). Runs: sealion dense (teacher in the
loop, JSD over every id: TRL's objective, comparison (a)), sealion online (top-k 256 + tail), sealion offline (from
a k=64 capture; comparison (b) adds the capture's teacher passes per trained token), TRL GKDTrainer (lmbda=0,
teacher online, dense JSD) from .venvs/trl. Heavy (TRL peaks at ~13 GB): run under the shared lock:

    flock /tmp/sealion-heavy.lock .venv/bin/python benchmarks/bench_distill.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEALION_SHARED", REPO.parent / "shared"))
WORK = REPO / "runs" / "bench_distill"
LAYERS = [0, 3, 6, 9, 12, 17]
SEQ, PROMPT, BATCH = 256, 16, 2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------- data


def belebele_texts(lang: str) -> list[str]:
    path = SHARED / "data/seahelm-v1/nlu/belebele_mcqa/data/eval" / f"{lang}_belebele.jsonl"
    texts, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)["prompts"][0]["text"]
        if t not in seen:
            seen.add(t)
            texts.append(t)
    return texts


def token_sequences(tokenizer, lang: str, n: int) -> list[list[int]]:
    stream: list[int] = []
    for t in belebele_texts(lang):
        stream.extend(tokenizer(t + "\n\n", add_special_tokens=False)["input_ids"])
        if len(stream) >= n * (SEQ - 1):
            break
    return [[tokenizer.bos_token_id] + stream[i * (SEQ - 1) : (i + 1) * (SEQ - 1)] for i in range(n)]


FLORES = {"id": ("ind_Latn", "Indonesia"), "vi": ("vie_Latn", "Vietnam"), "th": ("tha_Thai", "Thailand"),
          "tl": ("tgl_Latn", "Tagalog"), "ta": ("tam_Taml", "Tamil")}


def instruction_rows(n: int) -> list[dict]:
    """SEA-Instruct-shaped rows (Python-literal `conversations`, `language`) from FLORES translation pairs and
    Belebele passages + questions (answer = the correct option), interleaved over five languages."""
    base = SHARED / "data/seahelm-v1"
    per_source: list[list[dict]] = []
    for lang, (code, name) in FLORES.items():
        rows = []
        for line in (base / f"nlg/translation/data/flores200_dataset/devtest/en_to_{code}.jsonl").read_text(
                encoding="utf-8").splitlines():
            r = json.loads(line)
            conv = [{"role": "user", "content": f"Terjemahkan ke bahasa {name}:\n{r['prompts'][0]['text']}"},
                    {"role": "assistant", "content": r["label"]}]
            rows.append({"conversations": repr(conv), "language": lang, "source": "flores"})
        per_source.append(rows)
        rows = []
        for line in (base / f"nlu/belebele_mcqa/data/eval/{lang}_belebele.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            p = r["prompts"][0]
            answer = p[f"choice{int(r['label']) + 1}"]
            conv = [{"role": "user", "content": f"{p['text']}\n\n{p['question']}"}, {"role": "assistant", "content": answer}]
            rows.append({"conversations": repr(conv), "language": lang, "source": "belebele"})
        per_source.append(rows)
    out = []
    i = 0
    while len(out) < n:
        for rows in per_source:
            if i < len(rows) and len(out) < n:
                out.append(rows[i])
        i += 1
    return out


# ----------------------------------------------------------------------------------------------- part 1


def distillkit_style_roundtrip(lps: np.ndarray, exact_k: int = 16) -> np.ndarray:
    """DistillKit's recommended preset as its README/config describe it: the first exact_k log-probs in bf16, the
    rest a least-squares fit over [1, t, t^2, t^3, t^4, sqrt t] with float32 coefficients (t normalised)."""
    import torch

    head = torch.from_numpy(lps[:, :exact_k].copy()).bfloat16().float().numpy()
    k = lps.shape[1]
    t = np.arange(k - exact_k, dtype=np.float64) / max(k - exact_k - 1, 1)
    basis = np.stack([np.ones_like(t), t, t**2, t**3, t**4, np.sqrt(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, lps[:, exact_k:].T.astype(np.float64), rcond=None)
    tail = (basis @ coef.astype(np.float32).astype(np.float64)).T
    out = np.concatenate([head, tail], axis=1)
    return np.minimum.accumulate(out, axis=1)  # keep it sorted, as a decoder would


def part_codec(demo: Path, n_seq: int) -> dict:
    import torch

    from sealion.distill.codec import CodecConfig, decode, encode, fidelity_kl, tail_logmass
    from sealion.distill.modeling import load_model

    t0 = time.time()
    model, tok, _ = load_model(str(demo))
    model.eval()
    print(f"[codec] teacher loaded in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    top_ids, top_lps = [], []
    per_lang = max(1, n_seq // 3)
    with torch.no_grad():
        for lang in ("id", "vi", "th"):
            for ids in token_sequences(tok, lang, per_lang):
                logits = model(torch.tensor([ids])).logits[0, :-1].float()
                v, i = torch.log_softmax(logits, -1).topk(128, -1)
                top_ids.append(i.numpy())
                top_lps.append(v.double().numpy())
    all_ids, all_lps = np.concatenate(top_ids), np.concatenate(top_lps)
    print(f"[codec] teacher scored {len(all_ids)} positions at {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    n, vocab = all_ids.shape[0], model.config.vocab_size
    out = {"positions": n, "vocab": vocab, "dense_bf16_B": vocab * 2, "dense_fp32_B": vocab * 4, "k": {}}
    for k in (16, 64, 128):
        ids = all_ids[:, :k]
        lps = all_lps[:, :k]
        exact = lps  # the teacher's own log-probs at these ids: KL is measured against them (and the tail)
        pos = np.broadcast_to(np.arange(k), (n, k))
        tail = tail_logmass(lps)
        exact_zero = fidelity_kl(exact, pos, lps).mean()
        exact_tail = fidelity_kl(exact, pos, lps, tail).mean()
        res = {"truncation_kl_zero": exact_zero, "truncation_kl_tail": exact_tail,
               "topk_mass": float(np.exp(lps).sum(1).mean())}
        for step in (1 / 64, 1 / 16):
            for comp in ("lzma", "zlib"):
                cfg = CodecConfig(step=step, compressor=comp)
                t0 = time.time()
                blob = encode(ids, lps, tail, cfg)
                t_enc = time.time() - t0
                t0 = time.time()
                d_ids, d_lps, d_tail = decode(blob, cfg)
                t_dec = time.time() - t0
                assert np.array_equal(d_ids, ids)
                res[f"sealion_step1/{round(1 / step)}_{comp}"] = {
                    "bytes_per_position": len(blob) / n,
                    "kl_zero": fidelity_kl(exact, pos, d_lps).mean(),
                    "kl_tail": fidelity_kl(exact, pos, d_lps, d_tail).mean(),
                    "encode_s": t_enc, "decode_positions_per_s": n / max(t_dec, 1e-9),
                }
        if k == 128:
            dk = distillkit_style_roundtrip(lps)
            res["distillkit_recommended"] = {
                "bytes_per_position": (16 * 16 + 6 * 32 + 128 * 18) / 8,
                "kl_zero": fidelity_kl(exact, pos, dk).mean(),
                "kl_tail": fidelity_kl(exact, pos, dk, tail_logmass(np.minimum(dk, 0))).mean(),
            }
        out["k"][k] = res
        print(f"[codec] k={k} done at {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------------------------- part 2


def prepare_training(demo: Path, steps: int) -> tuple[Path, Path]:
    from sealion.distill import init_student
    from sealion.distill.modeling import cached_tokenizer

    WORK.mkdir(parents=True, exist_ok=True)
    student = WORK / "student-6L"
    if not (student / "config.json").exists():
        init_student(str(demo), LAYERS, student)
    tok = cached_tokenizer(demo)
    seqs = token_sequences(tok, "id", steps * BATCH)
    data = WORK / "train.jsonl"
    data.write_text("".join(json.dumps({"input_ids": s, "prompt_length": PROMPT, "language": "id"}) + "\n" for s in seqs))
    return student, data


def child_sealion(args) -> dict:
    from sealion.distill import CaptureConfig, TrainConfig, capture, train

    times: dict[int, float] = {}
    losses = []

    def cb(e):
        if e.get("event") == "step":
            times[e["step"]] = time.time()
            losses.append(e["loss"])

    import shutil

    out = WORK / f"run-{args.child}"
    shutil.rmtree(out, ignore_errors=True)
    common = dict(student=str(args.student), out=str(out), batch_size=BATCH, micro_batch_size=BATCH, lr=1e-5,
                  divergence="jsd", beta=0.5, temperature=1.0, kd_weight=1.0, ce_weight=0.0, max_steps=args.steps,
                  checkpoint_every=0, progress=False, callback=cb, max_length=SEQ)
    capture_s = None
    if args.child == "sealion-online":
        cfg = TrainConfig(teacher=str(args.teacher), data=[str(args.data)], online_k=256, **common)
    elif args.child == "sealion-dense":  # TRL's objective: JSD over every id of the vocabulary, teacher online
        vocab = json.loads((Path(args.student) / "config.json").read_text())
        vocab = vocab.get("vocab_size") or vocab["text_config"]["vocab_size"]
        cfg = TrainConfig(teacher=str(args.teacher), data=[str(args.data)], online_k=vocab, **common)
    else:
        cap = WORK / "capture-k64"
        shutil.rmtree(cap, ignore_errors=True)
        t0 = time.time()
        capture(CaptureConfig(teacher=str(args.teacher), data=[str(args.data)], out=str(cap), k=64, max_length=SEQ,
                              progress=False, callback=lambda e: None))
        capture_s = time.time() - t0  # the teacher's forward passes over every training token, paid once
        cfg = TrainConfig(capture=str(cap), **common)
    train(cfg)
    s0, s1 = 3, args.steps
    res = {"tokens_per_s": (s1 - s0) * BATCH * SEQ / (times[s1] - times[s0]), "peak_rss_mb": _peak_rss_mb(),
           "s_per_step": (times[s1] - times[s0]) / (s1 - s0), "loss_first": losses[0], "loss_last": losses[-1]}
    if capture_s is not None:
        captured = args.steps * BATCH * SEQ
        res["capture_s"] = capture_s
        # per trained token: its share of the capture plus a steady-state training step
        res["tokens_per_s_with_capture"] = 1.0 / (capture_s / captured + 1.0 / res["tokens_per_s"])
    return res


def child_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    torch.manual_seed(0)
    rows = [json.loads(x) for x in Path(args.data).read_text().splitlines()]
    ds = Dataset.from_list([{"input_ids": r["input_ids"]} for r in rows])

    def collate(batch):  # equal-length rows: no padding; the first PROMPT tokens are not learned
        ids = torch.tensor([b["input_ids"] for b in batch])
        labels = ids.clone()
        labels[:, :PROMPT] = -100
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                "prompts": ids[:, :PROMPT]}
    tok = AutoTokenizer.from_pretrained(args.teacher)
    student = AutoModelForCausalLM.from_pretrained(args.student, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(args.teacher, dtype=torch.float32)
    times: dict[int, float] = {}
    losses = []

    class Timer(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            times[state.global_step] = time.time()

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    cfg = GKDConfig(output_dir=str(WORK / "run-trl"), per_device_train_batch_size=BATCH, max_steps=args.steps,
                    learning_rate=1e-5, lmbda=0.0, beta=0.5, logging_steps=1, save_strategy="no", report_to=[],
                    use_cpu=True, bf16=False, fp16=False, max_length=SEQ, dataset_kwargs={"skip_prepare_dataset": True},
                    remove_unused_columns=False, seed=0, dataloader_num_workers=0)
    trainer = GKDTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=ds, processing_class=tok,
                         data_collator=collate, callbacks=[Timer()])
    trainer.train()
    s0, s1 = 3, args.steps
    return {"tokens_per_s": (s1 - s0) * BATCH * SEQ / (times[s1] - times[s0]), "peak_rss_mb": _peak_rss_mb(),
            "s_per_step": (times[s1] - times[s0]) / (s1 - s0), "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None}


def run_child(python: str, name: str, teacher: Path, student: Path, data: Path, steps: int) -> dict:
    cmd = [python, __file__, "--child", name, "--teacher", str(teacher), "--student", str(student), "--data",
           str(data), "--steps", str(steps)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src"), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.time() - t0
    return res


RUNS = ("sealion-dense", "sealion-online", "sealion-offline", "trl-gkd")


def _median_run(trials: list[dict]) -> dict:
    """The median of each figure over a run's repeats, and the repeats themselves; an error if any repeat failed."""
    ok = [t for t in trials if "error" not in t]
    if len(ok) < len(trials):
        return next(t for t in trials if "error" in t)
    keys = [k for k in ok[0] if isinstance(ok[0][k], (int, float))]
    return {**{k: float(np.median([t[k] for t in ok])) for k in keys}, "repeats": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["codec", "train", "all", "data"], default="all",
                    help="data: only write runs/bench_distill/sea_demo.jsonl (--rows rows) for the CLI walkthrough")
    ap.add_argument("--rows", type=int, default=320)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--codec-seqs", type=int, default=12, help="sequences of 256 tokens scored for the codec part")
    ap.add_argument("--trl-python", default=str(REPO / ".venvs/trl/bin/python"))
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    ap.add_argument("--repeats", type=int, default=1, help="each run this many times, alternating; medians compared")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--teacher", help=argparse.SUPPRESS)
    ap.add_argument("--student", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child_trl(args) if args.child == "trl" else child_sealion(args)
        print(json.dumps(res))
        return

    if args.part == "data":
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / "sea_demo.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in instruction_rows(args.rows)),
                        encoding="utf-8")
        print(path)
        return

    from sealion.models import demo_path

    demo = demo_path()
    report: dict = {}
    if args.part in ("codec", "all"):
        report["codec"] = part_codec(demo, args.codec_seqs)
        c = report["codec"]
        print(f"\n== capture codec ({c['positions']} positions, vocab {c['vocab']}) ==")
        print(f"dense logits: {c['dense_bf16_B']} B/position (bf16), {c['dense_fp32_B']} B (fp32)")
        for k, r in c["k"].items():
            best = r["sealion_step1/64_lzma"]
            print(f"k={k:>3}: sealion {best['bytes_per_position']:.1f} B/pos (KL zero {best['kl_zero']:.5f}, tail "
                  f"{best['kl_tail']:.6f}; truncation alone {r['truncation_kl_zero']:.5f}/{r['truncation_kl_tail']:.6f}); "
                  f"zlib {r['sealion_step1/64_zlib']['bytes_per_position']:.1f} B; step 1/16 lzma "
                  f"{r['sealion_step1/16_lzma']['bytes_per_position']:.1f} B")
            if "distillkit_recommended" in r:
                d = r["distillkit_recommended"]
                print(f"       DistillKit recommended {d['bytes_per_position']:.0f} B/pos (KL zero {d['kl_zero']:.5f}, "
                      f"tail {d['kl_tail']:.6f}) -> sealion is {d['bytes_per_position'] / best['bytes_per_position']:.2f}x "
                      f"smaller; dense bf16 is {c['dense_bf16_B'] / best['bytes_per_position']:.0f}x larger")
    if args.part in ("train", "all"):
        student, data = prepare_training(demo, args.steps)
        names = [n for n in args.runs.split(",") if n and not (args.skip_trl and n == "trl-gkd")]
        unknown = sorted(set(names) - set(RUNS))
        if unknown:
            raise SystemExit(f"--runs: unknown run(s) {', '.join(unknown)} (known: {', '.join(RUNS)})")
        trials: dict[str, list[dict]] = {n: [] for n in names}
        for rep in range(args.repeats):
            order = names if rep % 2 == 0 else names[::-1]  # alternate: a slow spell falls on both sides
            for name in order:
                python, child = (args.trl_python, "trl") if name == "trl-gkd" else (sys.executable, name)
                trials[name].append(run_child(python, child, demo, student, data, args.steps))
                print(name, f"repeat {rep + 1}/{args.repeats}", json.dumps(trials[name][-1]), flush=True)
        runs = {n: _median_run(t) for n, t in trials.items()}
        report["train"] = runs
        t = runs.get("trl-gkd", {})
        if "tokens_per_s" in t:
            print("\n(a) same objective as TRL (dense JSD beta 0.5, teacher online): sealion-dense; the others are "
                  "sealion's own objective (top-k + tail)")
            print(f"medians of {args.repeats} repeat(s), alternating")
            for name in ("sealion-dense", "sealion-online", "sealion-offline"):
                r = runs.get(name, {})
                if "tokens_per_s" in r:
                    print(f"{name}: {r['tokens_per_s']:.1f} tok/s vs TRL {t['tokens_per_s']:.1f} -> "
                          f"{r['tokens_per_s'] / t['tokens_per_s']:.2f}x; peak RSS {r['peak_rss_mb']:.0f} MiB vs "
                          f"{t['peak_rss_mb']:.0f} MiB ({r['peak_rss_mb'] / t['peak_rss_mb']:.2f}x)")
            r = runs.get("sealion-offline", {})
            if "tokens_per_s_with_capture" in r:
                print(f"(b) capture + offline training, per trained token: {r['tokens_per_s_with_capture']:.1f} tok/s "
                      f"(capture {r['capture_s']:.1f} s for {args.steps * BATCH * SEQ} tokens) vs TRL "
                      f"{t['tokens_per_s']:.1f} -> {r['tokens_per_s_with_capture'] / t['tokens_per_s']:.2f}x")
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "report.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **report}, indent=2, default=float))  # keep the other part's figures
    print(f"\nreport: {WORK / 'report.json'}")


if __name__ == "__main__":
    main()

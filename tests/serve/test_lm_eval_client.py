"""lm-evaluation-harness, a client this project did not write, drives the server: `local-completions` on a
loglikelihood task and a generate_until task, `local-chat-completions` on a chat task.

lm_eval runs as a subprocess: the interpreter in $SEALION_LM_EVAL_PYTHON (a venv with `lm-eval==0.4.*`), else the
peer venv `benchmarks/setup_peers.sh lmeval` makes (.venvs/lmeval), else this one when it can import lm_eval;
otherwise the test is skipped. Its per-sample logs are compared with log_softmax of
the transformers model's logits and with greedy decoding of the model itself.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scripted import GREET


def _lm_eval_python() -> str:
    python = os.environ.get("SEALION_LM_EVAL_PYTHON")
    if python:
        return python
    peer = Path(__file__).resolve().parents[2] / ".venvs" / "lmeval" / "bin" / "python"
    if (peer.parent.parent / ".installed").is_file():  # benchmarks/setup_peers.sh lmeval made it
        return str(peer)
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        pytest.skip("lm_eval is not importable (set SEALION_LM_EVAL_PYTHON to a venv with lm-eval==0.4.*)",
                    allow_module_level=True)
    return sys.executable


LM_EVAL_PYTHON = _lm_eval_python()  # skips the module before any server starts


MC_DOCS = [
    {"question": "Ibu kota Indonesia adalah", "choices": ["Jakarta", "Bandung", "Surabaya"], "answer": 0},
    {"question": "Satu, dua,", "choices": ["tiga", "empat"], "answer": 1},
    {"question": "Xin chào, bạn", "choices": ["khỏe không", "ở đâu", "là ai"], "answer": 2},
]
GEN_DOCS = [{"question": "Halo, apa kabar", "answer": "baik"}, {"question": "The capital of France is",
                                                                  "answer": "Paris"}]
CHAT_DOCS = [{"question": GREET[0]["content"], "answer": "Hello there!"}]


def _task_dir(root: Path) -> Path:
    """Three tiny tasks over local JSONL files (no hub access)."""
    tasks = root / "tasks"
    tasks.mkdir()
    for name, docs in (("mc", MC_DOCS), ("gen", GEN_DOCS), ("chat", CHAT_DOCS)):
        (tasks / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    common = "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {path}\ntest_split: test\n"
    (tasks / "mc.yaml").write_text(
        "task: sealion_tiny_mc\n" + common.format(path=tasks / "mc.jsonl")
        + "output_type: multiple_choice\ndoc_to_text: '{{question}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{answer}}'\nmetric_list:\n  - metric: acc\n")
    for name in ("gen", "chat"):
        (tasks / f"{name}.yaml").write_text(
            f"task: sealion_tiny_{name}\n" + common.format(path=tasks / f"{name}.jsonl")
            + "output_type: generate_until\ndoc_to_text: '{{question}}'\ndoc_to_target: '{{answer}}'\n"
            "generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 8\n  do_sample: false\n"
            "metric_list:\n  - metric: exact_match\n")
    return tasks


def _run(python: str, tmp: Path, model: str, url: str, tasks: str, *extra: str) -> tuple[dict[str, list[dict]], str]:
    out = tmp / f"out-{model}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    r = subprocess.run([python, "-m", "lm_eval", "run", "--model", model, "--model_args",
                        f"model=tiny,base_url={url},num_concurrent=1,max_retries=1,max_length=512",
                        "--tasks", tasks, "--include_path", str(tmp / "tasks"), "--output_path", str(out),
                        "--log_samples", "--seed", "0", *extra],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    samples: dict[str, list[dict]] = {}
    for f in out.rglob("samples_*.jsonl"):
        task = f.name[len("samples_"):].rsplit("_", 1)[0]
        samples[task] = sorted((json.loads(line) for line in f.read_text().splitlines()),
                               key=lambda s: s["doc_id"])
    return samples, r.stdout + r.stderr


def _args(sample: dict) -> list[tuple]:
    """Each request's arguments, in either of lm-eval's log formats."""
    args = sample["arguments"]
    args = list(args.values()) if isinstance(args, dict) else args  # {"gen_args_0": {"arg_0", "arg_1"}, ...}
    return [tuple(a.values()) if isinstance(a, dict) else tuple(a) for a in args]


def _log_softmax(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)


@pytest.fixture(scope="module")
def lm_eval_python():
    return LM_EVAL_PYTHON


def test_local_completions_loglikelihood_and_generate_until(lm_eval_python, tmp_path, server, scripted_model):
    model, tok = scripted_model
    _task_dir(tmp_path)
    samples, log = _run(lm_eval_python, tmp_path, "local-completions", server.url + "/v1/completions",
                        "sealion_tiny_mc,sealion_tiny_gen")
    assert "remote tokenizer backend" in log  # found /tokenizer_info and /tokenize
    # loglikelihood: lm-eval tokenized through the server's /tokenize (its remote tokenizer, no special tokens)
    correct = []
    for doc, sample in zip(MC_DOCS, samples["sealion_tiny_mc"]):
        lls = []
        for (context, continuation), resp in zip(_args(sample), sample["resps"]):
            whole = tok(context + continuation, add_special_tokens=False).input_ids
            ctxlen = len(tok(context, add_special_tokens=False).input_ids)
            ref = _log_softmax(model, whole)
            want = sum(float(ref[t - 1, whole[t]]) for t in range(ctxlen, len(whole)))
            greedy = all(int(ref[t - 1].argmax()) == whole[t] for t in range(ctxlen, len(whole)))
            got, got_greedy = resp[0]  # logged as strings
            assert math.isclose(float(got), want, abs_tol=1e-3), (context, continuation)
            assert str(got_greedy) == str(greedy)
            lls.append(want)
        correct.append(max(range(len(lls)), key=lls.__getitem__) == doc["answer"])
    assert [s["acc"] for s in samples["sealion_tiny_mc"]] == [float(c) for c in correct]
    # generate_until: the model's own greedy continuation of the same ids, cut at the stop string
    eos = {int(i) for i in [tok.eos_token_id, *(_ids(model.generation_config.eos_token_id))] if i is not None}
    for sample in samples["sealion_tiny_gen"]:
        context = _args(sample)[0][0]
        ids = tok(context, add_special_tokens=False).input_ids
        out = []
        for _ in range(8):
            nxt = int(_log_softmax(model, ids + out)[-1].argmax())
            if nxt in eos:
                break
            out.append(nxt)
        want = tok.decode(out, skip_special_tokens=True).split("\n")[0]
        assert sample["resps"][0][0] == want


def _ids(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def test_local_chat_completions(lm_eval_python, tmp_path, server):
    _task_dir(tmp_path)
    samples, _ = _run(lm_eval_python, tmp_path, "local-chat-completions", server.url + "/v1/chat/completions",
                   "sealion_tiny_chat", "--apply_chat_template")
    (sample,) = samples["sealion_tiny_chat"]
    assert sample["resps"][0][0] == "Hello there!"  # the scripted model's answer to "Hi"
    assert sample["exact_match"] == 1.0

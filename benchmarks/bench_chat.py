"""sealion.chat vs transformers on Gemma 4 prompt rendering and output parsing, side by side in one run.

Rendering: the 42 conformance conversations (tests/chat/conversations.py) through
  - transformers' `render_jinja_template` with Google's official 2026-07-09 template (what apply_chat_template does),
  - `sealion.chat.render` (the package's Python renderer),
  - `sealion.chat.render(template=gemma4_template())` (sealion's own Jinja template in its sandbox);
  every output is checked equal before timing.
Parsing: recorded-style outputs (tests/chat/test_parse.py) through
  - transformers' `parse_response` / streaming `ResponseParser` with its built-in Gemma 4 response template,
  - `sealion.chat.parse` / `StreamParser`,
  batch and character-by-character streaming; it also counts where each parser gets the expected message.

    .venv/bin/python benchmarks/bench_chat.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
OFFICIAL = REPO.parent / "shared" / "reference" / "gemma4-templates" / "gemma4_e2b_chat_template_2026-07-09.jinja"


def best_of(fn, repeat: int) -> float:
    """Median seconds of `repeat` runs of fn()."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_render(repeat: int) -> None:
    from transformers.utils.chat_template_utils import render_jinja_template

    import sealion.chat as chat
    from tests.chat.conversations import CASES

    official = OFFICIAL.read_text()
    own_template = chat.gemma4_template()

    def hf_all():
        out = []
        for _, messages, kwargs in CASES:
            opts = dict(kwargs)
            tools = opts.pop("tools", None)
            add = opts.pop("add_generation_prompt", True)
            text, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=official,
                                            add_generation_prompt=add, bos_token="<bos>", **opts)
            out.append(text[0])
        return out

    def own_all():
        return [chat.render(m, **k) for _, m, k in CASES]

    def own_jinja_all():
        return [chat.render(m, template=own_template, **k) for _, m, k in CASES]

    assert hf_all() == own_all() == own_jinja_all(), "renderers disagree"
    t_hf, t_own, t_jinja = (best_of(f, repeat) for f in (hf_all, own_all, own_jinja_all))
    n = len(CASES)
    print(f"render ({n} conversations, byte-identical outputs)")
    print(f"  transformers render_jinja_template + official template: {t_hf / n * 1e6:8.1f} us/conversation")
    print(f"  sealion.chat.render (Python renderer):                  {t_own / n * 1e6:8.1f} us/conversation"
          f"  -> {t_hf / t_own:.2f}x transformers")
    print(f"  sealion.chat.render(template=gemma4_template()):        {t_jinja / n * 1e6:8.1f} us/conversation"
          f"  -> {t_hf / t_jinja:.2f}x transformers")


def bench_parse(repeat: int) -> None:
    from transformers.cli.serving.utils import _RESPONSE_TEMPLATE_FALLBACKS
    from transformers.utils.chat_parsing import ResponseParser, parse_response

    import sealion.chat as chat
    from tests.chat.test_parse import EXPECTED, RECORDED

    schema = next(v for k, v in _RESPONSE_TEMPLATE_FALLBACKS.items() if "gemma4" in k)
    prefix = "<|turn>model\n"
    names = sorted(RECORDED)

    def hf_message(text):
        try:
            return parse_response(text, schema, prefix=prefix)
        except Exception as e:  # noqa: BLE001 - counted as a failure
            return {"error": repr(e)}

    def hf_ok(name):
        msg = hf_message(RECORDED[name])
        reasoning, content, calls = EXPECTED[name]
        got_calls = []
        for c in msg.get("tool_calls") or []:
            args = c["function"]["arguments"]
            got_calls.append((c["function"]["name"], json.loads(args) if isinstance(args, str) else args))
        return (msg.get("reasoning_content") or "", (msg.get("content") or "").strip(), got_calls) == \
            (reasoning, content, calls)

    def own_ok(name):
        p = chat.parse(RECORDED[name])
        got = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in p.tool_calls]
        return (p.reasoning, p.content, got) == EXPECTED[name]

    hf_good = [n for n in names if hf_ok(n)]
    own_good = [n for n in names if own_ok(n)]

    def hf_batch():
        for n in names:
            hf_message(RECORDED[n])

    def own_batch():
        for n in names:
            chat.parse(RECORDED[n])

    def hf_stream():
        for n in names:
            try:
                parser = ResponseParser(schema, prefix=prefix)
                for ch in RECORDED[n]:
                    parser.feed(ch)
                parser.finalize()
            except Exception:  # noqa: BLE001
                pass

    def own_stream():
        for n in names:
            parser = chat.StreamParser()
            for ch in RECORDED[n]:
                parser.feed(ch)
            parser.finish()

    t = {k: best_of(f, repeat) for k, f in
         (("hf_batch", hf_batch), ("own_batch", own_batch), ("hf_stream", hf_stream), ("own_stream", own_stream))}
    n = len(names)
    chars = sum(len(RECORDED[x]) for x in names)
    print(f"parse ({n} recorded outputs, {chars} chars)")
    print(f"  expected message recovered: transformers {len(hf_good)}/{n}, sealion {len(own_good)}/{n}")
    print(f"    transformers misses: {', '.join(sorted(set(names) - set(hf_good))) or '-'}")
    print(f"  batch:  transformers {t['hf_batch'] / n * 1e6:8.1f} us/output, sealion "
          f"{t['own_batch'] / n * 1e6:8.1f} us/output -> {t['hf_batch'] / t['own_batch']:.2f}x")
    print(f"  stream (1 char per delta): transformers {t['hf_stream'] / chars * 1e6:6.2f} us/char, sealion "
          f"{t['own_stream'] / chars * 1e6:6.2f} us/char -> {t['hf_stream'] / t['own_stream']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if not OFFICIAL.exists():
        sys.exit(f"needs the official template fixture at {OFFICIAL}")
    bench_render(args.repeat)
    bench_parse(args.repeat)


if __name__ == "__main__":
    main()

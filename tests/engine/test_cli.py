"""`sealion generate` on a tiny model: batches from a file or stdin, JSON output, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "sealion", *args], capture_output=True, text=True, input=stdin,
                          timeout=600)


def test_generate_batch_from_stdin_json(tiny_text_dir):
    r = run("generate", str(tiny_text_dir), "--prompts-file", "-", "--json", "--max-new-tokens", "4",
            "--temperature", "0", stdin="Hello\nIbu kota\n\nXin chào\n")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["prompt"] for row in rows] == ["Hello", "Ibu kota", "Xin chào"]
    assert all(row["completion_tokens"] == 4 and row["finish_reason"] == "length" for row in rows)


def test_generate_errors_are_one_line(tmp_path):
    r = run("generate", str(tmp_path / "nope"), "--prompt", "x")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("sealion: error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_every_verb_has_help_with_example():
    r = run("--help")
    assert r.returncode == 0
    verbs = ["generate", "chat", "serve", "eval", "distill", "merge", "recipe"]
    for verb in verbs:
        assert verb in r.stdout, verb
        h = run(verb, "--help")
        assert h.returncode == 0 and "example" in h.stdout.lower(), verb


def test_stop_strings_from_the_shell_read_escapes():
    from sealion.engine.cli import unescape_stop

    assert unescape_stop(r"\n\n") == "\n\n"
    assert unescape_stop(r"a\tb\\n") == "a\tb\\n"  # an escaped backslash stays a backslash
    assert unescape_stop("Jawaban:") == "Jawaban:" and unescape_stop("\\") == "\\"

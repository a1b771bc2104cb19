"""`sealion generate` on a tiny model: batches from a file or stdin, JSON output, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


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


@pytest.mark.parametrize("verb", ["generate", "chat"])
@pytest.mark.parametrize("flags, message", [
    (["--temperature", "-1"], "sealion: error: --temperature: must be between 0 and 2, got -1"),
    (["--top-p", "1.5"], "sealion: error: --top-p: must be in (0, 1], got 1.5"),
    (["--top-p", "-0.5"], "sealion: error: --top-p: must be in (0, 1], got -0.5"),
    (["--max-new-tokens", "0"], "sealion: error: --max-new-tokens: must be at least 1 (0 only with prompt_logprobs), got 0"),
    (["--dtype", "float64"], "error: argument --dtype: invalid choice: 'float64' (choose from 'float32', "
                             "'bfloat16', 'float16', 'bf16')"),
])
def test_bad_sampling_flags_are_refused_before_loading(tmp_path, verb, flags, message, capsys):
    """In-process (fast); the model path does not exist, so a refusal naming the flag proves the check ran first."""
    from sealion.cli import main

    with pytest.raises(SystemExit) as e:
        main([verb, str(tmp_path / "no-model"), *(["--prompt", "x"] if verb == "generate" else []), *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def _main(capsys, *args):
    """The CLI in-process (torch is already imported: much faster than a subprocess on a busy machine)."""
    from sealion.cli import main

    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_out_file_is_written_per_batch_and_resumes(tiny_text_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello\nIbu kota\nXin chào\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ("generate", str(tiny_text_dir), "--prompts-file", str(prompts), "--out", str(out), "--batch-size", "1",
            "--max-new-tokens", "3", "--temperature", "0")
    rc, stdout, stderr = _main(capsys, *args)
    assert rc == 0, stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(row["index"], row["prompt"]) for row in rows] == [(0, "Hello"), (1, "Ibu kota"), (2, "Xin chào")]
    assert stdout.count("### ") == 3 and "generate" not in stderr  # no bar when stderr is not a terminal
    # a run killed while writing its second row: the finished row stays, the torn one is dropped and redone
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][:10], encoding="utf-8")
    rc, stdout, stderr = _main(capsys, *args, "--progress")
    assert rc == 0, stderr
    assert "1 of 3 prompts already answered" in stderr and "generating the other 2" in stderr
    assert "3/3" in stderr and stdout.count("### ") == 2  # the bar, asked for; only the new results
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == rows  # greedy: same rows
    other = tmp_path / "other.txt"
    other.write_text("Something else\n", encoding="utf-8")
    rc, _, stderr = _main(capsys, "generate", str(tiny_text_dir), "--prompts-file", str(other), "--out", str(out))
    assert rc == 1 and f"{out}:1: row 0 answers another prompt" in stderr


def test_chat_on_a_model_without_a_chat_template_warns(tiny_gemma3_dir, tiny_text_dir, capsys):
    rc, _, stderr = _main(capsys, "generate", str(tiny_gemma3_dir), "--chat", "--prompt", "Hi", "--json",
                          "--max-new-tokens", "2")
    assert rc == 0, stderr
    assert (f"sealion generate: warning: {tiny_gemma3_dir} has no chat template (a base model?)" in stderr
            and f"sealion generate {tiny_gemma3_dir} --prompt" in stderr)
    rc, _, stderr = _main(capsys, "generate", str(tiny_text_dir), "--chat", "--prompt", "Hi", "--json",
                          "--max-new-tokens", "2")
    assert rc == 0 and "chat template" not in stderr

"""The first hour of a new user: long steps say what they are doing (the rest of issue 18 is tested in the verbs'
own test files: tests/serve/test_cli.py, tests/engine/test_cli.py, tests/recipe/test_recipe.py)."""

from __future__ import annotations

import io

import pytest

from sealion.errors import ModelLoadError
from sealion.models.convert import announce, gguf_to_hf_dir


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_announce_says_what_runs_and_how_long_it_took():
    plain = io.StringIO()
    with announce("converting x", stream=plain):
        pass
    assert plain.getvalue().splitlines() == ["sealion: converting x ...", "sealion: converting x: done in 0 s"]
    term = _Terminal()
    with pytest.raises(ValueError):
        with announce("converting y", stream=term, tick=0.01):
            import time

            time.sleep(0.05)
            raise ValueError
    text = term.getvalue()
    assert "\rsealion: converting y ... 0 s" in text  # the live counter, rewritten in place
    assert text.endswith("\rsealion: converting y: failed in 0 s\n")


def test_gguf_conversion_is_announced_before_the_slow_part(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="cannot read GGUF"):
        gguf_to_hf_dir(bad, tmp_path / "out")
    err = capsys.readouterr().err
    assert err.startswith(f"sealion: converting broken.gguf to safetensors in {tmp_path / 'out'} (once;")
    assert ": failed in" in err and not (tmp_path / "out").exists()

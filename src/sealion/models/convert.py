"""Turn a GGUF file into a Hugging Face safetensors directory (dequantised), once, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from ..errors import ModelLoadError


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]


@contextmanager
def announce(what: str, *, stream: TextIO | None = None, tick: float = 1.0) -> Iterator[None]:
    """Say on stderr what a long silent step is doing; on a terminal, a seconds counter runs on the same line.
    Ends with how long it took (or that it failed), so a minute of conversion is never a silent minute."""
    stream = stream or sys.stderr
    live = stream.isatty()
    t0 = time.monotonic()
    stream.write(f"sealion: {what} ...")
    stream.write("" if live else "\n")
    stream.flush()
    stop = threading.Event()

    def counter() -> None:
        while not stop.wait(tick):
            stream.write(f"\rsealion: {what} ... {time.monotonic() - t0:.0f} s")
            stream.flush()

    ticker = threading.Thread(target=counter, name="sealion-progress", daemon=True) if live else None
    if ticker:
        ticker.start()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        stop.set()
        if ticker:
            ticker.join()
        stream.write(f"{chr(13) if live else ''}sealion: {what}: {outcome} in {time.monotonic() - t0:.0f} s\n")
        stream.flush()


def gguf_to_hf_dir(gguf_file: Path, out_dir: Path, *, dtype: str = "float32") -> Path:
    """Dequantise `gguf_file` with transformers and save it as safetensors in `out_dir`.

    Writes into a temp dir beside `out_dir` and renames at the end, so a killed conversion leaves nothing behind.
    Skips the work when `out_dir` already holds a finished conversion of the same file.
    """
    gguf_file = Path(gguf_file)
    out_dir = Path(out_dir)
    key = _file_key(gguf_file)
    marker = out_dir / "sealion_conversion.json"
    if marker.exists() and json.loads(marker.read_text()).get("source_key") == key:
        return out_dir
    if not gguf_file.exists():
        raise ModelLoadError(f"{gguf_file}: GGUF file does not exist")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with announce(f"converting {gguf_file.name} to safetensors in {out_dir} (once; about a minute per "
                      "100M parameters on a CPU)"):
            _convert(gguf_file, tmp, dtype)
        (tmp / "sealion_conversion.json").write_text(
            json.dumps({"source": str(gguf_file), "source_key": key, "dtype": dtype}, indent=2)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _convert(gguf_file: Path, tmp: Path, dtype: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent), gguf_file=gguf_file.name, dtype=getattr(torch, dtype)
        )
    except Exception as e:  # gguf raises many kinds of errors on bad files
        raise ModelLoadError(f"{gguf_file}: cannot read GGUF file ({type(e).__name__}: {e})") from e
    # The weights are already dequantised; drop the quantizer so save_pretrained writes plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)

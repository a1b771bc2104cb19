"""Turn a GGUF file into a Hugging Face safetensors directory (dequantised), once, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelLoadError


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]


def gguf_to_hf_dir(gguf_file: Path, out_dir: Path, *, dtype: str = "float32") -> Path:
    """Dequantise `gguf_file` with transformers and save it as safetensors in `out_dir`.

    Writes into a temp dir beside `out_dir` and renames at the end, so a killed conversion leaves nothing behind.
    Skips the work when `out_dir` already holds a finished conversion of the same file.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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

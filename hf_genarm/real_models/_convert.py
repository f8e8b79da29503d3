"""A GGUF file to a plain Hugging Face folder (safetensors, float32, tokenizer), recorded and moved into place."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RECORD_NAME = "hf_genarm_real_model.json"
# What a finished folder holds besides the record: written last, so their presence with the record means complete.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def convert_gguf(gguf_path: Path, output: Path, record: dict[str, Any]) -> None:
    """Dequantize `gguf_path` with transformers' GGUF loader and save it as a plain folder with its tokenizer.

    The folder loads with `AutoModelForCausalLM.from_pretrained(output)` alone: no `gguf` package, no quantizer.
    `gguf_path` is removed once read (it may lie in `output`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The loader has already dequantized every weight to float32; the GGUF quantizer it leaves attached would make
    # the saved config claim a quantization no reader can apply to safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    gguf_path.unlink()
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    record = {
        **record,
        "converted_with": {name: _installed_version(name) for name in ("transformers", "gguf", "torch")},
    }
    (output / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's record when the folder is a finished conversion, else `None`."""
    if not all((folder / name).is_file() for name in (RECORD_NAME, *REQUIRED_FILES)):
        return None
    try:
        return json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

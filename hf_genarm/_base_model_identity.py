"""What identifies the base model of a LoRA adapter, recorded when the adapter is saved and checked when it loads.

An adapter only means something on the weights it was trained on; its `adapter_config.json` names the base by
path or Hub id, and the model at that name can change (a folder overwritten by another model of the same
architecture, a wider model, a larger vocabulary). The record, `RewardModelMetadata.base_model_fingerprint`, holds:

- `config_sha256`: a hash of the base's configuration without the fields that change with how it is loaded
  (name, dtype, attention implementation, transformers version, quantization);
- `vocab_size` and `hidden_size`: the input embedding's shape, to name a change and to stop a wider base before
  PEFT fails with "size mismatch";
- `weights_sample`: 32 values of the input embedding at fixed positions, compared with a tolerance so that the
  same base loaded in another dtype (bfloat16, float16) still matches. Reading them costs nothing, unlike a
  checksum of every weight.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import torch

_SAMPLE_SIZE = 32
# Fields of a configuration that depend on how a model was loaded, not on which model it is.
_LOAD_TIME_FIELDS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "quantization_config",
        "use_cache",
        "attn_implementation",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "architectures",
    }
)
# bfloat16 keeps 8 significant bits: the same weights read in it differ by under 1% (plus float16's subnormals).
_SAMPLE_RTOL, _SAMPLE_ATOL = 1e-2, 1e-4


def _identity_fields(config: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _identity_fields(value) if isinstance(value, dict) else value
        for key, value in config.items()
        if key not in _LOAD_TIME_FIELDS and not str(key).startswith("_")
    }


def _base_of(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "peft_config") else model


def _base_embedding(base: torch.nn.Module) -> torch.Tensor:
    """The input embedding weights of `base`, under any PEFT wrapping of the embedding layer."""
    embedding = base.get_input_embeddings()
    # A LoRA on the embedding keeps the base layer as `base_layer`; `modules_to_save` keeps it as `original_module`.
    for attribute in ("base_layer", "original_module"):
        inner = getattr(embedding, attribute, None)
        if isinstance(inner, torch.nn.Module):
            embedding = inner
    return embedding.weight


def base_model_fingerprint(model: torch.nn.Module) -> dict[str, Any]:
    """The record of the base model under `model` (a PEFT model, or the plain causal LM an adapter goes on).

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> record = base_model_fingerprint(make_tiny_causal_lm())
    >>> sorted(record), len(record["weights_sample"])
    (['config_sha256', 'hidden_size', 'vocab_size', 'weights_sample'], 32)
    ```
    """
    base = _base_of(model)
    config = json.dumps(_identity_fields(base.config.to_dict()), sort_keys=True, default=str)
    weights = _base_embedding(base).detach()
    flat = weights.reshape(-1)
    positions = torch.linspace(0, flat.numel() - 1, _SAMPLE_SIZE).round().long().to(flat.device)
    return {
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "vocab_size": int(weights.shape[0]),
        "hidden_size": int(weights.shape[1]),
        "weights_sample": [float(value) for value in flat[positions].float().cpu()],
    }


def base_model_difference(recorded: dict[str, Any], base: torch.nn.Module) -> tuple[str | None, bool]:
    """How `base` differs from the base an adapter recorded, and whether PEFT could even load the adapter on it.

    Returns:
        `tuple[str | None, bool]`: a description of the difference (`None` when it is the recorded base), and
        whether the shapes differ (PEFT would fail with "size mismatch").
    """
    found = base_model_fingerprint(base)
    shapes = [
        f"{name} {recorded[name]} recorded, {found[name]} found"
        for name in ("vocab_size", "hidden_size")
        if recorded.get(name) is not None and recorded[name] != found[name]
    ]
    if shapes:
        return "; ".join(shapes), True
    if recorded.get("config_sha256") not in (None, found["config_sha256"]):
        return "its configuration differs from the recorded base's", False
    sample = recorded.get("weights_sample")
    if (
        sample
        and len(sample) == len(found["weights_sample"])
        and not all(
            math.isclose(old, new, rel_tol=_SAMPLE_RTOL, abs_tol=_SAMPLE_ATOL)
            for old, new in zip(sample, found["weights_sample"])
        )
    ):
        return "same configuration but other weights (a different model of the same architecture)", False
    return None, False

"""A preference-conditioned ARM's `adapter_config.json`: PEFT's LoRA configuration, marked so plain PEFT refuses it.

A preference-conditioned ARM's adapter holds PEFT's `lora_A` and `lora_B` plus the preference cores. Loaded by PEFT
alone it would be `B A` without the cores: another model, with no error. So its `adapter_config.json` records a
`peft_type` PEFT does not know (`PBLORA_PEFT_TYPE`): `PeftModel.from_pretrained` and `AutoModelForCausalLM.
from_pretrained` stop with a `KeyError` quoting it, which names the loader to use. In memory the configuration is an
ordinary `LoraConfig` (`peft_type` LORA), so PEFT's LoRA code, its state dict and its saving work unchanged; only
the file differs. Kept apart from `preference_lora` so that importing the logits processors does not import PEFT.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from peft import LoraConfig

from ._saved_folder import ADAPTER_FILES

# `peft_type` in the file. PEFT looks the type up in its own table and stops with a KeyError quoting this text.
PBLORA_PEFT_TYPE = (
    "PBLORA (a preference-conditioned ARM: load it with hf_genarm.PreferenceConditionedARM.from_pretrained)"
)


class PreferenceLoraConfig(LoraConfig):
    """`peft.LoraConfig` whose saved `adapter_config.json` carries `PBLORA_PEFT_TYPE` (see the module docstring)."""

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        super().save_pretrained(save_directory, **kwargs)
        path = os.path.join(save_directory, ADAPTER_FILES[0])
        with open(path, encoding="utf-8") as handle:
            written = json.load(handle)
        written["peft_type"] = PBLORA_PEFT_TYPE
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(written, handle, indent=2, sort_keys=True)


def as_preference_lora_config(config: LoraConfig) -> PreferenceLoraConfig:
    """The same LoRA configuration as a `PreferenceLoraConfig` (returned as is when it already is one)."""
    if isinstance(config, PreferenceLoraConfig):
        return config
    fields = {field.name: getattr(config, field.name) for field in dataclasses.fields(config) if field.init}
    return PreferenceLoraConfig(**fields)


def read_preference_lora_config(path: str, source: str) -> PreferenceLoraConfig:
    """Read a preference-conditioned ARM's `adapter_config.json` (marked, or plain LoRA from format 1) at `path`.

    Raises:
        ValueError: Naming `source`, for a file of another PEFT method.
    """
    with open(path, encoding="utf-8-sig") as handle:
        raw = json.load(handle)
    peft_type = raw.pop("peft_type", None) if isinstance(raw, dict) else None
    # Format 1 (before the mark) wrote PEFT's own "LORA"; its cores are read from the weights all the same.
    if peft_type not in (PBLORA_PEFT_TYPE, "LORA"):
        raise ValueError(
            f"{source}'s {ADAPTER_FILES[0]} has peft_type {peft_type!r}; a preference-conditioned ARM's adapter is "
            f"PBLoRA ({PBLORA_PEFT_TYPE!r}). The folder holds another kind of adapter."
        )
    # Without `peft_type`, PEFT builds this class and drops (with a warning) fields a newer PEFT may have added.
    return PreferenceLoraConfig.from_peft_type(**LoraConfig.check_kwargs(**raw))

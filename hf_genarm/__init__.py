"""hf-genarm: GenARM reward-guided generation with Autoregressive Reward Models for the Hugging Face stack.

Public names are resolved lazily, as transformers resolves its own: `from hf_genarm import GenARMLogitsProcessor`
imports the processor and the reward model only, never the trainer, `datasets`, plotting, the CLI or the demo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public name -> submodule that defines it.
_LAZY_NAMES = {
    "ARMConfig": "trainer",
    "ARMTrainer": "trainer",
    "AutoregressiveRewardModel": "modeling",
    "CrossTokenizerGenARMLogitsProcessor": "cross_tokenizer",
    "GenARMLogitsProcessor": "logits_process",
    "PreferenceARMConfig": "preference_training",
    "PreferenceARMTrainer": "preference_training",
    "PreferenceCollator": "data",
    "PreferenceConditionedARM": "preference_lora",
    "PreferenceDataReport": "data",
    "RewardModelMetadata": "configuration",
    "compute_preference_metrics": "metrics",
    "cross_tokenizer_token_rewards": "cross_tokenizer",
    "load_preference_accuracy": "metrics",
    "plot_tradeoff": "visualize",
    "prepare_preference_dataset": "data",
    "push_reward_model": "hub",
    "save_token_reward_heatmap_png": "visualize",
    "score_text": "scoring",
    "token_reward_heatmap_html": "visualize",
}

__all__ = [
    "ARMConfig",
    "ARMTrainer",
    "AutoregressiveRewardModel",
    "CrossTokenizerGenARMLogitsProcessor",
    "GenARMLogitsProcessor",
    "PreferenceARMConfig",
    "PreferenceARMTrainer",
    "PreferenceCollator",
    "PreferenceConditionedARM",
    "PreferenceDataReport",
    "RewardModelMetadata",
    "__version__",
    "compute_preference_metrics",
    "cross_tokenizer_token_rewards",
    "load_preference_accuracy",
    "plot_tradeoff",
    "prepare_preference_dataset",
    "push_reward_model",
    "save_token_reward_heatmap_png",
    "score_text",
    "token_reward_heatmap_html",
]

if TYPE_CHECKING:
    from .configuration import RewardModelMetadata
    from .cross_tokenizer import CrossTokenizerGenARMLogitsProcessor, cross_tokenizer_token_rewards
    from .data import PreferenceCollator, PreferenceDataReport, prepare_preference_dataset
    from .hub import push_reward_model
    from .logits_process import GenARMLogitsProcessor
    from .metrics import compute_preference_metrics, load_preference_accuracy
    from .modeling import AutoregressiveRewardModel
    from .preference_lora import PreferenceConditionedARM
    from .preference_training import PreferenceARMConfig, PreferenceARMTrainer
    from .scoring import score_text
    from .trainer import ARMConfig, ARMTrainer
    from .visualize import plot_tradeoff, save_token_reward_heatmap_png, token_reward_heatmap_html


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # resolve once; later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

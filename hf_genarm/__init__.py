"""hf-genarm: GenARM reward-guided generation with Autoregressive Reward Models for the Hugging Face stack."""

__version__ = "0.1.0"

from .data import PreferenceCollator, PreferenceDataReport, prepare_preference_dataset
from .hub import push_reward_model
from .logits_process import GenARMLogitsProcessor
from .metrics import compute_preference_metrics, load_preference_accuracy
from .modeling import AutoregressiveRewardModel, RewardModelMetadata
from .trainer import ARMConfig, ARMTrainer
from .visualize import plot_tradeoff, save_token_reward_heatmap_png, score_text, token_reward_heatmap_html

__all__ = [
    "ARMConfig",
    "ARMTrainer",
    "AutoregressiveRewardModel",
    "GenARMLogitsProcessor",
    "PreferenceCollator",
    "PreferenceDataReport",
    "RewardModelMetadata",
    "__version__",
    "compute_preference_metrics",
    "load_preference_accuracy",
    "plot_tradeoff",
    "prepare_preference_dataset",
    "push_reward_model",
    "save_token_reward_heatmap_png",
    "score_text",
    "token_reward_heatmap_html",
]

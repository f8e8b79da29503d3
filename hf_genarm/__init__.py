"""hf-genarm: GenARM reward-guided generation with Autoregressive Reward Models for the Hugging Face stack."""

__version__ = "0.1.0"

from .logits_process import GenARMLogitsProcessor
from .modeling import AutoregressiveRewardModel, RewardModelMetadata

__all__ = [
    "AutoregressiveRewardModel",
    "GenARMLogitsProcessor",
    "RewardModelMetadata",
    "__version__",
]

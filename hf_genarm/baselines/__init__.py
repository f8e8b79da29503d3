"""Baselines for fair benchmarks of GenARM: best-of-N sampling and ARGS decoding with sequence-level reward models."""

from .args_decoding import ARGSLogitsProcessor, args_generate
from .best_of_n import BestOfNOutput, best_of_n
from .reward import SequenceClassifierReward

__all__ = ["ARGSLogitsProcessor", "BestOfNOutput", "SequenceClassifierReward", "args_generate", "best_of_n"]

"""Evaluation metrics for autoregressive reward models, built on the `evaluate` library.

Preference accuracy ships as a local `evaluate` module inside this package (`PREFERENCE_ACCURACY_PATH`), so
`evaluate.load` reads it from disk and never needs the Hub. `evaluate` is imported on first use only: importing
it pulls in the transformers pipelines, which `import hf_genarm` should not pay for.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = ["PREFERENCE_ACCURACY_PATH", "compute_preference_metrics", "load_preference_accuracy"]

PREFERENCE_ACCURACY_PATH = os.path.join(os.path.dirname(__file__), "evaluate_metrics", "preference_accuracy")


def load_preference_accuracy(**kwargs: Any) -> Any:
    """Load the preference-accuracy metric shipped with hf-genarm, offline.

    Args:
        kwargs: Passed to `evaluate.load` (e.g. `experiment_id`, `num_process`, `process_id`). The module keeps
            its state in memory unless `keep_in_memory=False` is given.

    Returns:
        `evaluate.EvaluationModule` whose `compute(chosen_rewards=..., rejected_rewards=...)` returns
        `{"accuracy": float}`, the fraction of pairs whose chosen response has the strictly higher reward.

    Examples:

    ```python
    >>> metric = load_preference_accuracy()
    >>> metric.compute(chosen_rewards=[2.0, -1.0], rejected_rewards=[1.0, 0.0])
    {'accuracy': 0.5}
    ```
    """
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(PREFERENCE_ACCURACY_PATH, **kwargs)


@functools.lru_cache(maxsize=1)
def _shared_preference_accuracy() -> Any:
    return load_preference_accuracy()


def compute_preference_metrics(eval_prediction: Any) -> dict[str, float]:
    """`compute_metrics` for `ARMTrainer`: preference accuracy over the whole evaluation set.

    `ARMTrainer.prediction_step` returns, for each pair, the rewards `[chosen, rejected]` as its predictions;
    this function feeds them to the preference-accuracy `evaluate` module, over the whole evaluation set at once.
    The trainer's own `eval_rewards/accuracies` counts every pair once too, so the two agree.

    Args:
        eval_prediction (`transformers.EvalPrediction`): Predictions of shape `(num_pairs, 2)`.

    Returns:
        `dict`: `{"preference_accuracy": float}` (the trainer prefixes it, e.g. `eval_preference_accuracy`). NaN,
        with a warning, when a reward is NaN: a pair without a winner is neither a hit nor a miss, and an evaluation
        in the middle of training reports it rather than stopping the run.

    Examples:

    ```python
    >>> import numpy as np
    >>> from transformers import EvalPrediction
    >>> rewards = np.array([[0.3, -0.2], [0.1, 0.4], [1.0, 0.0], [0.5, 0.2]])
    >>> compute_preference_metrics(EvalPrediction(predictions=rewards, label_ids=np.zeros(4)))
    {'preference_accuracy': 0.75}
    ```
    """
    predictions = eval_prediction.predictions
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    rewards = np.asarray(predictions, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[1] != 2:
        raise ValueError(
            f"Expected predictions of shape (num_pairs, 2) holding [chosen, rejected] rewards, got {rewards.shape}."
        )
    unscored = int(np.isnan(rewards).any(-1).sum())
    if unscored:
        logger.warning(
            f"{unscored} of {len(rewards)} evaluation pairs have a NaN reward (the reward model has likely diverged); "
            "preference accuracy is reported as NaN."
        )
        return {"preference_accuracy": float("nan")}
    result = _shared_preference_accuracy().compute(chosen_rewards=rewards[:, 0], rejected_rewards=rewards[:, 1])
    return {"preference_accuracy": float(result["accuracy"])}

"""The preference-accuracy `evaluate` metric and the trainer's `compute_metrics` on bad rewards (issue 23)."""

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_genarm.metrics import compute_preference_metrics, load_preference_accuracy


@pytest.fixture(scope="module")
def metric():
    return load_preference_accuracy()


def test_accuracy_counts_strict_wins(metric):
    assert metric.compute(chosen_rewards=[1.0, 0.2, 3.0], rejected_rewards=[0.5, 0.7, 3.0]) == {
        "accuracy": pytest.approx(1 / 3)
    }


@pytest.mark.parametrize(
    ("chosen", "rejected", "name"),
    [
        ([1.0, None], [0.0, 0.0], r"`chosen_rewards\[1\]` is None"),
        ([1.0, 2.0], [None, 0.0], r"`rejected_rewards\[0\]` is None"),
        ([float("nan")], [0.0], r"`chosen_rewards\[0\]` is nan"),
        ([1.0, 2.0, 3.0], [0.0, 0.0, float("nan")], r"`rejected_rewards\[2\]` is nan"),
    ],
)
def test_missing_or_nan_reward_is_refused_naming_argument_and_index(metric, chosen, rejected, name):
    with pytest.raises(ValueError, match=name + r".*no winner"):
        metric.compute(chosen_rewards=chosen, rejected_rewards=rejected)


def test_refusal_indexes_the_whole_accumulated_set(metric):
    metric.add_batch(chosen_rewards=[1.0, 2.0], rejected_rewards=[0.0, 0.0])
    metric.add_batch(chosen_rewards=[None], rejected_rewards=[0.0])
    with pytest.raises(ValueError, match=r"`chosen_rewards\[2\]` is None"):
        metric.compute()


def test_trainer_metrics_report_nan_pairs_as_nan_not_as_misses():
    rewards = np.array([[1.0, 0.0], [np.nan, 0.0]])
    result = compute_preference_metrics(EvalPrediction(predictions=rewards, label_ids=np.zeros(2)))
    assert math.isnan(result["preference_accuracy"])
    finite = compute_preference_metrics(EvalPrediction(predictions=rewards[:1], label_ids=np.zeros(1)))
    assert finite == {"preference_accuracy": 1.0}

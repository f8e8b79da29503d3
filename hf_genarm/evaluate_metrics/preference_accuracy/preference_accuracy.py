"""Preference accuracy: how often a reward model scores the chosen response above the rejected one.

This file is an `evaluate` metric module. hf-genarm ships it inside the package so that it loads offline:

    >>> import evaluate
    >>> from hf_genarm.metrics import PREFERENCE_ACCURACY_PATH
    >>> metric = evaluate.load(PREFERENCE_ACCURACY_PATH, keep_in_memory=True)
    >>> metric.compute(chosen_rewards=[0.5], rejected_rewards=[-0.5])
    {'accuracy': 1.0}
"""

import math

import datasets
import evaluate

from hf_genarm.configuration import GENARM_CITATION

_DESCRIPTION = """
Preference accuracy is the fraction of preference pairs whose chosen response gets a strictly higher reward than
the rejected one. A tie counts as a miss, as in TRL's `rewards/accuracies`, so a model that gives every response
the same reward scores 0, not 0.5.
"""

_KWARGS_DESCRIPTION = """
Args:
    chosen_rewards (`list[float]`): Reward of the chosen (preferred) response of each pair.
    rejected_rewards (`list[float]`): Reward of the rejected response of each pair.

Raises:
    ValueError: when a reward is missing (`None`) or NaN, naming the argument and the pair's index: such a pair
        has no winner, and counting it as a miss would lower the accuracy without a word.

Returns:
    accuracy (`float`): Fraction of pairs with `chosen_reward > rejected_reward`, in [0, 1].

Examples:
    >>> from hf_genarm.metrics import PREFERENCE_ACCURACY_PATH
    >>> metric = evaluate.load(PREFERENCE_ACCURACY_PATH, keep_in_memory=True)
    >>> metric.compute(chosen_rewards=[1.0, 0.2, 3.0], rejected_rewards=[0.5, 0.7, 3.0])
    {'accuracy': 0.3333333333333333}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PreferenceAccuracy(evaluate.Metric):
    """Fraction of pairs whose chosen response outscores the rejected one."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=GENARM_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"chosen_rewards": datasets.Value("float64"), "rejected_rewards": datasets.Value("float64")}
            ),
            reference_urls=["https://arxiv.org/abs/2410.08193"],
        )

    def _compute(self, chosen_rewards: list[float], rejected_rewards: list[float]) -> dict[str, float]:
        if not chosen_rewards:
            raise ValueError("Preference accuracy needs at least one pair; got empty reward lists.")
        for name, rewards in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
            for index, reward in enumerate(rewards):
                # Both compare as "not greater", so either would count as a silent miss (or a TypeError).
                if reward is None or math.isnan(reward):
                    raise ValueError(
                        f"`{name}[{index}]` is {reward!r}: pair {index} has no winner. Drop the pair, or fix what "
                        "produced the reward (a reward model that returns NaN has diverged or read an empty response)."
                    )
        wins = sum(chosen > rejected for chosen, rejected in zip(chosen_rewards, rejected_rewards))
        return {"accuracy": wins / len(chosen_rewards)}

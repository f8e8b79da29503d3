"""The decoding core every path shares: the GenARM sum (`combine`) and how a reward model is called (`model_caller`)."""

import ast
import math
import pathlib

import pytest
import torch

from hf_genarm import AutoregressiveRewardModel
from hf_genarm.combine import add_weighted, combine, shared_log_probs
from hf_genarm.model_caller import ModelCaller, cache_argument, innermost_transformers_model
from hf_genarm.testing import make_tiny_causal_lm

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent / "hf_genarm"


def brute_force_genarm(base_logits, reward_logits, weights, vocab_size):
    """The GenARM sum written out element by element in float64, padded ids banned."""
    rows, width = base_logits.shape
    expected = torch.full((rows, width), -math.inf, dtype=torch.float64)
    for row in range(rows):
        base = base_logits[row, :vocab_size].double()
        base_norm = torch.logsumexp(base, 0)
        rewards = [logits[row, :vocab_size].double() for logits in reward_logits]
        reward_norms = [torch.logsumexp(reward, 0) for reward in rewards]
        for token in range(vocab_size):
            value = base[token] - base_norm
            for index, (reward, norm) in enumerate(zip(rewards, reward_norms)):
                value += weights[row, index].double() * (reward[token] - norm)
            expected[row, token] = value
    return expected


def test_combine_equals_the_genarm_sum_over_the_shared_vocabulary():
    generator = torch.Generator().manual_seed(0)
    vocab_size = 8
    base_logits = torch.randn(3, 10, generator=generator).to(torch.bfloat16)  # the base pads two rows
    reward_logits = [torch.randn(3, 9, generator=generator), torch.randn(3, 12, generator=generator).half()]
    weights = torch.tensor([[1.0, 0.5], [0.0, 2.0], [3.0, -1.0]])
    rewards = [shared_log_probs(logits, vocab_size) for logits in reward_logits]
    guided = combine(base_logits, rewards, weights, vocab_size)
    assert guided.dtype == torch.float32 and guided.shape == (3, 10)
    assert torch.isneginf(guided[:, vocab_size:]).all()
    expected = brute_force_genarm(base_logits, reward_logits, weights, vocab_size)
    torch.testing.assert_close(guided[:, :vocab_size].double(), expected[:, :vocab_size], atol=1e-5, rtol=0)


def test_combine_gives_the_same_scores_for_logits_and_for_log_probabilities():
    # Beam search hands processors log-softmaxed scores, sampling raw logits: both normalise to the same thing.
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, generator=generator)
    reward = [shared_log_probs(torch.randn(2, 6, generator=generator), 6)]
    weights = torch.tensor([[0.7], [0.7]])
    from_logits = combine(logits, reward, weights, 6)
    from_log_probs = combine(torch.log_softmax(logits, -1), reward, weights, 6)
    torch.testing.assert_close(from_logits, from_log_probs, atol=1e-6, rtol=0)


def test_add_weighted_needs_one_weight_column_per_reward_model():
    with pytest.raises(ValueError, match="one weight column per reward model"):
        add_weighted(torch.zeros(1, 3), [torch.zeros(1, 3)], torch.ones(1, 2))


def test_model_caller_unwraps_the_reward_model_and_finds_its_cache_argument():
    causal_lm = make_tiny_causal_lm(max_positions=64)
    wrapped = AutoregressiveRewardModel(causal_lm)
    assert innermost_transformers_model(wrapped) is causal_lm
    caller = ModelCaller(wrapped)
    assert caller.position_limit == 64 and caller.device == torch.device("cpu")
    assert caller._cache_argument == cache_argument(causal_lm) in ("cache", "past_key_values")
    assert cache_argument(torch.nn.Linear(2, 2)) is None


CALL_STACK_NAMES = {"currentframe", "_getframe", "f_locals", "f_back", "f_globals", "stack"}


def test_no_module_reads_the_call_stack():
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if name in CALL_STACK_NAMES and not (name == "stack" and not _is_inspect_attribute(node)):
                found.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {name}")
    assert found == [], "call-stack inspection (pass what is needed explicitly instead): " + ", ".join(found)


def _is_inspect_attribute(node: ast.AST) -> bool:
    """`inspect.stack` (not `torch.stack`)."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "inspect"

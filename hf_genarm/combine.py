"""The GenARM sum, written once: every decoding path (`generate()`, cross-tokenizer, vLLM) calls it.

GenARM guides the base with `log_softmax(base) + sum_i (alpha_i / beta) * log_softmax(reward_model_i)`, in float32,
over the vocabulary the models share: the first `vocab_size` ids (`len(tokenizer)`). Rows past it, which a model
may pad its embedding matrix with, are dropped before normalising and banned (`-inf`) in the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["add_weighted", "combine", "shared_log_probs"]


def shared_log_probs(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Float32 log-probabilities over the shared vocabulary: `log_softmax` of the first `vocab_size` columns.

    Args:
        logits (`torch.Tensor` of shape `(rows, width)`): A model's next-token logits (or log-probabilities), any
            dtype, `width >= vocab_size`.
        vocab_size (`int`): Number of leading ids the models share.

    Returns:
        `torch.Tensor` of shape `(rows, vocab_size)`, float32, on the logits' device.

    Examples:

    ```python
    >>> import torch
    >>> shared_log_probs(torch.zeros(1, 6), 4).exp().sum().item()
    1.0
    ```
    """
    return torch.log_softmax(logits[:, :vocab_size].float(), dim=-1)


def add_weighted(
    base_log_probs: torch.Tensor, reward_log_probs: Sequence[torch.Tensor], weights: torch.Tensor
) -> torch.Tensor:
    """`base_log_probs + sum_i weights[:, i] * reward_log_probs[i]`, in float32 on the base's device.

    The columns may be the whole shared vocabulary or any selection of it (the cross-tokenizer path sums over the
    base's top candidates); each reward model's log-probabilities are moved to the base's device, nothing else is.

    Args:
        base_log_probs (`torch.Tensor` of shape `(rows, columns)`): The base's float32 log-probabilities.
        reward_log_probs (`Sequence[torch.Tensor]`): Per reward model, a `(rows, columns)` float32 tensor.
        weights (`torch.Tensor` of shape `(rows, len(reward_log_probs))`): Each row's `alpha_i / beta`, best kept on
            the base's device by the caller (moved here otherwise).

    Returns:
        `torch.Tensor` of shape `(rows, columns)`, float32.

    Examples:

    ```python
    >>> import torch
    >>> add_weighted(torch.zeros(1, 2), [torch.ones(1, 2)], torch.tensor([[0.5]])).tolist()
    [[0.5, 0.5]]
    ```
    """
    if len(reward_log_probs) != weights.shape[-1]:
        raise ValueError(
            f"{len(reward_log_probs)} reward models' log-probabilities for {weights.shape[-1]} weights per row; pass "
            "one weight column per reward model."
        )
    guided = base_log_probs
    weights = weights.to(guided.device)
    for index, log_probs in enumerate(reward_log_probs):
        guided = guided + weights[:, index : index + 1] * log_probs.to(guided.device)
    return guided


def combine(
    base_logits: torch.Tensor,
    reward_log_probs: Sequence[torch.Tensor],
    weights: torch.Tensor,
    vocab_size: int,
) -> torch.Tensor:
    """The GenARM scores of one decoding step: the guided log-probabilities, `-inf` beyond the shared vocabulary.

    Args:
        base_logits (`torch.Tensor` of shape `(rows, width)`): The base's scores (logits, or log-probabilities as
            beam search hands them; both normalise to the same thing), any dtype, `width >= vocab_size`.
        reward_log_probs (`Sequence[torch.Tensor]`): Per reward model, its float32 log-probabilities over the shared
            vocabulary, `(rows, vocab_size)` (see `shared_log_probs`), on any device.
        weights (`torch.Tensor` of shape `(rows, len(reward_log_probs))`): Each row's `alpha_i / beta`.
        vocab_size (`int`): Number of leading ids the models share.

    Returns:
        `torch.Tensor` of shape `(rows, width)`, float32, on the base's device.

    Examples:

    ```python
    >>> import torch
    >>> reward = shared_log_probs(torch.tensor([[0.0, 1.0, 2.0]]), 2)
    >>> scores = combine(torch.zeros(1, 3), [reward], torch.tensor([[1.0]]), vocab_size=2)
    >>> scores.shape, scores[0, 2].item()
    (torch.Size([1, 3]), -inf)
    ```
    """
    guided = add_weighted(shared_log_probs(base_logits, vocab_size), reward_log_probs, weights)
    width = base_logits.shape[-1]
    if vocab_size < width:
        guided = torch.nn.functional.pad(guided, (0, width - vocab_size), value=-math.inf)
    return guided

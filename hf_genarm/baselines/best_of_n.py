"""Best-of-N sampling: draw N completions per prompt, keep the one a sequence-level reward function prefers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["BestOfNOutput", "best_of_n"]


@dataclass
class BestOfNOutput:
    """What `best_of_n` returns.

    Args:
        completions (`list[str]`): The best completion of each prompt (prompt excluded).
        scores (`list[float]`): Its ranking score: the reward, or the reward per completion token when
            `best_of_n` ranked with `length_normalized=True`.
        candidates (`list[list[str]]`): All `n` completions of each prompt, in sampling order.
        candidate_scores (`list[list[float]]`): Their ranking scores.

    Examples:

    ```python
    >>> output = BestOfNOutput(completions=["b"], scores=[2.0], candidates=[["a", "b"]], candidate_scores=[[1.0, 2.0]])
    >>> output.completions
    ['b']
    ```
    """

    completions: list[str]
    scores: list[float]
    candidates: list[list[str]]
    candidate_scores: list[list[float]]


def best_of_n(
    base: torch.nn.Module,
    tokenizer: Any,
    prompts: str | Sequence[str],
    reward_fn: Callable[[list[str]], Any],
    n: int,
    *,
    include_prompt: bool = True,
    length_normalized: bool = False,
    **generate_kwargs: Any,
) -> BestOfNOutput:
    """Best-of-N: sample `n` completions per prompt with `generate()` and keep the highest-reward one.

    The prompts are decoded together in one left-padded batch with `num_return_sequences=n` (sampling by default);
    each completion is decoded without special tokens and scored by `reward_fn` in one call. Its cost is `n`
    full generations per prompt plus `n` reward evaluations, the usual yardstick for test-time alignment methods.

    Args:
        base (`PreTrainedModel`):
            The causal LM to sample from.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer (needs a pad token for several prompts).
        prompts (`str` or `list[str]`):
            One or several prompts.
        reward_fn (`Callable[[list[str]], Sequence[float] | torch.Tensor]`):
            Sequence-level reward: takes a list of texts and returns one score per text, e.g. a
            `SequenceClassifierReward`, or a sentiment scorer.
        n (`int`):
            Completions sampled per prompt.
        include_prompt (`bool`, *optional*, defaults to `True`):
            Score `prompt + completion` (what classic reward models read); `False` scores the completion alone.
        length_normalized (`bool`, *optional*, defaults to `False`):
            Rank by the reward divided by the completion's number of generated tokens (EOS included, padding
            excluded). A GenARM reward, `beta_r * sum_t log pi_r(y_t | x, y_<t)`, sums negative terms, so ranked
            as it is it favours short completions; the per-token score removes that bias. The default keeps the
            paper's summed reward.
        generate_kwargs:
            Passed to `generate()` (`max_new_tokens`, `temperature`, `top_p`, ...); `do_sample` defaults to `True`.

    Returns:
        `BestOfNOutput`: the best completion and score per prompt, and every candidate with its score. Ties go to the
        earliest sample.

    Examples:

    ```python
    >>> from hf_genarm.baselines import best_of_n
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> output = best_of_n(
    ...     make_tiny_causal_lm(), tokenizer, ["The cat", "Life is"], lambda texts: [len(t) for t in texts], n=3,
    ...     max_new_tokens=4,
    ... )
    >>> [len(candidates) for candidates in output.candidates]
    [3, 3]
    ```
    """
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(prompt, str) for prompt in prompt_list):
        raise ValueError("`prompts` must be a string or a non-empty list of strings.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive int (completions per prompt), got {n!r}.")
    if not callable(reward_fn):
        raise TypeError(f"`reward_fn` must be callable (texts -> scores), got {type(reward_fn).__name__}.")
    if not isinstance(length_normalized, bool):
        raise TypeError(f"`length_normalized` must be True or False, got {length_normalized!r}.")
    if "num_return_sequences" in generate_kwargs:
        raise ValueError("Pass the number of samples as `n`, not `num_return_sequences`.")
    generate_kwargs.setdefault("do_sample", True)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    inputs = tokenizer(prompt_list, return_tensors="pt", padding=True, padding_side="left").to(base.device)
    with torch.no_grad():
        output = base.generate(**inputs, num_return_sequences=n, **generate_kwargs)
    generated = output[:, inputs["input_ids"].shape[1] :]
    completions = tokenizer.batch_decode(generated, skip_special_tokens=True)
    texts = [
        prompt_list[index // n] + completion if include_prompt else completion
        for index, completion in enumerate(completions)
    ]
    scores = torch.as_tensor(reward_fn(texts), dtype=torch.float32).reshape(-1).cpu()
    if scores.shape[0] != len(texts):
        raise ValueError(f"`reward_fn` returned {scores.shape[0]} scores for {len(texts)} texts; return one per text.")
    if torch.isnan(scores).any():
        raise ValueError("`reward_fn` returned NaN scores; best-of-N cannot rank them.")
    if length_normalized:
        eos_token_id = generate_kwargs.get("eos_token_id", base.generation_config.eos_token_id)
        scores = scores / _completion_lengths(generated, eos_token_id).cpu()
    grouped = scores.reshape(len(prompt_list), n)
    best = grouped.argmax(dim=-1).tolist()
    candidates = [completions[row * n : (row + 1) * n] for row in range(len(prompt_list))]
    return BestOfNOutput(
        completions=[candidates[row][index] for row, index in enumerate(best)],
        scores=[float(grouped[row, index]) for row, index in enumerate(best)],
        candidates=candidates,
        candidate_scores=grouped.tolist(),
    )


def _completion_lengths(generated: torch.Tensor, eos_token_id: int | Sequence[int] | None) -> torch.Tensor:
    """Generated tokens of each row up to and including its first EOS; generate() pads the columns after it."""
    if eos_token_id is None:
        return torch.full((generated.shape[0],), generated.shape[1], dtype=torch.float32)
    is_eos = torch.isin(generated, torch.as_tensor(eos_token_id, device=generated.device).reshape(-1)).long()
    return ((is_eos.cumsum(-1) - is_eos) == 0).sum(-1).clamp_min(1).float()

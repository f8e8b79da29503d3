"""Scoring written text with a reward model: where a response starts, and the reward of each of its tokens.

`split_prompt_response` is the package's one prompt/response boundary rule, shared by scoring (`score_text`,
`cross_tokenizer_token_rewards`) and training data (`prepare_preference_dataset`): tokens may merge across the
boundary, so the response starts where the tokenization of prompt + response leaves that of the prompt; a finished
response ends in EOS once; an empty prompt is read as the BOS token. `score_text` gives each response token its
reward `beta_r * log pi_r(y_t | x, y_<t)`, which `hf_genarm.visualize` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._cross_tokenizer_text import RewardTokenizer
from .modeling import AutoregressiveRewardModel
from .vocab import check_reward_model_tokenizer

__all__ = ["check_text_to_score", "score_text", "split_prompt_response"]


def common_prefix_length(ids: Sequence[Any], other_ids: Sequence[Any]) -> int:
    """How many leading items (token ids, messages) two sequences share."""
    length = 0
    for token, other_token in zip(ids, other_ids):
        if token != other_token:
            break
        length += 1
    return length


def split_prompt_response(
    prompt_ids: Sequence[int] | None,
    full_ids: Sequence[Sequence[int]],
    *,
    eos_token_id: int | None = None,
    bos_token_id: int | None = None,
) -> tuple[list[int], list[list[int]]]:
    """Cut token ids of prompt + response (one or several responses to one prompt) at the response boundary.

    The response starts where the ids of prompt + response leave the prompt's own ids (tokens may merge across the
    boundary), and, for several responses, where the first of them does. A response that adds no token comes back
    empty, for the caller to refuse or skip.

    Args:
        prompt_ids (`list[int]`, *optional*): The prompt's ids; `None` for an implicit prompt, the ids the
            responses share.
        full_ids (`list[list[int]]`): For each response, the ids of prompt + response.
        eos_token_id (`int`, *optional*): Ends each non-empty response with this id once (a finished response);
            `None` appends nothing (a chat template writes its own end, or a partial response).
        bos_token_id (`int`, *optional*): The prompt when it keeps no token, so the response has a token to follow.

    Returns:
        `tuple[list[int], list[list[int]]]`: the prompt's ids (empty when it keeps none and there is no BOS) and
        each response's ids.

    Examples:

    ```python
    >>> split_prompt_response([5, 6], [[5, 7, 8], [5, 6, 9]], eos_token_id=0)
    ([5], [[7, 8, 0], [6, 9, 0]])
    >>> split_prompt_response(None, [[5, 6, 7]], bos_token_id=1)
    ([5, 6, 7], [[]])
    ```
    """
    if prompt_ids is None:
        prompt_ids = full_ids[0][: min(common_prefix_length(full_ids[0], other) for other in full_ids)]
    start = min(common_prefix_length(prompt_ids, ids) for ids in full_ids)
    responses = [list(ids[start:]) for ids in full_ids]
    if eos_token_id is not None:
        responses = [ids if not ids or ids[-1] == eos_token_id else [*ids, eos_token_id] for ids in responses]
    prompt = list(prompt_ids[:start])
    if not prompt and bos_token_id is not None:
        prompt = [bos_token_id]
    return prompt, responses


def check_text_to_score(reward_model: Any, prompt: Any, response: Any) -> None:
    """Refuse what a per-token scoring routine cannot score: a model that is not a reward model, or bad text."""
    if not isinstance(reward_model, AutoregressiveRewardModel):
        raise TypeError(
            f"`reward_model` must be an AutoregressiveRewardModel, got {type(reward_model).__name__}; wrap a causal "
            "LM with `AutoregressiveRewardModel(model, beta_r=...)` or load one with `from_pretrained`."
        )
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise TypeError("`prompt` and `response` must be strings.")
    if not response:
        raise ValueError("`response` is empty; pass the text to score.")


@torch.no_grad()
def score_text(
    reward_model: AutoregressiveRewardModel,
    tokenizer: Any,
    prompt: str,
    response: str,
    *,
    add_eos: bool = True,
    include_prompt: bool = False,
) -> tuple[list[str], list[float]]:
    """Token-level rewards of a response to a prompt under an autoregressive reward model.

    The text is tokenized as the ARM trainer tokenizes a preference pair (`split_prompt_response`): the response
    starts where the tokenization of `prompt + response` leaves that of `prompt` (tokens may merge across the
    boundary), and the tokenizer's EOS is appended, since it is part of the response and of its reward. Special
    tokens the tokenizer puts before a text (a BOS) are read; special tokens it appends after one (a WordPiece
    `[SEP]`) are not, as in guidance. Each response token gets `beta_r * log pi_r(y_t | x, y_<t)`
    (`AutoregressiveRewardModel.token_rewards` with the prompt masked), so the rewards sum to the response's
    sequence reward.

    Args:
        reward_model (`AutoregressiveRewardModel`):
            The reward model.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer. Refused when it is not the tokenizer the reward model records.
        prompt (`str`):
            The prompt, exactly as the reward model was trained to read it (e.g. `"Question: ... Answer:"`).
        response (`str`):
            The response to score.
        add_eos (`bool`, *optional*, defaults to `True`):
            Append the EOS token to the response (score a finished response); `False` scores a partial one.
        include_prompt (`bool`, *optional*, defaults to `False`):
            Also return the prompt tokens, with reward `nan` (they are not scored); the heatmaps show them grey.

    Returns:
        `tuple[list[str], list[float]]`: each token decoded on its own, and its reward.

    Raises:
        ValueError: for an empty response, one that adds no token to the prompt's tokenization, `add_eos=True`
            with a tokenizer without EOS, or an empty prompt with a tokenizer without BOS.

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1, tokenizer=tokenizer)
    >>> tokens, rewards = score_text(reward_model, tokenizer, "Good friends and", " good food")
    >>> tokens
    [' good', ' f', 'ood', '<|endoftext|>']
    >>> all(reward < 0 for reward in rewards)
    True
    ```
    """
    check_text_to_score(reward_model, prompt, response)
    check_reward_model_tokenizer(reward_model, tokenizer, "`tokenizer`")
    if add_eos and tokenizer.eos_token_id is None:
        raise ValueError("The tokenizer has no EOS token; pass `add_eos=False` to score without one.")
    # The reward model reads what guidance feeds it: its special prefix (a BOS) and the text, never a special
    # token a post-processor appends (a WordPiece `[SEP]`), which is no part of the response.
    text_ids = RewardTokenizer(tokenizer).text_ids
    prompt_ids, (response_ids,) = split_prompt_response(
        text_ids(prompt),
        [text_ids(prompt + response)],
        eos_token_id=tokenizer.eos_token_id if add_eos else None,
        bos_token_id=tokenizer.bos_token_id,
    )
    if not response_ids:
        raise ValueError(f"`response` {response!r} adds no token to the prompt's tokenization.")
    if not prompt_ids:
        raise ValueError("`prompt` is empty and the tokenizer has no BOS token for the response to follow.")
    input_ids = torch.tensor([prompt_ids + response_ids], device=reward_model.device)
    rewards = reward_model.token_rewards(input_ids, prompt_length=len(prompt_ids))[0].cpu().tolist()
    response_rewards = [float(value) for value in rewards[len(prompt_ids) :]]
    if include_prompt:
        shown, values = prompt_ids + response_ids, [float("nan")] * len(prompt_ids) + response_rewards
    else:
        shown, values = response_ids, response_rewards
    tokens = [tokenizer.decode([token_id]) for token_id in shown]
    return tokens, values

"""Guidance and scoring with reward models whose tokenizer differs from the base model's.

GenARM adds log-probabilities token id by token id, so `GenARMLogitsProcessor` refuses a reward model of
another tokenizer. `CrossTokenizerGenARMLogitsProcessor` is the explicit opt-in: each step it takes the base's
`num_candidates` most likely tokens, decodes the text each one appends, and scores that text exactly under the
reward model, reading its own tokenization of the text so far. `cross_tokenizer_token_rewards` scores a written
response the same way, per base token or per reward-model token.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ._cross_tokenizer_stream import CrossTokenizerStream
from ._cross_tokenizer_text import BaseTextDecoder, RewardTokenizer, complete_text
from ._prompt_padding import pad_token_roles
from .combine import add_weighted, shared_log_probs
from .logits_process import GenARMLogitsProcessor
from .modeling import AutoregressiveRewardModel
from .scoring import check_text_to_score, score_text, split_prompt_response
from .vocab import check_reward_model_tokenizer, describe_tokenizer_difference, tokenizer_fingerprint

__all__ = ["CrossTokenizerGenARMLogitsProcessor", "cross_tokenizer_token_rewards"]

DEFAULT_NUM_CANDIDATES = 16


def _saved_tokenizer(model: torch.nn.Module, index: int) -> Any:
    """The tokenizer saved beside a reward model (its `save_pretrained` folder), or `None` when there is none."""
    from .vocab import load_folder_tokenizer

    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if not path or not os.path.isdir(path):
        return None
    try:
        # Checked against the tokenizer the folder's genarm_config.json records.
        return load_folder_tokenizer(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not load the tokenizer saved with `reward_models[{index}]` from {path!r} ({error}); pass it "
            "with `reward_model_tokenizers=`."
        ) from error


def _resolve_reward_tokenizers(models: list[torch.nn.Module], tokenizer: Any, given: Any) -> list[Any]:
    """One tokenizer per reward model: the one given, else the one saved with it, else the base tokenizer.

    Each is checked against the tokenizer the reward model records: a recorded fingerprint always wins.
    """
    if given is not None and len(given) != len(models):
        raise ValueError("`reward_model_tokenizers` needs one entry (or None) per reward model.")
    resolved = []
    for index, model in enumerate(models):
        owner = f"`reward_models[{index}]`"
        candidate, argument = (given[index] if given is not None else None), f"`reward_model_tokenizers[{index}]`"
        if candidate is None:
            candidate, argument = _saved_tokenizer(model, index), f"The tokenizer saved beside {owner}"
        if candidate is None:
            candidate = tokenizer
            argument = f"The base tokenizer (`tokenizer=`, used since no tokenizer was given or saved for {owner})"
        check_reward_model_tokenizer(
            model,
            candidate,
            argument,
            owner,
            fix=f"Pass the tokenizer {owner} was trained with as `reward_model_tokenizers[{index}]` "
            "(`AutoTokenizer.from_pretrained(reward_model_folder)`).",
        )
        resolved.append(candidate)
    return resolved


class CrossTokenizerGenARMLogitsProcessor(GenARMLogitsProcessor):
    r"""GenARM guidance by reward models whose tokenizer differs from the base model's.

    Each step, for each row, the base's `num_candidates` most likely tokens are decoded into the text each
    appends, and every reward model scores that text exactly: the candidate's score is
    `log P_r(tok_r(x + s)) - log P_r(tok_r(x))` for the text so far `x` and the candidate's text `s`, where
    `tok_r` is the reward model's own tokenization (after its special prefix or its own prompt). The processor
    returns `log_softmax(scores) + sum_i (alpha_i / beta) * score_i` on those candidates and `-inf` on every
    other token, so generation (greedy, sampling with temperature/top-k/top-p, beam search) chooses among the
    base's top candidates, as ARGS does. A candidate that adds no complete character (part of a multi-byte
    character, a special token other than EOS) gets its row's lowest score; the base's EOS is scored as the
    reward model's EOS.

    The reward model keeps its own tokenization of the text in its KV cache: tokens a later text cannot change
    (those before the last two pre-tokens, checked by tokenizing both sides apart) are committed and appended
    to the cache; only the unstable tail is re-tokenized and run again with each candidate, in one batched
    forward over copies of the row's cache. Per step that costs `num_candidates + 1` short sequences (a few
    tokens each) through each reward model, versus one token for `GenARMLogitsProcessor`.

    When every reward model's tokenizer is the base's, the processor is exactly `GenARMLogitsProcessor` (full
    vocabulary, same results bit for bit). Assisted decoding, which takes tokens back, is refused.

    Args:
        reward_models (`PreTrainedModel` or `list[PreTrainedModel]`):
            Reward models (`AutoregressiveRewardModel`s or plain causal LMs), each with its own tokenizer.
        tokenizer (`PreTrainedTokenizerBase`):
            The base model's tokenizer.
        reward_model_tokenizers (`list`, *optional*):
            One tokenizer per reward model (`None` entries allowed). A missing one is loaded from the folder the
            reward model was loaded from; without one, the reward model must share the base tokenizer. A
            reward model that records its tokenizer (an `AutoregressiveRewardModel`) refuses any other.
        num_candidates (`int`, *optional*, defaults to `16`):
            Base tokens scored per row and step; every other token is masked.
        alpha, beta, attention_mask, reward_model_inputs:
            As for `GenARMLogitsProcessor`. `reward_model_inputs` holds prompts in each reward model's tokenizer.
        preference (`list[float]`, `dict[str, float]` or `torch.Tensor`, *optional*):
            For a preference-conditioned reward model, as for `GenARMLogitsProcessor`; only when every reward
            model shares the base tokenizer (across tokenizers it is refused for now).

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.cross_tokenizer import CrossTokenizerGenARMLogitsProcessor
    >>> from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> base_tokenizer, reward_tokenizer = make_tiny_tokenizer(), make_tiny_metaspace_tokenizer()
    >>> base = make_tiny_causal_lm(seed=0)
    >>> reward_model = AutoregressiveRewardModel(
    ...     make_tiny_causal_lm("llama", vocab_size=len(reward_tokenizer), seed=1), tokenizer=reward_tokenizer
    ... )
    >>> inputs = base_tokenizer(["The cat", "Life is short"], return_tensors="pt", padding=True)
    >>> processor = CrossTokenizerGenARMLogitsProcessor(
    ...     reward_model, tokenizer=base_tokenizer, reward_model_tokenizers=[reward_tokenizer],
    ...     beta=0.5, attention_mask=inputs["attention_mask"],
    ... )
    >>> output = base.generate(
    ...     **inputs, logits_processor=[processor], max_new_tokens=5, do_sample=False,
    ...     pad_token_id=base_tokenizer.pad_token_id,
    ... )
    >>> output.shape[0]
    2
    ```
    """

    def __init__(
        self,
        reward_models: torch.nn.Module | Sequence[torch.nn.Module],
        tokenizer: Any,
        reward_model_tokenizers: Sequence[Any] | None = None,
        alpha: float | Sequence[float] | torch.Tensor = 1.0,
        beta: float = 1.0,
        attention_mask: torch.Tensor | None = None,
        reward_model_inputs: dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor] | None] | None = None,
        num_candidates: int = DEFAULT_NUM_CANDIDATES,
        preference: Sequence[float] | dict[str, float] | torch.Tensor | None = None,
    ) -> None:
        if tokenizer is None or not callable(getattr(tokenizer, "batch_decode", None)):
            raise TypeError("`tokenizer` must be the base model's tokenizer (a PreTrainedTokenizerBase).")
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
            raise ValueError(
                f"`num_candidates` must be a positive int (base tokens scored per step), got {num_candidates!r}."
            )
        models = self._validate_reward_models(reward_models)
        model_tokenizers = _resolve_reward_tokenizers(models, tokenizer, reward_model_tokenizers)
        base_fingerprint = tokenizer_fingerprint(tokenizer)
        self.cross_tokenizer = any(
            describe_tokenizer_difference(base_fingerprint, tokenizer_fingerprint(model_tokenizer))
            for model_tokenizer in model_tokenizers
        )
        self.num_candidates = num_candidates
        self.base_tokenizer = tokenizer
        self.reward_model_tokenizers = model_tokenizers
        if not self.cross_tokenizer:
            super().__init__(
                models,
                alpha,
                beta,
                attention_mask,
                reward_model_inputs,
                tokenizer=tokenizer,
                reward_model_tokenizers=model_tokenizers,
                preference=preference,
            )
            return
        if preference is not None:
            raise ValueError(
                "`preference=` (a preference-conditioned reward model) is not supported yet with reward models of "
                "another tokenizer than the base's; use a conditioned reward model that shares the base tokenizer."
            )
        # Each reward model is checked against its own tokenizer; the base tokenizer only decodes.
        super().__init__(models, alpha, beta, attention_mask, reward_model_inputs)
        # The base prompt's padding follows the base tokenizer by the shared-vocabulary path's rule (the reward
        # models' own prompts, in their tokenizers, were checked without it).
        self.pad_token_id = tokenizer.pad_token_id
        self._pad_roles = pad_token_roles(tokenizer, self.pad_token_id)
        for index, (model, model_tokenizer) in enumerate(zip(models, model_tokenizers)):
            if model.get_output_embeddings().weight.shape[0] < len(model_tokenizer):
                raise ValueError(
                    f"`reward_models[{index}]` has fewer output rows than its tokenizer has tokens "
                    f"({len(model_tokenizer)}); pass the tokenizer it was trained with in `reward_model_tokenizers`."
                )
        decoder = BaseTextDecoder(tokenizer)
        self._streams = [
            CrossTokenizerStream(
                model, stream.own_prompt_ids, stream.own_prompt_mask, decoder, RewardTokenizer(model_tokenizer)
            )
            for model, stream, model_tokenizer in zip(models, self._streams, model_tokenizers)
        ]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.cross_tokenizer:
            return super().__call__(input_ids, scores)
        if not self.alpha.any():
            return scores
        try:
            new_tokens = self._synchronise(input_ids)
        except ValueError:
            # A stream refused to take tokens back (assisted decoding): free the reward models' caches now.
            self._release()
            raise
        if new_tokens is None:
            self._start(input_ids)
        else:
            for stream in self._streams:
                stream.append(new_tokens)

        base_log_probs = shared_log_probs(scores, min(len(self.base_tokenizer), scores.shape[-1]))
        top_log_probs, top_ids = base_log_probs.topk(min(self.num_candidates, base_log_probs.shape[-1]), dim=-1)
        candidates = top_ids.tolist()
        eos = self.base_tokenizer.eos_token_id
        rewards = [stream.candidate_log_probs(candidates, eos) for stream in self._streams]
        guided_top = add_weighted(top_log_probs, rewards, self._row_weights)
        guided = torch.full(scores.shape, -float("inf"), dtype=torch.float32, device=scores.device)
        return guided.scatter(-1, top_ids, guided_top)


@torch.no_grad()
def cross_tokenizer_token_rewards(
    reward_model: AutoregressiveRewardModel,
    reward_tokenizer: Any,
    base_tokenizer: Any,
    prompt: str,
    response: str,
    *,
    per: str = "base",
    add_eos: bool = True,
) -> tuple[list[str], list[float]]:
    """Token-level rewards of a response under a reward model of another tokenizer than the base's.

    With `per="reward"` the response is cut into the reward model's own tokens (exactly
    `hf_genarm.score_text`). With `per="base"` it is cut into the base tokenizer's tokens, and each base token
    gets `beta_r * (log P_r(tok_r(x + s_<=t)) - log P_r(tok_r(x + s_<t)))`: the reward model's log-probability
    of that token's text after the text before it, each text in the reward model's own tokenization, which is
    what `CrossTokenizerGenARMLogitsProcessor` adds for that token when guiding. The base tokens' rewards sum to
    the response's reward whenever the prompt's reward tokens are not merged with the response's; EOS, when
    added, is scored as the reward model's EOS.

    Args:
        reward_model (`AutoregressiveRewardModel`): The reward model.
        reward_tokenizer (`PreTrainedTokenizerBase`): Its tokenizer; refused when it is not the tokenizer the
            reward model records.
        base_tokenizer (`PreTrainedTokenizerBase`): The base model's tokenizer, whose tokens `per="base"` reports.
        prompt (`str`): The prompt as the reward model reads it.
        response (`str`): The response to score.
        per (`str`, *optional*, defaults to `"base"`): `"base"` or `"reward"`: whose tokens to report.
        add_eos (`bool`, *optional*, defaults to `True`): Score a finished response (EOS appended).

    Returns:
        `tuple[list[str], list[float]]`: each token's text and its reward.

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> reward_tokenizer = make_tiny_metaspace_tokenizer()
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(vocab_size=len(reward_tokenizer)))
    >>> tokens, rewards = cross_tokenizer_token_rewards(
    ...     reward_model, reward_tokenizer, make_tiny_tokenizer(), "Good friends and", " good food"
    ... )
    >>> tokens
    [' good', ' f', 'ood', '<|endoftext|>']
    ```
    """
    if per not in ("base", "reward"):
        raise ValueError(f"`per` must be 'base' (the base tokenizer's tokens) or 'reward', got {per!r}.")
    check_text_to_score(reward_model, prompt, response)
    check_reward_model_tokenizer(reward_model, reward_tokenizer, "`reward_tokenizer`")
    if per == "reward":
        return score_text(reward_model, reward_tokenizer, prompt, response, add_eos=add_eos)
    if add_eos and reward_tokenizer.eos_token_id is None:
        raise ValueError("The reward tokenizer has no EOS token; pass `add_eos=False` to score without one.")
    prompt_ids = list(base_tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
    full_ids = list(base_tokenizer(prompt + response, add_special_tokens=False)["input_ids"])
    start = len(split_prompt_response(prompt_ids, [full_ids])[0])
    decoder = BaseTextDecoder(base_tokenizer)
    prefix_text = complete_text(decoder.decode([full_ids[:start]])[0])
    texts = [prefix_text]
    tokens = []
    for end in range(start + 1, len(full_ids) + 1):
        texts.append(complete_text(decoder.decode([full_ids[:end]])[0]))
        # A token's text is what it adds to the text before it (a `▁` token alone would decode without its space).
        tokens.append(texts[-1][len(texts[-2]) :] or decoder.decode([full_ids[end - 1 : end]])[0])
    text_ids = RewardTokenizer(reward_tokenizer).text_ids
    reward_ids = [text_ids(text) for text in texts]
    if not reward_ids[0]:
        raise ValueError("`prompt` is empty and the reward tokenizer adds no BOS token for the response to follow.")
    if add_eos:
        reward_ids.append(reward_ids[-1] + [reward_tokenizer.eos_token_id])
        tokens.append(base_tokenizer.eos_token or reward_tokenizer.eos_token)
    width = max(len(ids) for ids in reward_ids)
    input_ids = torch.zeros(len(reward_ids), width, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(reward_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    device = reward_model.device
    totals = reward_model.token_rewards(input_ids.to(device), attention_mask.to(device)).sum(-1)
    rewards = (totals[1:] - totals[:-1]).cpu().tolist()
    return tokens, [float(value) for value in rewards]

"""ARGS decoding (Khanov et al., 2024): re-rank the base model's top-k tokens with a sequence-level reward model."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

from .._prompt_padding import mask_of_unmasked_prompt, pad_token_roles
from ..model_caller import cache_argument as find_cache_argument
from ..modeling import positions_from_attention_mask
from ..vocab import describe_tokenizer_difference, tokenizer_fingerprint
from .reward import SequenceClassifierReward, check_classifier_tokenizer

__all__ = ["ARGSLogitsProcessor", "args_generate"]

_REWARD_INPUTS = ("ids", "text")


def _is_decoder_only(model: torch.nn.Module) -> bool:
    """Whether a sequence classifier reads text left to right, so that a KV cache of a prefix stays valid."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and not getattr(config, "is_encoder_decoder", False)
    )


class _CachedCandidateRewards:
    """Rewards of `prefix + candidate` for the top-k candidates of each row, with a KV cache of the prefix.

    As in the released ARGS code, the reward model's cache of each row's prefix is repeated for the `k` candidates,
    each candidate is fed as one new token, and the next step keeps the cache of the candidate generate() chose. A
    decoder classifier pools at its last token that is not the pad token; a candidate equal to the pad token (often
    EOS) therefore gets the reward of its prefix, as a full forward pass would give it. Here the released code
    differs: from its second step on, it scores such a candidate as the token itself (see `ARGSLogitsProcessor`).
    """

    def __init__(self, model: torch.nn.Module, cache_argument: str) -> None:
        self.model = model
        self.cache_argument = cache_argument
        self.pad_token_id = getattr(model.config, "pad_token_id", None)
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None
        self.seen: torch.LongTensor | None = None
        self.candidates: torch.LongTensor | None = None
        self.candidate_rewards: torch.Tensor | None = None
        self.prefix_rewards: torch.Tensor | None = None

    def _forward(self, input_ids: torch.LongTensor, mask: torch.Tensor) -> torch.Tensor:
        positions = positions_from_attention_mask(mask)[:, -input_ids.shape[1] :]
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_argument: self.cache},
        )
        return outputs.logits[:, 0].float()

    def _chosen_indices(self, input_ids: torch.LongTensor) -> torch.LongTensor | None:
        """Which candidate each row took since the last call, or None when this call does not continue it."""
        seen = self.seen
        if seen is None or input_ids.shape != (seen.shape[0], seen.shape[1] + 1):
            return None
        if not torch.equal(input_ids[:, :-1], seen):
            return None
        match = self.candidates == input_ids[:, -1:].to(self.candidates.device)
        if not match.any(-1).all():
            return None
        return match.int().argmax(-1)

    @torch.no_grad()
    def __call__(
        self, input_ids: torch.LongTensor, row_mask: torch.Tensor, candidates: torch.LongTensor
    ) -> torch.Tensor:
        rows, k = candidates.shape
        input_ids, row_mask, candidates = (
            tensor.to(self.device) for tensor in (input_ids, row_mask.long(), candidates)
        )
        chosen = self._chosen_indices(input_ids)
        if chosen is None:
            # A new generation, reordered beams or taken-back tokens: read the whole prefix again.
            self.cache = DynamicCache(config=self.model.config)
            self.mask = row_mask
            self.prefix_rewards = self._forward(input_ids, row_mask)
        else:
            self.cache.batch_select_indices(torch.arange(rows, device=self.device) * k + chosen)
            self.mask = torch.cat([self.mask, self.mask.new_ones(rows, 1)], dim=1)
            chosen_rewards = self.candidate_rewards.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
            took_pad = input_ids[:, -1] == self.pad_token_id
            self.prefix_rewards = torch.where(took_pad, self.prefix_rewards, chosen_rewards)
        self.cache.batch_repeat_interleave(k)
        mask = self.mask.repeat_interleave(k, dim=0)
        mask = torch.cat([mask, mask.new_ones(rows * k, 1)], dim=1)
        rewards = self._forward(candidates.reshape(-1, 1), mask).reshape(rows, k)
        if self.pad_token_id is not None:
            rewards = torch.where(candidates == self.pad_token_id, self.prefix_rewards.unsqueeze(-1), rewards)
        self.seen = input_ids
        self.candidates = candidates
        self.candidate_rewards = rewards
        return rewards


class ARGSLogitsProcessor(LogitsProcessor):
    r"""Reward-guided search as in ARGS ([Khanov et al., ICLR 2024](https://arxiv.org/abs/2402.01694)).

    Each step, for every row, the base model's `top_k` most likely next tokens `v` are the candidates; each
    candidate prefix `[x, y_<t, v]` is scored by a sequence-level reward model `r`, and the processor returns

    `log_softmax(scores)[v] + weight * r([x, y_<t, v])` for the candidates and `-inf` for every other token.

    Greedy `generate()` then takes the argmax (ARGS-greedy); sampling draws among the candidates with
    probabilities `softmax(score / temperature)` (ARGS-stochastic). The released ARGS code adds the reward to the
    raw logits; they differ from log-probabilities by one constant per row, so the choices are the same.

    Cost, honestly: `top_k` reward-model evaluations per generated token and row. With a decoder-only classifier
    reading the base model's ids (`use_cache`), each is a one-token forward pass on a KV cache of the prefix that is
    repeated for the `k` candidates, as in the released code; otherwise (encoder classifiers, text, callables) each
    candidate prefix is scored from scratch, in chunks of `batch_size`. GenARM's autoregressive reward model needs
    one cached one-token pass per token, whatever `k`.

    One difference from the released ARGS code, measured on the same models: a candidate equal to the reward
    model's pad token id (EOS on many models, as on the embedded demo models) is scored here with the reward of
    its prefix, as a full forward pass gives it (a decoder classifier pools at its last non-pad token), while the
    released code, from its second step on, feeds the token through its cache and scores the token itself. Every
    other candidate gets the same score in both.

    Build one processor per `generate()` call (as `args_generate` does): the prompt mask belongs to one call.

    Args:
        reward_model (`PreTrainedModel`, `SequenceClassifierReward` or callable):
            A sequence classifier with one label (wrapped in `SequenceClassifierReward`), or a callable returning one
            float reward per row: called as `reward_model(input_ids, attention_mask)` when `reward_inputs="ids"`,
            as `reward_model(texts)` when `reward_inputs="text"`.
        weight (`float`, *optional*, defaults to `1.0`):
            Reward weight `w`; `0` reproduces the base model's decoding.
        top_k (`int`, *optional*, defaults to `10`):
            Candidates per step (`k` in the paper).
        attention_mask (`torch.Tensor` of shape `(batch, prompt_length)`, *optional*):
            The prompt mask passed to `generate()` (`generate()` does not hand it to processors). Rows of
            `num_beams` / `num_return_sequences` are derived from it. Without it, the padding of the first call's
            prompt is settled as `GenARMLogitsProcessor` settles it: a single prompt is unpadded; several are read
            through `tokenizer=`'s pad token only when it is a token of its own, and refused otherwise.
        reward_inputs (`str`, *optional*, defaults to `"ids"`):
            `"ids"`: the reward model reads the base model's token ids (they must share the tokenizer). `"text"`: the
            prefixes are decoded with `tokenizer` and the reward model reads text (another tokenizer is fine).
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The base model's tokenizer, required with `reward_inputs="text"`. With `reward_inputs="ids"` and a
            reward model given as a model, the reward model reads ids of this tokenizer, so it is checked as
            the reward model's tokenizer.
        reward_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The reward model's tokenizer when `reward_model` is a model and `reward_inputs="text"`. Refused when
            it cannot be the model's own (a fingerprint the model records always wins); with `reward_inputs="ids"`,
            refused when it differs from `tokenizer` (the reward model would read another vocabulary's ids).
        batch_size (`int`, *optional*):
            Without the cache: largest number of candidate prefixes per reward forward pass; all `rows * top_k` at
            once when `None`.
        use_cache (`bool`, *optional*):
            Score candidates on a KV cache of the prefix. Defaults to `True` when `reward_model` is a decoder-only
            sequence classifier with a pad token and `reward_inputs="ids"`, else `False`.

    Examples:

    ```python
    >>> from transformers import GPT2Config, GPT2ForSequenceClassification
    >>> from hf_genarm.baselines import ARGSLogitsProcessor
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> base = make_tiny_causal_lm()
    >>> config = GPT2Config(
    ...     vocab_size=400, n_embd=32, n_layer=1, n_head=4, num_labels=1, pad_token_id=0, bos_token_id=0, eos_token_id=0
    ... )
    >>> reward_model = GPT2ForSequenceClassification(config).eval()
    >>> inputs = tokenizer(["The cat", "Life is short"], return_tensors="pt", padding=True)
    >>> processor = ARGSLogitsProcessor(reward_model, weight=1.5, top_k=5, attention_mask=inputs["attention_mask"])
    >>> output = base.generate(
    ...     **inputs, logits_processor=[processor], max_new_tokens=4, do_sample=False, pad_token_id=0
    ... )
    >>> output.shape[1] - inputs["input_ids"].shape[1]
    4
    ```
    """

    def __init__(
        self,
        reward_model: torch.nn.Module | Callable[..., Any],
        weight: float = 1.0,
        top_k: int = 10,
        attention_mask: torch.Tensor | None = None,
        reward_inputs: str = "ids",
        tokenizer: Any = None,
        reward_tokenizer: Any = None,
        batch_size: int | None = None,
        use_cache: bool | None = None,
    ) -> None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"`weight` must be a finite float, got {weight!r}.")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive int (candidates per step), got {top_k!r}.")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}.")
        if reward_inputs not in _REWARD_INPUTS:
            raise ValueError(f"`reward_inputs` must be 'ids' or 'text', got {reward_inputs!r}.")
        if reward_inputs == "text" and tokenizer is None:
            raise ValueError("`reward_inputs='text'` needs `tokenizer=` (the base model's) to decode the prefixes.")
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 2:
                raise ValueError(
                    "`attention_mask` must be a 2-D tensor (batch, prompt_length), as given to generate()."
                )
            attention_mask = attention_mask.detach().long()
        self._cached_rewards = None
        if isinstance(reward_model, torch.nn.Module):
            if reward_inputs == "text" and reward_tokenizer is None:
                raise ValueError("Scoring text with a reward model needs `reward_tokenizer=` (the reward model's).")
            if reward_inputs == "ids":
                self._check_ids_are_the_reward_models(reward_model, tokenizer, reward_tokenizer)
            cache_argument = find_cache_argument(reward_model)
            cacheable = (
                reward_inputs == "ids"
                and cache_argument is not None
                and _is_decoder_only(reward_model)
                and getattr(reward_model.config, "pad_token_id", None) is not None
            )
            if use_cache and not cacheable:
                raise ValueError(
                    "`use_cache=True` needs a decoder-only sequence classifier that accepts a KV cache, has a pad "
                    "token and reads the base model's ids (`reward_inputs='ids'`); pass `use_cache=False`."
                )
            if cacheable and use_cache is not False:
                self._cached_rewards = _CachedCandidateRewards(reward_model, cache_argument)
            reward_model = SequenceClassifierReward(reward_model, reward_tokenizer, batch_size=batch_size)
        elif not callable(reward_model):
            raise TypeError(
                f"`reward_model` must be a sequence classifier or a callable, got {type(reward_model).__name__}."
            )
        elif use_cache:
            raise ValueError("`use_cache=True` needs `reward_model` to be a sequence classifier, not a callable.")
        self.reward_model = reward_model
        self.weight = float(weight)
        self.top_k = top_k
        self.prompt_attention_mask = attention_mask
        self.reward_inputs = reward_inputs
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @staticmethod
    def _check_ids_are_the_reward_models(reward_model: torch.nn.Module, tokenizer: Any, reward_tokenizer: Any) -> None:
        """With `reward_inputs="ids"` the reward model reads the base's ids: both tokenizers must be its own."""
        if tokenizer is not None:
            check_classifier_tokenizer(reward_model, tokenizer, "`tokenizer` (whose ids the reward model reads)")
        if tokenizer is not None and reward_tokenizer is not None:
            difference = describe_tokenizer_difference(
                tokenizer_fingerprint(tokenizer), tokenizer_fingerprint(reward_tokenizer)
            )
            if difference:
                raise ValueError(
                    f"`reward_inputs='ids'` feeds the base model's ids to the reward model, but `reward_tokenizer` "
                    f"differs from `tokenizer` ({difference}). Pass `reward_inputs='text'` to have the reward model "
                    "read the decoded text with its own tokenizer."
                )

    def _row_mask(self, input_ids: torch.LongTensor) -> torch.Tensor:
        rows, width = input_ids.shape
        prompt_mask = self.prompt_attention_mask
        if prompt_mask is None:
            # The one rule of every path that infers padding; settled at the first call, which holds the prompt.
            pad_token_id = getattr(self.tokenizer, "pad_token_id", None)
            prompt_mask = mask_of_unmasked_prompt(
                input_ids,
                pad_token_id,
                "The prompt generate() passes",
                "`attention_mask=` to ARGSLogitsProcessor (the mask given to generate())",
                pad_token_roles(self.tokenizer, pad_token_id),
            ).long()
            self.prompt_attention_mask = prompt_mask
        prompts, prompt_width = prompt_mask.shape
        if rows % prompts != 0 or width < prompt_width:
            raise ValueError(
                f"generate() passed {rows} rows of {width} tokens but `attention_mask` is for {prompts} prompts of "
                f"{prompt_width} tokens; build a new ARGSLogitsProcessor with the prompt mask of each generate() call."
            )
        prompt_mask = prompt_mask.to(input_ids.device).repeat_interleave(rows // prompts, dim=0)
        return torch.cat([prompt_mask, prompt_mask.new_ones(rows, width - prompt_width)], dim=1)

    def _rewards(self, candidate_ids: torch.LongTensor, candidate_mask: torch.Tensor) -> torch.Tensor:
        if self.reward_inputs == "ids":
            chunks = self.batch_size or candidate_ids.shape[0]
            scores = [
                self.reward_model(candidate_ids[start : start + chunks], candidate_mask[start : start + chunks])
                for start in range(0, candidate_ids.shape[0], chunks)
            ]
        else:
            texts = [
                self.tokenizer.decode(row[mask.bool()], skip_special_tokens=True)
                for row, mask in zip(candidate_ids.cpu(), candidate_mask.cpu())
            ]
            chunks = self.batch_size or len(texts)
            scores = [self.reward_model(texts[start : start + chunks]) for start in range(0, len(texts), chunks)]
        rewards = torch.cat([torch.as_tensor(score, dtype=torch.float32).reshape(-1).cpu() for score in scores])
        if rewards.shape[0] != candidate_ids.shape[0]:
            raise ValueError(
                f"The reward model returned {rewards.shape[0]} scores for {candidate_ids.shape[0]} candidate prefixes; "
                "it must return one score per row."
            )
        return rewards

    @torch.no_grad()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        rows = input_ids.shape[0]
        log_probs = torch.log_softmax(scores.float(), dim=-1)
        candidate_log_probs, candidates = log_probs.topk(min(self.top_k, scores.shape[-1]), dim=-1)
        k = candidates.shape[-1]
        row_mask = self._row_mask(input_ids)
        if self._cached_rewards is not None:
            rewards = self._cached_rewards(input_ids, row_mask, candidates).to(scores.device)
        else:
            candidate_ids = torch.cat([input_ids.repeat_interleave(k, dim=0), candidates.reshape(-1, 1)], dim=1)
            row_mask = row_mask.repeat_interleave(k, dim=0)
            candidate_mask = torch.cat([row_mask, row_mask.new_ones(rows * k, 1)], dim=1)
            rewards = self._rewards(candidate_ids, candidate_mask).to(scores.device).reshape(rows, k)
        guided = torch.full_like(log_probs, -float("inf"))
        return guided.scatter(-1, candidates, candidate_log_probs + self.weight * rewards)


def args_generate(
    base: torch.nn.Module,
    tokenizer: Any,
    prompts: str | Sequence[str],
    reward_model: torch.nn.Module | Callable[..., Any],
    *,
    weight: float = 1.0,
    top_k: int = 10,
    reward_inputs: str = "ids",
    reward_tokenizer: Any = None,
    batch_size: int | None = None,
    use_cache: bool | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Generate completions with ARGS decoding (greedy unless `do_sample=True` is passed).

    Tokenizes the prompts with left padding, builds an `ARGSLogitsProcessor` for them and calls `base.generate()`.

    Args:
        base (`PreTrainedModel`): The base causal LM.
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        prompts (`str` or `list[str]`): One or several prompts.
        reward_model (`PreTrainedModel`, `SequenceClassifierReward` or callable): See `ARGSLogitsProcessor`.
        weight (`float`, *optional*, defaults to `1.0`): Reward weight `w`.
        top_k (`int`, *optional*, defaults to `10`): Candidates per step (not generate()'s `top_k`).
        reward_inputs (`str`, *optional*, defaults to `"ids"`): `"ids"` or `"text"`; see `ARGSLogitsProcessor`.
        reward_tokenizer (`PreTrainedTokenizerBase`, *optional*): See `ARGSLogitsProcessor`.
        batch_size (`int`, *optional*): Candidate prefixes per reward forward pass without the cache.
        use_cache (`bool`, *optional*): Score candidates on a KV cache of the prefix; see `ARGSLogitsProcessor`.
        generate_kwargs: Passed to `generate()` (`max_new_tokens`, `do_sample`, `temperature`, ...).

    Returns:
        `list[str]`: the completions (prompt excluded, special tokens skipped), `num_return_sequences` per prompt.

    Examples:

    ```python
    >>> from hf_genarm.baselines import args_generate
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> def reward(input_ids, attention_mask):  # any callable giving one reward per row; here, a toy one
    ...     return input_ids[:, -1].float() / 100
    >>> prompts = ["The cat", "Life is"]
    >>> completions = args_generate(make_tiny_causal_lm(), make_tiny_tokenizer(), prompts, reward, max_new_tokens=3)
    >>> len(completions)
    2
    ```
    """
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(prompt, str) for prompt in prompt_list):
        raise ValueError("`prompts` must be a string or a non-empty list of strings.")
    inputs = tokenizer(prompt_list, return_tensors="pt", padding=True, padding_side="left").to(base.device)
    processor = ARGSLogitsProcessor(
        reward_model,
        weight=weight,
        top_k=top_k,
        attention_mask=inputs["attention_mask"],
        reward_inputs=reward_inputs,
        tokenizer=tokenizer,
        reward_tokenizer=reward_tokenizer,
        batch_size=batch_size,
        use_cache=use_cache,
    )
    processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
    processors.append(processor)
    generate_kwargs.setdefault("do_sample", False)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    output = base.generate(**inputs, logits_processor=processors, **generate_kwargs)
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

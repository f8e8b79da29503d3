"""`GenARMLogitsProcessor`: reward-guided decoding inside stock `model.generate()`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor
from transformers.utils import logging

from ._growing_cache import GrowingBuffer
from ._prompt_padding import (
    PadTokenRoles,
    check_left_padded,
    check_mask_matches_prompt,
    mask_of_unmasked_prompt,
    pad_token_roles,
)
from ._reward_stream import RewardModelStream
from .combine import combine, shared_log_probs
from .configuration import guidance_weights, validate_alpha, validate_beta, validate_positive_length
from .model_caller import innermost_transformers_model
from .preference_lora import ProcessorPreferences
from .vocab import check_reward_model_vocabularies, model_vocab_size

__all__ = ["GenARMLogitsProcessor"]

logger = logging.get_logger(__name__)

class GenARMLogitsProcessor(LogitsProcessor):
    r"""Guides any causal LM's `generate()` with one or more autoregressive reward models (GenARM).

    GenARM ([Xu et al., ICLR 2025](https://arxiv.org/abs/2410.08193)) samples from
    `pi_base(y_t | .) * prod_i pi_r_i(y_t | .) ** (alpha_i / beta)`. Each step this processor returns, in
    float32 over the vocabulary the models share,

    `log_softmax(scores) + sum_i (alpha_i / beta) * log_softmax(reward_model_i logits)`

    and ids beyond the shared vocabulary get `-inf`. `generate()` then applies temperature, top-k and top-p
    to that sum, so sampling follows `exp((log pi_base + sum_i alpha_i / beta * log pi_r_i) / T)`. Under
    beam search the per-token sums accumulate into `log pi_base(y) + sum_i (alpha_i / beta) log pi_r_i(y)`,
    the sequence-level GenARM objective.

    Each reward model keeps its own cache and is fed only the new token each step, with position ids
    taken from the prompt's attention mask as `generate()` takes them for the base (left padding works).
    The processor matches each incoming row to the rows it has cached, so beam search (rows reordered each
    step), assisted decoding (rejected candidates cropped) and a reused processor (a new `generate()` call
    resets it) all work without help; `reset()` does it by hand. Sliding-window, state-space and recurrent
    reward models follow too: a state that cannot be cropped or reordered is rebuilt from the kept tokens.

    The prompt's padding is settled once, at the first step of each `generate()` call, and never guessed:

    - a given `attention_mask` must be left padding; with the pad id known (`tokenizer=` or
      `pad_token_id=`) it must also fit the prompt (masked columns hold the pad id), otherwise it may only
      be reused on the prompts it was first used with (`reset(attention_mask=...)` for new ones). A mask of
      ones over leading pad ids is taken as text only where the pad token is also the BOS (once, opening
      every row alike), EOS or unknown token (once more, in any row: a document that starts with EOS);
    - without a mask, each row's leading pad ids are its padding (as `pipeline(..., batch_size>1)` pads),
      but only with a pad token of its own: where it is also the tokenizer's BOS, EOS or unknown token (GPT-2
      and many others pad with EOS; without `tokenizer=` it may be), a row that starts with the pad id is
      refused (padding or text cannot be told, as `generate()` itself declines to infer a mask then): pass
      `attention_mask=`. Also refused: a pad id after a row's text, a row that holds no token, and several
      different prompts with neither mask nor pad id;
    - a mask (or per-row `alpha`, `reward_model_inputs`) of `k` rows serves `n * k` rows only when they are
      `n` copies of each prompt (`num_beams` / `num_return_sequences`).

    Also checked before any reward-model forward: the vocabulary (without `tokenizer=`, a vocabulary
    recorded in a reward model's metadata that is smaller than the base's logits is refused rather than
    ban base ids) and each reward model's position limit. A reward model in training mode is run in eval
    mode (dropout off) and left in the mode it was in, with a warning.

    Args:
        reward_models (`PreTrainedModel` or `list[PreTrainedModel]`):
            One or several `AutoregressiveRewardModel`s or plain causal LMs (PEFT models too) that share the
            base model's tokenizer. They may live on another device or dtype than the base.
        alpha (`float`, `list[float]` or `torch.Tensor`, *optional*, defaults to `1.0`):
            Weight of each reward model: one float for all, one float per reward model, or a tensor of shape
            `(batch, len(reward_models))` giving each prompt of the batch its own trade-off.
        beta (`float`, *optional*, defaults to `1.0`):
            KL-regularisation strength of the aligned policy; the reward models' weights are `alpha / beta`.
        attention_mask (`torch.Tensor` of shape `(batch, prompt_length)`, *optional*):
            The prompt's attention mask, as passed to `generate()` (which does not hand it to processors).
            Needed for left-padded batches unless the pad id is known; rows of `num_beams` /
            `num_return_sequences` are derived from it.
        reward_model_inputs (`dict` or `list[dict | None]`, *optional*):
            Per reward model, its own prompt (`{"input_ids": ..., "attention_mask": ...}`, left-padded, one row
            per prompt), e.g. the prompt in the reward model's chat template. It replaces the base prompt for
            that reward model; the generated tokens are shared.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The base model's tokenizer. Fixes the shared vocabulary to `len(tokenizer)` and lets the processor
            refuse reward models whose tokenizer (from their saved metadata or `reward_model_tokenizers`) differs.
        reward_model_tokenizers (`list`, *optional*):
            Tokenizers of the reward models, one per model (`None` entries allowed), for the same check.
        pad_token_id (`int`, *optional*):
            The pad id of the base tokenizer, when `tokenizer=` is not given; lets the processor read a
            left-padded prompt's mask off its leading pad ids and check a given mask.
        max_new_tokens (`int`, *optional*):
            The `max_new_tokens` of the `generate()` calls this processor guides (generate() does not tell its
            processors). With it, a prompt that would carry a reward model past its position limit is refused
            before any reward-model forward; without it, at the step that reaches the limit.
        preference (`list[float]`, `dict[str, float]` or `torch.Tensor`, *optional*):
            For a preference-conditioned reward model (`PreferenceConditionedARM`, PARM), the trade-off between its
            objectives: one weight per objective on the simplex, a dict by objective name, or a `(batch, k)`
            tensor giving each prompt its own. Required with such a model, refused without one; the model still
            runs once per token whatever the number of objectives.

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> base = make_tiny_causal_lm(seed=0)
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=tokenizer)
    >>> inputs = tokenizer(["The cat", "Life is short"], return_tensors="pt", padding=True)
    >>> processor = GenARMLogitsProcessor(
    ...     reward_model, alpha=1.0, beta=0.5, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    ... )
    >>> output = base.generate(
    ...     **inputs, logits_processor=[processor], max_new_tokens=5, do_sample=False,
    ...     pad_token_id=tokenizer.pad_token_id,
    ... )
    >>> output.shape[0]
    2
    ```
    """

    supports_continuous_batching = False

    def __init__(
        self,
        reward_models: torch.nn.Module | Sequence[torch.nn.Module],
        alpha: float | Sequence[float] | torch.Tensor = 1.0,
        beta: float = 1.0,
        attention_mask: torch.Tensor | None = None,
        reward_model_inputs: dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor] | None] | None = None,
        tokenizer: Any = None,
        reward_model_tokenizers: Sequence[Any] | None = None,
        pad_token_id: int | None = None,
        max_new_tokens: int | None = None,
        preference: Sequence[float] | dict[str, float] | torch.Tensor | None = None,
    ) -> None:
        models = self._validate_reward_models(reward_models)
        self.beta = validate_beta(beta)
        self.alpha = validate_alpha(alpha, len(models))
        guidance_weights(self.alpha, self.beta)
        self.prompt_attention_mask = self._validate_attention_mask(attention_mask)
        self.pad_token_id = self._resolve_pad_token_id(pad_token_id, tokenizer)
        # A pad id that is also the BOS, EOS or unknown token may be text (unknown without the tokenizer).
        self._pad_roles = pad_token_roles(tokenizer, self.pad_token_id)
        own_prompts = self._validate_reward_model_inputs(
            reward_model_inputs, len(models), self.pad_token_id, self._pad_roles
        )
        self.shared_vocab_size = check_reward_model_vocabularies(models, tokenizer, reward_model_tokenizers)
        self._vocab_from_tokenizer = tokenizer is not None
        self._vocab_for_base_width: tuple[int, int] | None = None
        self.reward_models = models
        self._reward_widths = [model_vocab_size(model) for model in models]
        self._streams = [
            RewardModelStream(model, *prompt, name=f"`reward_models[{index}]`")
            for index, (model, prompt) in enumerate(zip(models, own_prompts))
        ]
        self._preferences = ProcessorPreferences(models, preference)
        self._prompt_batch_size = self._check_batch_sizes()
        self.max_new_tokens = validate_positive_length(max_new_tokens, "max_new_tokens")
        # The prompts the given mask was first used on, when no pad id lets the processor check it directly.
        self._mask_prompt_ids: torch.LongTensor | None = None
        # The ids of the last call, grown by each step's new columns instead of copied whole.
        self._seen_ids = GrowingBuffer(dim=1)
        self._prompt_width = 0
        self._rows_per_prompt = 1
        self._row_weights: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------------- validation
    @staticmethod
    def _validate_reward_models(reward_models: Any) -> list[torch.nn.Module]:
        models = list(reward_models) if isinstance(reward_models, (list, tuple)) else [reward_models]
        if not models:
            raise ValueError("`reward_models` is empty; pass at least one reward model.")
        for index, model in enumerate(models):
            if not isinstance(model, torch.nn.Module):
                raise TypeError(
                    f"`reward_models[{index}]` must be a causal LM (torch.nn.Module), got {type(model).__name__}."
                )
            get_head = getattr(model, "get_output_embeddings", None)
            if get_head is None or get_head() is None:
                raise ValueError(
                    f"`reward_models[{index}]` ({type(model).__name__}) has no language-model head; load it with "
                    "AutoModelForCausalLM or AutoregressiveRewardModel.from_pretrained."
                )
            config = getattr(innermost_transformers_model(model), "config", None)
            if getattr(config, "is_encoder_decoder", False):
                raise ValueError(
                    f"`reward_models[{index}]` ({type(model).__name__}) is an encoder-decoder model; GenARM reward "
                    "models are decoder-only causal LMs that read the prompt and the response as one sequence."
                )
            if any(parameter.is_meta for parameter in model.parameters()):
                raise ValueError(
                    f"`reward_models[{index}]` has weights on the `meta` device (not loaded); load it with "
                    "`from_pretrained(...)` onto a real device, or move it with `.to(device)` after loading weights."
                )
        return models

    @staticmethod
    def _resolve_pad_token_id(pad_token_id: Any, tokenizer: Any) -> int | None:
        if pad_token_id is not None:
            if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int) or pad_token_id < 0:
                raise TypeError(
                    f"`pad_token_id` must be a non-negative int (the tokenizer's pad id), got {pad_token_id!r}."
                )
            tokenizer_pad = getattr(tokenizer, "pad_token_id", None)
            if tokenizer_pad is not None and tokenizer_pad != pad_token_id:
                raise ValueError(
                    f"`pad_token_id={pad_token_id}` differs from the pad id {tokenizer_pad} of `tokenizer`; pass one."
                )
            return pad_token_id
        return getattr(tokenizer, "pad_token_id", None)

    @staticmethod
    def _validate_attention_mask(attention_mask: Any) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"`attention_mask` must be a torch.Tensor, got {type(attention_mask).__name__}.")
        if attention_mask.dim() != 2:
            raise ValueError(
                f"`attention_mask` must have shape (batch, prompt_length), got {tuple(attention_mask.shape)}."
            )
        check_left_padded(attention_mask, "`attention_mask`")
        return attention_mask.detach().long()

    @staticmethod
    def _validate_reward_model_inputs(
        reward_model_inputs: Any, num_models: int, pad_token_id: int | None, pad_roles: PadTokenRoles
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        if reward_model_inputs is None:
            return [(None, None)] * num_models
        entries = list(reward_model_inputs) if isinstance(reward_model_inputs, (list, tuple)) else [reward_model_inputs]
        if len(entries) != num_models:
            raise ValueError(
                f"`reward_model_inputs` has {len(entries)} entries for {num_models} reward model(s); pass one "
                "entry (or None) per reward model."
            )
        prompts = []
        for index, entry in enumerate(entries):
            if entry is None:
                prompts.append((None, None))
                continue
            if "input_ids" not in entry:
                raise ValueError(f"`reward_model_inputs[{index}]` needs an 'input_ids' entry (and 'attention_mask').")
            ids = torch.as_tensor(entry["input_ids"]).long()
            if ids.dim() != 2:
                raise ValueError(f"`reward_model_inputs[{index}]['input_ids']` must be 2-D (batch, length).")
            mask = entry.get("attention_mask")
            name = f"`reward_model_inputs[{index}]['attention_mask']`"
            if mask is None:
                prompt = f"`reward_model_inputs[{index}]['input_ids']`"
                mask = mask_of_unmasked_prompt(ids, pad_token_id, prompt, "its 'attention_mask'", pad_roles)
            mask = torch.as_tensor(mask)
            if mask.shape != ids.shape:
                raise ValueError(f"`reward_model_inputs[{index}]` has an attention_mask of another shape than its ids.")
            check_left_padded(mask, name)
            prompts.append((ids, mask.long()))
        return prompts

    def _check_batch_sizes(self) -> int | None:
        """Return the number of prompts that the per-prompt inputs agree on (None when none is given)."""
        batches = {}
        if self.prompt_attention_mask is not None:
            batches["attention_mask"] = self.prompt_attention_mask.shape[0]
        if self.alpha.shape[0] > 1:
            batches["alpha"] = self.alpha.shape[0]
        if self._preferences.prompts is not None:
            batches["preference"] = self._preferences.prompts
        for index, stream in enumerate(self._streams):
            if stream.own_prompt_ids is not None:
                batches[f"reward_model_inputs[{index}]"] = stream.own_prompt_ids.shape[0]
        if len(set(batches.values())) > 1:
            described = ", ".join(f"`{name}` has {size}" for name, size in batches.items())
            raise ValueError(f"Batch sizes disagree: {described} rows; give every per-prompt input one row per prompt.")
        return next(iter(batches.values()), None)

    # ------------------------------------------------------------------------------------------- state
    def reset(self, attention_mask: torch.Tensor | None = None) -> None:
        """Forget the cached generation; the next call starts a new one.

        A new `generate()` call is also noticed by itself (its first call sees only the prompt).

        Args:
            attention_mask (`torch.Tensor`, *optional*):
                The prompt mask of the next `generate()` call, when it differs from the one given before.
        """
        if attention_mask is not None:
            self.prompt_attention_mask = self._validate_attention_mask(attention_mask)
            self._prompt_batch_size = self._check_batch_sizes()
            self._mask_prompt_ids = None
        self._release()

    def _release(self) -> None:
        for stream in self._streams:
            stream.release()
        self._seen_ids.clear()
        self._row_weights = None

    def _start(self, input_ids: torch.LongTensor) -> None:
        """Begin a new generation on the prompt `input_ids` (validated here, once per generation)."""
        self._release()
        rows, width = input_ids.shape
        if width == 0:
            # generate(inputs_embeds=...) hands processors only the generated ids: the reward models, which read
            # token ids, would never see the prompt.
            raise ValueError(
                "generate() passed no prompt ids to GenARMLogitsProcessor, as it does when called with "
                "`inputs_embeds=`: the reward models read token ids and would not see the prompt. Pass the prompt "
                "as `input_ids=` (with its `attention_mask=`) to generate() instead of `inputs_embeds=`."
            )
        prompts = self._prompt_batch_size or rows
        if rows % prompts != 0:
            raise ValueError(
                f"generate() is decoding {rows} rows but the per-prompt inputs (`attention_mask`, per-row `alpha`, "
                f"`reward_model_inputs`) have {prompts} rows; pass one row per prompt of this generate() call."
            )
        self._rows_per_prompt = rows // prompts
        if self._rows_per_prompt > 1:
            # generate() repeats each prompt for `num_beams` / `num_return_sequences`: at the first step the copies
            # are equal. Different rows mean the per-prompt inputs belong to a batch of other prompts.
            copies = input_ids.reshape(prompts, self._rows_per_prompt, width)
            if not bool((copies == copies[:, :1]).all()):
                raise ValueError(
                    f"The per-prompt inputs (`attention_mask`, per-row `alpha`, `reward_model_inputs`) have {prompts} "
                    f"rows, but the {rows} rows generate() passes are not {self._rows_per_prompt} copies of "
                    f"{prompts} prompts (num_beams / num_return_sequences): they belong to another batch. Pass one "
                    "row per prompt of this generate() call."
                )
        prompt_mask = self._prompt_mask(input_ids)
        # Moved once to the device of the ids (generate() keeps its scores there), not at every step.
        weights = guidance_weights(self.alpha, self.beta).to(input_ids.device)
        self._row_weights = (
            weights.expand(rows, -1) if weights.shape[0] == 1 else weights.repeat_interleave(self._rows_per_prompt, 0)
        )
        self._prompt_width = width
        for stream in self._streams:
            stream.start(input_ids, prompt_mask, rows)
            if self.max_new_tokens is not None:
                stream.check_room(self.max_new_tokens)
        self._seen_ids.append(input_ids)

    def _prompt_mask(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """The mask of the prompt `input_ids`: the given one, checked against the prompt, or inferred from it."""
        width = input_ids.shape[1]
        mask = self.prompt_attention_mask
        if mask is None:
            return mask_of_unmasked_prompt(
                input_ids,
                self.pad_token_id,
                "The prompt generate() passes",
                "`attention_mask=` to the processor (the mask given to generate(), e.g. `inputs[\"attention_mask\"]`)",
                self._pad_roles,
            )
        if mask.shape[1] != width:
            raise ValueError(
                f"The prompt passed to generate() has {width} columns but `attention_mask` has {mask.shape[1]}; "
                "pass the prompt's own mask, or call `reset(attention_mask=...)` before reusing the processor."
            )
        mask = mask.to(input_ids.device).repeat_interleave(self._rows_per_prompt, dim=0)
        if self.pad_token_id is not None:
            check_mask_matches_prompt(mask, input_ids, self.pad_token_id, self._pad_roles)
            return mask
        prompt_ids = input_ids[:: self._rows_per_prompt]
        if self._mask_prompt_ids is None:
            self._mask_prompt_ids = prompt_ids.clone()
        elif not torch.equal(self._mask_prompt_ids.to(prompt_ids.device), prompt_ids):
            raise ValueError(
                "This processor's `attention_mask` was given for the prompts of an earlier generate() call, and "
                "without a pad id it cannot check that the mask fits these. Call `reset(attention_mask=...)` with "
                "the new batch's mask before reusing the processor, or pass `tokenizer=` / `pad_token_id=`."
            )
        return mask

    def _synchronise(self, input_ids: torch.LongTensor) -> torch.LongTensor | None:
        """Bring every stream's cache to a prefix of each row; return the tokens still to feed (None: new call).

        The ids seen so far are updated to `input_ids` here, except on a new call (`_start` records them).
        """
        seen = self._seen_ids.filled
        if seen is None or seen.shape[0] != input_ids.shape[0] or input_ids.shape[1] <= self._prompt_width:
            return None
        seen_length = seen.shape[1]
        # The one per-step read of every id (and, on an accelerator, the one wait for the device): generate() does
        # not say when beam search reorders rows or assisted decoding takes tokens back, and feeding a reward model
        # the wrong row's history would be silently wrong.
        if seen_length < input_ids.shape[1] and torch.equal(input_ids[:, :seen_length], seen):
            new_tokens = input_ids[:, seen_length:]
            self._seen_ids.append(new_tokens)
            return new_tokens
        # Rows were reordered (beam search) or tokens were taken back (assisted decoding). Rows only move within
        # their prompt's group, so compare each row with the cached rows of its group, pick the one sharing the
        # longest prefix (itself on ties), keep what every row shares and feed the rest.
        rows = input_ids.shape[0]
        group = self._rows_per_prompt if self._prompt_batch_size else rows
        comparable = min(seen_length, input_ids.shape[1] - 1)
        current = input_ids[:, :comparable].reshape(rows // group, group, 1, comparable)
        cached = seen[:, :comparable].reshape(rows // group, 1, group, comparable)
        mismatch = current != cached
        shared = torch.where(mismatch.any(-1), mismatch.int().argmax(-1), comparable)
        preference = 2 * shared + torch.eye(group, dtype=shared.dtype, device=shared.device)
        local_sources = preference.argmax(-1)
        keep = int(shared.gather(-1, local_sources.unsqueeze(-1)).min())
        if keep < self._prompt_width:
            return None
        offsets = torch.arange(0, rows, group, device=input_ids.device).unsqueeze(-1)
        sources = (local_sources + offsets).reshape(rows)
        reorder = not torch.equal(sources, torch.arange(rows, device=input_ids.device))
        for stream in self._streams:
            if reorder:
                stream.reorder(sources)
            stream.crop(seen_length - keep)
        self._seen_ids.clear()
        self._seen_ids.append(input_ids)
        return input_ids[:, keep:]

    # ------------------------------------------------------------------------------------------- step
    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.alpha.any():
            return scores
        new_tokens = self._synchronise(input_ids)
        if new_tokens is None:
            self._start(input_ids)
            new_tokens = input_ids[:, :0]
        vocab = self._resolve_shared_vocab(scores.shape[-1])
        self._preferences.apply()
        reward_log_probs = [shared_log_probs(stream.feed(new_tokens), vocab) for stream in self._streams]
        return combine(scores, reward_log_probs, self._row_weights, vocab)

    def _resolve_shared_vocab(self, base_width: int) -> int:
        """The number of leading ids the models share; checked once per base logit width."""
        if self._vocab_for_base_width is None or self._vocab_for_base_width[0] != base_width:
            self._vocab_for_base_width = (base_width, self._check_shared_vocab(base_width))
        return self._vocab_for_base_width[1]

    def _check_shared_vocab(self, base_width: int) -> int:
        if self.shared_vocab_size is not None:
            if base_width < self.shared_vocab_size:
                raise ValueError(
                    f"The base model scores {base_width} tokens, fewer than the {self.shared_vocab_size} tokens of the "
                    "tokenizer; base and reward models must share the tokenizer."
                )
            if base_width > self.shared_vocab_size and not self._vocab_from_tokenizer:
                # Only the base tokenizer says whether ids past the reward model's recorded vocabulary are padded
                # rows or real tokens of the base (its end-of-turn token, say), which must not be banned.
                raise ValueError(
                    f"The base model scores {base_width} tokens but the reward model's saved metadata records a "
                    f"tokenizer of {self.shared_vocab_size}; guiding would ban the base's ids {self.shared_vocab_size}"
                    f"..{base_width - 1}, which may be real tokens. Pass the base model's tokenizer as `tokenizer=`: "
                    "the processor then checks that it is the reward model's and bans only ids beyond it."
                )
            return self.shared_vocab_size
        smallest = min(self._reward_widths)
        if smallest < base_width:
            raise ValueError(
                f"A reward model has {smallest} output rows but the base model scores {base_width} tokens. If the base "
                "only pads its embedding matrix, pass `tokenizer=` (the base tokenizer) so the shared vocabulary is "
                "known; otherwise the reward model cannot score every token and is refused."
            )
        return base_width

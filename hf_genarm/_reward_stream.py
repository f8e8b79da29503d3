"""One reward model's incremental forward pass during generation, with its own cache.

The stream holds the reward model's view of every row: its prompt (the base prompt, or the reward
model's own prompt) followed by the tokens generated so far. Each step feeds only the new tokens.

Rows can be reordered (beam search) and the last tokens taken back (assisted decoding). The cache is put in
the mode transformers uses before assisted decoding (`activate_past_recording`), so sliding-window and
convolutional layers keep what a rollback needs. A state that cannot be rolled back or reordered in place (the
recurrent state of a state-space layer, or a state the model keeps on its own modules, as RecurrentGemma does)
is rebuilt instead: the next step feeds the kept rows again from their first token, in one forward.
"""

from __future__ import annotations

import contextlib

import torch
import transformers
from transformers import DynamicCache
from transformers.cache_utils import CacheLayerMixin, LinearAttentionCacheLayerMixin
from transformers.utils import logging

from ._growing_cache import GrowingBuffer, growing_dynamic_cache
from .model_caller import ModelCaller
from .modeling import eval_mode, modules_in_training_mode, positions_from_attention_mask

logger = logging.get_logger(__name__)


def _holds_state(layer) -> bool:
    """Whether a cache layer holds the state of what was fed (after a forward)."""
    if isinstance(layer, LinearAttentionCacheLayerMixin):
        return any(layer.is_conv_states_initialized.values()) or any(layer.is_recurrent_states_initialized.values())
    return bool(getattr(layer, "is_initialized", True))


TRANSFORMERS_VERSION = tuple(int(part) for part in transformers.__version__.split(".")[:2])
"""The installed transformers release as (major, minor), read once at import."""

RECURRENT_GEMMA_MIN_TRANSFORMERS = (5, 23)
"""RecurrentGemma keeps its recurrent state on its modules; before transformers 5.23 (its layer types then named
`recurrent` / `attention`) the stream cannot tell, and guided scores drift from a full forward (`_compat.py`)."""


def _check_recurrent_gemma_support(config, name: str) -> None:
    if getattr(config, "model_type", None) != "recurrent_gemma":
        return
    if TRANSFORMERS_VERSION < RECURRENT_GEMMA_MIN_TRANSFORMERS:
        raise ValueError(
            f"{name} is a RecurrentGemma model, which GenARM guides exactly only with transformers >= 5.23 "
            f"(installed: {transformers.__version__}; before 5.23 its recurrent state is not where the reward "
            "model's cache can keep it in step with the rows). Upgrade: pip install 'transformers>=5.23'."
        )


class RewardModelStream(ModelCaller):
    """Feeds one reward model the rows of a generation step by step and returns its next-token logits.

    Interface (used by `GenARMLogitsProcessor`): `start` a generation on a prompt, then each step `feed` the
    tokens generated since the last call; between calls, `reorder` rows or `crop` the last tokens.

    Args:
        model (`torch.nn.Module`): A causal LM, PEFT model or `AutoregressiveRewardModel`.
        prompt_ids (`torch.LongTensor` or `None`): The reward model's own prompt, one row per prompt.
        prompt_mask (`torch.Tensor` or `None`): Its (left-padding) attention mask.
        name (`str`, *optional*): How errors name the model, e.g. "`reward_models[0]`".

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> stream = RewardModelStream(make_tiny_causal_lm(), None, None)
    >>> stream.start(torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long), rows=1)
    >>> stream.feed(torch.empty(1, 0, dtype=torch.long)).shape
    torch.Size([1, 400])
    >>> stream.feed(torch.tensor([[8]])).shape
    torch.Size([1, 400])
    ```
    """

    def __init__(
        self,
        model: torch.nn.Module,
        prompt_ids: torch.LongTensor | None,
        prompt_mask: torch.Tensor | None,
        name: str = "the reward model",
    ):
        super().__init__(model)
        self.name = name
        _check_recurrent_gemma_support(self._config, name)
        self.own_prompt_ids = prompt_ids
        self.own_prompt_mask = prompt_mask
        # A model made only of state-space / linear-attention layers takes a mask of the fed tokens only
        # (transformers drops it after prefill); every other model takes the mask of the whole row so far.
        # A hybrid layer (FalconH1, Zamba2) is a linear-attention layer that also holds attention keys and
        # values (a `CacheLayerMixin`): its attention needs the whole row's mask, or it attends to padding.
        layers = DynamicCache(config=self._config).layers
        self._mask_of_fed_tokens_only = bool(layers) and all(
            isinstance(layer, LinearAttentionCacheLayerMixin) and not isinstance(layer, CacheLayerMixin)
            for layer in layers
        )
        self._windowed_cache = any(hasattr(layer, "activate_past_recording") for layer in layers)
        self._state_on_modules = False
        self.release()

    def release(self) -> None:
        """Drop the cache and per-row state."""
        self.cache: DynamicCache | None = None
        self.prompt_ids: torch.LongTensor | None = None
        self.prompt_mask: torch.Tensor | None = None
        # Generated ids and the cached rows' attention mask grow into preallocated room, and each row's next
        # position is kept as a running count: a step copies and sums nothing that grows with the length.
        self._generated = GrowingBuffer(dim=1)
        self._attention_mask = GrowingBuffer(dim=1)
        self._next_positions: torch.LongTensor | None = None
        self._rebuild = True
        self._fed_since_crop = 0
        self._training_modules: list[torch.nn.Module] = []

    def start(self, prompt_ids: torch.LongTensor, prompt_mask: torch.Tensor, rows: int) -> None:
        """Begin a new generation of `rows` rows on the base prompt (or on this model's own prompt)."""
        if self.own_prompt_ids is not None:
            prompt_ids, prompt_mask = self.own_prompt_ids, self.own_prompt_mask
        repeat = rows // prompt_ids.shape[0]
        self.release()
        self.prompt_ids = prompt_ids.to(self.device).repeat_interleave(repeat, dim=0)
        self.prompt_mask = prompt_mask.to(self.device, torch.long).repeat_interleave(repeat, dim=0)
        self._generated.append(self.prompt_ids[:, :0])
        # While no row holds padding, the model gets no mask (its causal default is the same thing) and
        # positions are a plain range: this skips the mask bookkeeping of every layer at each step.
        self._unpadded = bool(self.prompt_mask.all())
        self._longest_prompt = int(self.prompt_mask.sum(-1).max())
        self._check_positions(0)
        self._training_modules = modules_in_training_mode(self.model)
        if self._training_modules:
            logger.warning_once(
                f"{self.name} is in training mode; GenARM runs its forward passes in eval mode (dropout off) and "
                "leaves the mode as it was. Call `.eval()` on it to silence this warning."
            )

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held (beam search reshuffles rows each step)."""
        row_sources = row_sources.to(self.device)
        self.prompt_ids = self.prompt_ids.index_select(0, row_sources)
        self.prompt_mask = self.prompt_mask.index_select(0, row_sources)
        self._generated.select_rows(row_sources)
        if self._state_on_modules:
            self._rebuild = True
        elif not self._rebuild:
            self.cache.reorder_cache(row_sources)
            self._attention_mask.select_rows(row_sources)
            self._next_positions = self._next_positions.index_select(0, row_sources)

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last `tokens_to_remove` generated tokens (assisted decoding's rejected candidates)."""
        if tokens_to_remove <= 0:
            return
        self._generated.crop(tokens_to_remove)
        if self._rebuild:
            return
        # Sliding-window and convolutional layers keep, past their window, only what was fed since the last crop.
        beyond_record = self._windowed_cache and tokens_to_remove > self._fed_since_crop
        if self._state_on_modules or beyond_record or not self.cache.is_croppable:
            self._rebuild = True
        else:
            self.cache.crop(-tokens_to_remove)
            self._attention_mask.crop(tokens_to_remove)
            # Generated tokens are all attended: each row's position moves back by the same count.
            self._next_positions = self._next_positions - tokens_to_remove
            self._fed_since_crop = 0

    def check_room(self, new_tokens: int) -> None:
        """Refuse, before any forward, a generation of `new_tokens` tokens that would pass the position limit."""
        self._check_positions(new_tokens, planned=True)

    def _check_positions(self, generated: int, planned: bool = False) -> None:
        needed = self._longest_prompt + generated
        if self.position_limit is not None and needed > self.position_limit:
            if generated == 0:
                where = "the prompt alone"
            elif planned:
                where = f"the prompt and max_new_tokens={generated}"
            else:
                where = f"the prompt and {generated} generated tokens"
            raise ValueError(
                f"{self.name} reads at most {self.position_limit} positions (its config's position limit), but "
                f"{where} need {needed}. Shorten the prompt or `max_new_tokens`, or use a reward model built for "
                "longer sequences."
            )

    def feed(self, new_ids: torch.LongTensor) -> torch.Tensor:
        """Append the generated tokens `new_ids` to every row and return the float32 logits of the next token."""
        new_ids = new_ids.to(self.device)
        generated = self._generated.append(new_ids)
        self._check_positions(generated.shape[1])
        rebuilding = self._rebuild
        if rebuilding:
            # From the first token: a new generation, or a state that could not follow a reorder or a crop.
            self.cache = growing_dynamic_cache(self._config)
            self.cache.activate_past_recording()
            fed_ids = torch.cat([self.prompt_ids, generated], dim=1)
            self._attention_mask.clear()
            mask = self._attention_mask.append(torch.cat([self.prompt_mask, torch.ones_like(generated)], dim=1))
            positions = positions_from_attention_mask(mask)
            self._next_positions = positions[:, -1] + 1
            self._rebuild = False
            self._fed_since_crop = 0
        else:
            fed_ids = new_ids
            mask = self._attention_mask.append(torch.ones_like(new_ids))
            # New tokens are attended: their positions continue each row's count, no cumsum over the whole mask.
            steps = torch.arange(new_ids.shape[1], device=self.device)
            positions = self._next_positions.unsqueeze(-1) + steps
            self._next_positions = self._next_positions + new_ids.shape[1]
            self._fed_since_crop += new_ids.shape[1]
        total, fed = mask.shape[1], fed_ids.shape[1]
        kwargs = {self._cache_argument: self.cache}
        if self._supports_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        if self._unpadded:
            kwargs["attention_mask"] = None
            kwargs["position_ids"] = torch.arange(total - fed, total, device=self.device).expand(fed_ids.shape[0], -1)
        else:
            kwargs["attention_mask"] = mask[:, -fed:] if self._mask_of_fed_tokens_only else mask
            kwargs["position_ids"] = positions[:, -fed:]
        with eval_mode(self._training_modules) if self._training_modules else contextlib.nullcontext():
            outputs = self.model(input_ids=fed_ids, use_cache=True, **kwargs)
        if rebuilding and any(not _holds_state(layer) for layer in self.cache.layers):
            # The forward left a layer of the cache empty: the model keeps that state on its own modules
            # (RecurrentGemma), where the cache can neither reorder nor crop it.
            self._state_on_modules = True
        return outputs.logits[:, -1].float()

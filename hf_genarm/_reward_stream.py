"""One reward model's incremental forward pass during generation, with its own KV cache.

The stream holds the reward model's view of every row: its prompt (the base prompt, or the reward
model's own prompt) followed by the tokens generated so far. Each step feeds only the new tokens.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

from ._growing_cache import growing_dynamic_cache
from .modeling import AutoregressiveRewardModel, positions_from_attention_mask


def _innermost_transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """Unwrap `AutoregressiveRewardModel` and PEFT wrappers down to the transformers model."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, AutoregressiveRewardModel):
            model = model.model
        elif callable(getattr(model, "get_base_model", None)):
            model = model.get_base_model()
    return model


class RewardModelStream:
    """Incremental next-token log-probabilities of one reward model over a batch of rows."""

    def __init__(self, model: torch.nn.Module, prompt_ids: torch.LongTensor | None, prompt_mask: torch.Tensor | None):
        self.model = model
        self.own_prompt_ids = prompt_ids
        self.own_prompt_mask = prompt_mask
        inner = _innermost_transformers_model(model)
        parameters = inspect.signature(inner.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._supports_logits_to_keep = "logits_to_keep" in parameters
        self._config = inner.config
        self.device = next(model.parameters()).device
        self.cache: DynamicCache | None = None
        self.attention_mask: torch.Tensor | None = None
        self.prompt_width = 0
        # While no row holds padding, the model gets no mask (its causal default is the same thing) and
        # positions are a plain range: this skips the mask bookkeeping of every layer at each step.
        self._unpadded = True

    def start(
        self, prompt_ids: torch.LongTensor, prompt_mask: torch.Tensor, rows: int
    ) -> tuple[torch.LongTensor, torch.Tensor]:
        """Begin a new generation; return the reward model's prompt ids and mask, which the first step feeds."""
        if self.own_prompt_ids is not None:
            prompt_ids, prompt_mask = self.own_prompt_ids, self.own_prompt_mask
            prompt_ids = prompt_ids.repeat_interleave(rows // prompt_ids.shape[0], dim=0)
            prompt_mask = prompt_mask.repeat_interleave(rows // prompt_mask.shape[0], dim=0)
        # Full-attention layers write into preallocated buffers: no copy of the whole cache at every step.
        self.cache = growing_dynamic_cache(self._config)
        self.prompt_width = prompt_ids.shape[1]
        self.attention_mask = prompt_mask.to(self.device, torch.long)[:, :0]
        self._unpadded = True
        return prompt_ids.to(self.device), prompt_mask

    def release(self) -> None:
        """Drop the cache and per-row state."""
        self.cache = None
        self.attention_mask = None

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held (beam search reshuffles rows each step)."""
        row_sources = row_sources.to(self.device)
        self.cache.reorder_cache(row_sources)
        self.attention_mask = self.attention_mask.index_select(0, row_sources)

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last `tokens_to_remove` tokens (assisted decoding's rejected candidates)."""
        if tokens_to_remove > 0:
            self.cache.crop(-tokens_to_remove)
            self.attention_mask = self.attention_mask[:, :-tokens_to_remove]

    def feed(self, new_ids: torch.LongTensor, new_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Append `new_ids` to every row and return the float32 logits of the next token."""
        new_ids = new_ids.to(self.device)
        if new_mask is None:
            new_mask = torch.ones_like(new_ids)
        else:
            new_mask = new_mask.to(self.device, torch.long)
            self._unpadded = self._unpadded and bool(new_mask.all())
        self.attention_mask = torch.cat([self.attention_mask, new_mask], dim=1)
        total, fed = self.attention_mask.shape[1], new_ids.shape[1]
        kwargs = {self._cache_argument: self.cache}
        if self._supports_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        if self._unpadded:
            kwargs["attention_mask"] = None
            kwargs["position_ids"] = torch.arange(total - fed, total, device=self.device).expand(new_ids.shape[0], -1)
        else:
            kwargs["attention_mask"] = self.attention_mask
            kwargs["position_ids"] = positions_from_attention_mask(self.attention_mask)[:, -fed:]
        outputs = self.model(input_ids=new_ids, use_cache=True, **kwargs)
        return outputs.logits[:, -1].float()

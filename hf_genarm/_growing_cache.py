"""A KV cache whose full-attention layers write into preallocated buffers instead of concatenating.

`DynamicLayer.update` copies the whole cache with `torch.cat` at every decoding step, which makes a step's
cost grow with the length decoded so far. `GrowingCacheLayer` keeps each layer's keys and values in a buffer
with room to spare, writes the new states in place and hands the attention a view of the filled part; when
the buffer is full it is reallocated with `spare` more positions than needed, so a whole generation copies
the cache once every `spare` steps instead of at every step, and never holds more than `spare` unused
positions. Cropping (assisted decoding) only moves the end of the view; beam reordering and batch selection
copy the buffer.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer


class GrowingCacheLayer(DynamicLayer):
    """One full-attention layer's keys and values in a buffer with spare room, reallocated when full.

    Args:
        spare (`int`, *optional*, defaults to `256`):
            Unused positions allocated beyond the filled ones each time the buffer is (re)allocated.

    Examples:

    ```python
    >>> import torch
    >>> layer = GrowingCacheLayer(spare=8)
    >>> keys, values = layer.update(torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 5, 4))
    >>> keys, values = layer.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))
    >>> layer.get_seq_length(), tuple(keys.shape)
    (6, (1, 2, 6, 4))
    >>> layer.crop(-2)
    >>> layer.get_seq_length()
    4
    ```
    """

    def __init__(self, spare: int = 256) -> None:
        super().__init__()
        if spare < 1:
            raise ValueError(f"`spare` must be a positive number of positions, got {spare}.")
        self.spare = spare
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._length = 0
        empty = slice(0, 0)
        self._replace_buffers(key_states[..., empty, :], value_states[..., empty, :], key_states.shape[-2] + self.spare)
        self.is_initialized = True

    def _refresh_views(self) -> None:
        self.keys = self._key_buffer[..., : self._length, :]
        self.values = self._value_buffer[..., : self._length, :]

    def _replace_buffers(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        """Hold `keys` / `values` (the filled part) in new buffers of `capacity` positions."""
        self._key_buffer = keys.new_empty((*keys.shape[:-2], capacity, keys.shape[-1]))
        self._value_buffer = values.new_empty((*values.shape[:-2], capacity, values.shape[-1]))
        self._key_buffer[..., : self._length, :] = keys
        self._value_buffer[..., : self._length, :] = values
        self._refresh_views()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new states after the cached ones; return the keys and values of every position so far."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        capacity = self._key_buffer.shape[-2]
        if end > capacity:
            self._replace_buffers(self.keys, self.values, end + self.spare)
        self._key_buffer[..., self._length : end, :] = key_states
        self._value_buffer[..., self._length : end, :] = value_states
        self._length = end
        self._refresh_views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length if self.is_initialized else 0

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        self._length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last `-tokens_to_remove` positions (a negative count, as `DynamicLayer.crop` takes)."""
        if tokens_to_remove > 0:
            raise ValueError(f"`tokens_to_remove` must be negative (positions to drop), got {tokens_to_remove}.")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        self._length = max(0, self._length + tokens_to_remove)
        self._refresh_views()

    def _select_rows(self, rows: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            rows = rows.to(self._key_buffer.device)
            self._key_buffer = self._key_buffer.index_select(0, rows)
            self._value_buffer = self._value_buffer.index_select(0, rows)
            self._refresh_views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._select_rows(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self._key_buffer.shape[0], device=self._key_buffer.device)[indices]
            self._select_rows(rows)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self._key_buffer.shape[0], device=self._key_buffer.device)
            self._select_rows(rows.repeat_interleave(repeats))


def growing_dynamic_cache(config: PretrainedConfig, spare: int = 256) -> DynamicCache:
    """A `DynamicCache` for `config` whose plain full-attention layers are `GrowingCacheLayer`s.

    Sliding-window and other special layers stay as transformers builds them (and a config that does not say
    its layers gives transformers' own lazily built cache).

    Args:
        config (`PretrainedConfig`): The model's config.
        spare (`int`, *optional*, defaults to `256`): Spare positions of each layer's buffer (see `GrowingCacheLayer`).

    Returns:
        `DynamicCache`: a cache to pass to the model's forward.

    Examples:

    ```python
    >>> from hf_genarm._growing_cache import growing_dynamic_cache
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> cache = growing_dynamic_cache(make_tiny_causal_lm().config)
    >>> type(cache.layers[0]).__name__
    'GrowingCacheLayer'
    ```
    """
    cache = DynamicCache(config=config)
    cache.layers = [GrowingCacheLayer(spare) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache

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


class GrowingBuffer:
    """A tensor that grows along one dimension into preallocated room, so appending does not copy what it holds.

    `append` writes the new slice after the filled part and returns a view of everything so far; when the room is
    used up the buffer is reallocated with `spare` more positions than needed. `crop` only moves the end; selecting
    rows copies. The reward-model streams keep their generated ids and attention masks in these, and each
    `GrowingCacheLayer` its keys and values, so a decoding step copies nothing that grows with the length.

    Args:
        dim (`int`): The dimension that grows (negative counts from the end).
        spare (`int`, *optional*, defaults to `256`): Unused positions allocated beyond the filled ones each time.

    Examples:

    ```python
    >>> import torch
    >>> buffer = GrowingBuffer(dim=1, spare=4)
    >>> buffer.append(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    >>> buffer.append(torch.zeros(2, 1)).tolist()
    [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
    >>> buffer.crop(2)
    >>> buffer.length
    2
    ```
    """

    def __init__(self, dim: int, spare: int = 256) -> None:
        if spare < 1:
            raise ValueError(f"`spare` must be a positive number of positions, got {spare}.")
        self.dim = dim
        self.spare = spare
        self.clear()

    def clear(self) -> None:
        """Drop the storage."""
        self._storage: torch.Tensor | None = None
        self.length = 0
        self.filled: torch.Tensor | None = None

    def _slice(self, start: int, end: int) -> tuple:
        dim = self.dim % self._storage.dim()
        return (slice(None),) * dim + (slice(start, end),)

    def append(self, values: torch.Tensor) -> torch.Tensor:
        """Write `values` after the filled part; return a view of every position so far."""
        end = self.length + values.shape[self.dim]
        if self._storage is None or end > self._storage.shape[self.dim]:
            shape = list(values.shape)
            shape[self.dim] = end + self.spare
            storage = values.new_empty(shape)
            if self._storage is not None:
                storage[self._slice(0, self.length)] = self.filled
            self._storage = storage
        self._storage[self._slice(self.length, end)] = values
        self.length = end
        self.filled = self._storage[self._slice(0, end)]
        return self.filled

    def crop(self, positions: int) -> None:
        """Forget the last `positions` positions (no copy)."""
        if self._storage is None or positions <= 0:
            return
        self.length = max(0, self.length - positions)
        self.filled = self._storage[self._slice(0, self.length)]

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep rows `rows` of dimension 0, in that order (a copy, as beam reordering needs)."""
        if self._storage is not None:
            self._storage = self._storage.index_select(0, rows.to(self._storage.device))
            self.filled = self._storage[self._slice(0, self.length)]


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
        self._keys = GrowingBuffer(dim=-2, spare=spare)
        self._values = GrowingBuffer(dim=-2, spare=spare)
        self.spare = spare

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys.clear()
        self._values.clear()
        self.is_initialized = True

    def _refresh_views(self) -> None:
        # `keys` / `values` are what transformers reads (shapes, dtype, device); they view the filled part.
        self.keys, self.values = self._keys.filled, self._values.filled

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new states after the cached ones; return the keys and values of every position so far."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._keys.append(key_states)
        self._values.append(value_states)
        self._refresh_views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._keys.length if self.is_initialized else 0

    def reset(self) -> None:
        self._keys.clear()
        self._values.clear()
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last `-tokens_to_remove` positions (a negative count, as `DynamicLayer.crop` takes)."""
        if tokens_to_remove > 0:
            raise ValueError(f"`tokens_to_remove` must be negative (positions to drop), got {tokens_to_remove}.")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        self._keys.crop(-tokens_to_remove)
        self._values.crop(-tokens_to_remove)
        self._refresh_views()

    def _select_rows(self, rows: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._keys.select_rows(rows)
            self._values.select_rows(rows)
            self._refresh_views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._select_rows(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self.keys.shape[0], device=self.keys.device)[indices]
            self._select_rows(rows)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self.keys.shape[0], device=self.keys.device)
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

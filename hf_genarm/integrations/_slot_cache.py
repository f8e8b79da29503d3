"""A reward model's KV cache for many independent requests, one buffer row per request.

vLLM adds and removes requests at every step, each at its own length. Requests live in the rows `0 .. n-1` of
preallocated per-layer buffers of shape `(rows, kv_heads, length, head_dim)`, each row left-aligned (token `t` of a
request at column `t`). A forward pass writes every row's new keys at that row's own columns and attends through
an explicit 4-D mask, so one batched call serves requests of any lengths; a finished request's row is refilled by
moving the last row into it, so the live rows stay a prefix and decoding reads them as a view, without a copy.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

_MIN_ROWS = 8
_MIN_LENGTH = 64


class SlotKVCache(Cache):
    """Per-request KV rows for a transformers causal LM, written at per-row positions.

    Call `plan()` before each forward pass; the model's attention layers then call `update()` once per layer.
    """

    def __init__(self) -> None:
        super().__init__(layers=[])
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.row_capacity = 0
        self.length_capacity = 0
        self._rows: torch.LongTensor | None = None
        self._write_positions: torch.LongTensor | None = None
        self._kv_length = 0

    def reserve(self, rows: int, length: int) -> None:
        """Make room for `rows` rows of `length` columns, growing geometrically (existing rows are kept)."""
        if rows <= self.row_capacity and length <= self.length_capacity:
            return
        new_rows = max(rows, self.row_capacity, _MIN_ROWS)
        new_length = max(length, self.length_capacity, _MIN_LENGTH)
        if rows > self.row_capacity:
            new_rows = max(new_rows, 2 * self.row_capacity)
        if length > self.length_capacity:
            new_length = max(new_length, 2 * self.length_capacity)
        for buffers in (self.keys, self.values):
            for index, old in enumerate(buffers):
                grown = old.new_zeros(new_rows, old.shape[1], new_length, old.shape[3])
                grown[: old.shape[0], :, : old.shape[2]] = old
                buffers[index] = grown
        self.row_capacity, self.length_capacity = new_rows, new_length

    def plan(self, rows: torch.LongTensor | None, write_positions: torch.LongTensor, kv_length: int) -> None:
        """Set where the next forward pass writes and what it reads.

        Args:
            rows: Buffer rows of the batch, in batch order; `None` for the rows `0 .. batch-1` (read as a view).
            write_positions: `(batch, new_tokens)` column of each new token in its row.
            kv_length: Columns the attention reads (the 4-D mask hides each row's columns beyond its length).
        """
        self._rows = rows
        self._write_positions = write_positions
        self._kv_length = kv_length

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.keys):
            shape = (self.row_capacity, key_states.shape[1], self.length_capacity, key_states.shape[3])
            self.keys.append(key_states.new_zeros(shape))
            self.values.append(value_states.new_zeros(shape))
        batch = key_states.shape[0]
        rows = self._rows if self._rows is not None else torch.arange(batch, device=key_states.device)
        outputs = []
        for buffer, states in ((self.keys[layer_idx], key_states), (self.values[layer_idx], value_states)):
            buffer[rows.unsqueeze(-1), :, self._write_positions] = states.transpose(1, 2).to(buffer.dtype)
            if self._rows is None:
                outputs.append(buffer[:batch, :, : self._kv_length])
            else:
                outputs.append(buffer[:, :, : self._kv_length].index_select(0, rows))
        return outputs[0], outputs[1]

    def move_row(self, source: int, destination: int) -> None:
        """Copy row `source` over row `destination` (the request in `source` now lives in `destination`)."""
        for buffer in (*self.keys, *self.values):
            buffer[destination] = buffer[source]

    def release(self) -> None:
        """Free every buffer; the next forward pass allocates afresh."""
        self.keys, self.values = [], []
        self.row_capacity = self.length_capacity = 0

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._kv_length


def slot_attention_mask(
    start_positions: torch.LongTensor, new_tokens: int, kv_length: int, dtype: torch.dtype
) -> torch.Tensor:
    """Additive `(batch, 1, new_tokens, kv_length)` mask: query `j` of row `i` sees columns `<= start_i + j`.

    Columns past a row's own tokens hold stale keys of earlier occupants or padding; the mask hides them. An
    additive mask (not a boolean one) works with every attention implementation, eager included.
    """
    query_positions = start_positions.unsqueeze(-1) + torch.arange(new_tokens, device=start_positions.device)
    columns = torch.arange(kv_length, device=start_positions.device)
    visible = columns.view(1, 1, -1) <= query_positions.unsqueeze(-1)
    mask = torch.zeros(visible.shape, dtype=dtype, device=start_positions.device)
    mask.masked_fill_(~visible, torch.finfo(dtype).min)
    return mask.unsqueeze(1)

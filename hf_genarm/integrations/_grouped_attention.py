"""One-token attention for grouped-query models that reads the cached key/value heads as they are.

A grouped-query model (Llama 3, Qwen2, Mistral, ...) has fewer key/value heads than query heads. transformers'
`sdpa` attention before 5.20 copies every cached key and value head once per query head that shares it
(`repeat_kv`) whenever a mask is given on CPU or CUDA. A reward model decoding one token for many slot-cache rows
pays that copy of its whole KV cache in every layer at every step: in `benchmarks/bench_vllm.py` it was 60% of
the reward model's time. With one new token the copy is not needed: the query heads that share a key/value head
are laid out as that head's queries (`(batch, kv_heads, group, head_dim)`) and attend in one call, against the
mask broadcast over them. transformers 5.20+ does the same inside `sdpa`; this function makes it independent of
the installed version.

Registered in transformers' `AttentionInterface` (with `sdpa`'s mask builder) as `GROUPED_DECODE_ATTENTION`, so a
model switched to it works everywhere a `sdpa` model does; anything else than one new token
with a head-independent mask (prefill, per-head masks, soft-capping, attention sinks) goes to transformers' own
`sdpa` function unchanged.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GROUPED_DECODE_ATTENTION = "hf_genarm_grouped_decode"

# Keyword arguments whose meaning the grouped call would drop; with any of them set, `sdpa` runs instead.
_FEATURES_LEFT_TO_SDPA = ("softcap", "s_aux", "sinks", "sliding_window", "position_bias")


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention of `(batch, heads, 1, head_dim)` queries over `(batch, kv_heads, length, head_dim)` keys.

    Args:
        module (`torch.nn.Module`): The attention layer; its `num_key_value_groups` is the number of query heads
            per key/value head.
        query (`torch.Tensor`): `(batch, heads, new_tokens, head_dim)` queries.
        key (`torch.Tensor`): `(batch, kv_heads, length, head_dim)` keys, as the cache returns them.
        value (`torch.Tensor`): `(batch, kv_heads, length, head_dim)` values.
        attention_mask (`torch.Tensor`, *optional*): Additive or boolean `(batch, 1, new_tokens, length)` mask.
        dropout (`float`, *optional*, defaults to `0.0`): Attention dropout (training only).
        scaling (`float`, *optional*): Softmax scale; `head_dim ** -0.5` when not given.

    Returns:
        `tuple[torch.Tensor, None]`: the `(batch, new_tokens, heads, head_dim)` output and no attention weights,
        the layout of transformers' attention functions.
    """
    groups = getattr(module, "num_key_value_groups", 1)
    one_token = query.shape[2] == 1
    shared_mask = attention_mask is None or attention_mask.shape[1] == 1
    plain = all(kwargs.get(name) is None for name in _FEATURES_LEFT_TO_SDPA)
    if groups == 1 or not (one_token and shared_mask and plain) or (dropout and module.training):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    batch, heads, _, head_dim = query.shape
    grouped_queries = query.reshape(batch, heads // groups, groups, head_dim)
    output = torch.nn.functional.scaled_dot_product_attention(
        grouped_queries, key, value, attn_mask=attention_mask, scale=scaling
    )
    return output.reshape(batch, 1, heads, value.shape[-1]), None


AttentionInterface.register(GROUPED_DECODE_ATTENTION, grouped_decode_attention)
# It takes the masks `sdpa` takes; without a registered mask builder, transformers would build no mask at all.
AttentionMaskInterface.register(GROUPED_DECODE_ATTENTION, sdpa_mask)

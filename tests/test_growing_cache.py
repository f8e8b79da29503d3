"""The reward models' KV cache: preallocated buffers behave exactly like transformers' DynamicLayer."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from hf_genarm._growing_cache import GrowingBuffer, GrowingCacheLayer, growing_dynamic_cache
from hf_genarm.model_caller import cache_argument
from hf_genarm.modeling import positions_from_attention_mask
from hf_genarm.testing import make_tiny_causal_lm


def states(rows, length, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, length, 4, generator=generator), torch.randn(rows, 2, length, 4, generator=generator)


def assert_same(growing, reference):
    assert growing.get_seq_length() == reference.get_seq_length()
    assert torch.equal(growing.keys, reference.keys)
    assert torch.equal(growing.values, reference.values)


def test_every_operation_matches_dynamic_layer():
    growing, reference = GrowingCacheLayer(spare=3), DynamicLayer()
    for layer in (growing, reference):
        layer.update(*states(4, 5, seed=0))
    assert_same(growing, reference)
    operations = [
        lambda layer: layer.update(*states(4, 1, seed=1)),
        lambda layer: layer.update(*states(4, 4, seed=2)),  # beyond the spare room: the buffer is reallocated
        lambda layer: layer.crop(-3),
        lambda layer: layer.update(*states(4, 2, seed=3)),
        lambda layer: layer.reorder_cache(torch.tensor([2, 2, 0, 1])),
        lambda layer: layer.update(*states(4, 5, seed=4)),
        lambda layer: layer.batch_select_indices(torch.tensor([True, False, True, True])),
        lambda layer: layer.batch_repeat_interleave(2),
        lambda layer: layer.update(*states(6, 1, seed=5)),
    ]
    for operation in operations:
        for layer in (growing, reference):
            operation(layer)
        assert_same(growing, reference)
    keys, values = growing.update(*states(6, 1, seed=6))
    assert keys.shape == (6, 2, growing.get_seq_length(), 4) and values.shape == keys.shape


def test_states_are_written_in_place_until_the_buffer_is_full():
    layer = GrowingCacheLayer(spare=4)
    layer.update(*states(1, 2, seed=0))
    storage = layer.keys.untyped_storage()
    for step in range(4):
        layer.update(*states(1, 1, seed=step + 1))
        assert layer.keys.untyped_storage().data_ptr() == storage.data_ptr()
    layer.update(*states(1, 1, seed=9))
    grown = layer.keys.untyped_storage()
    assert grown.data_ptr() != storage.data_ptr() and grown.nbytes() == (7 + 4) * 2 * 4 * layer.keys.element_size()


def test_growing_buffer_appends_crops_and_selects_rows_like_concatenation():
    buffer, reference = GrowingBuffer(dim=1, spare=2), torch.zeros(3, 0)
    for step in range(7):
        piece = torch.randn(3, step % 3 + 1)
        reference = torch.cat([reference, piece], dim=1)
        assert torch.equal(buffer.append(piece), reference)
        if step == 3:
            buffer.crop(2)
            reference = reference[:, :-2]
        if step == 5:
            rows = torch.tensor([2, 0, 0])
            buffer.select_rows(rows)
            reference = reference[rows]
    assert torch.equal(buffer.filled, reference) and buffer.length == reference.shape[1]


def test_bad_spare_and_positive_crop_are_refused():
    with pytest.raises(ValueError, match="spare"):
        GrowingCacheLayer(spare=0)
    layer = GrowingCacheLayer()
    layer.update(*states(1, 2, seed=0))
    with pytest.raises(ValueError, match="negative"):
        layer.crop(1)


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "qwen2"])
def test_model_decoding_on_the_cache_equals_a_full_forward(architecture):
    model = make_tiny_causal_lm(architecture, seed=0).eval()
    ids = torch.randint(5, 400, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    cache = growing_dynamic_cache(model.config, spare=2)
    assert all(isinstance(layer, GrowingCacheLayer) for layer in cache.layers)
    cached = {cache_argument(model): cache}  # `past_key_values` before transformers 5.2x renamed it `cache`
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_attention_mask(mask)).logits
        model(
            input_ids=ids[:, :4],
            attention_mask=mask[:, :4],
            position_ids=positions_from_attention_mask(mask)[:, :4],
            use_cache=True,
            **cached,
        )
        for end in range(5, 13):
            step = model(
                input_ids=ids[:, end - 1 : end],
                attention_mask=mask[:, :end],
                position_ids=positions_from_attention_mask(mask[:, :end])[:, -1:],
                use_cache=True,
                **cached,
            ).logits[:, -1]
            torch.testing.assert_close(step, full[:, end - 1], atol=1e-5, rtol=0)

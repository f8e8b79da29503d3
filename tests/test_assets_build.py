import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_genarm.assets import default_asset_path
from hf_genarm.assets.build import (
    BASE_QUICK_CONFIG,
    CORPUS_LICENSE,
    END_OF_TEXT,
    build_base,
    load_fortunes,
    pack_fortunes,
)


@pytest.fixture(scope="module")
def quick_base(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("assets") / "base"
    info = build_base(output_dir, BASE_QUICK_CONFIG, show_progress=False)
    return output_dir, info


def test_load_fortunes_splits_are_non_empty_and_disjoint():
    train, held_out = load_fortunes("train"), load_fortunes("held_out")
    assert len(train) > 10_000
    assert 0 < len(held_out) < len(train) / 10
    assert not set(train) & set(held_out)
    assert all(0 < len(fortune) <= 400 and fortune == fortune.strip() for fortune in train + held_out)
    assert any("\n" in fortune for fortune in held_out)


def test_load_fortunes_is_deterministic_and_returns_fresh_lists():
    first = load_fortunes("held_out")
    first.clear()
    assert load_fortunes("held_out") == load_fortunes("held_out") != []


def test_load_fortunes_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_fortunes("validation")


def test_pack_fortunes_starts_rows_with_documents_and_masks_padding():
    input_ids, labels = pack_fortunes([[5, 6], [7], [8, 9, 10]], block_size=8, eos_token_id=0)
    assert input_ids.tolist() == [[0, 5, 6, 0, 0, 7, 0, 0], [0, 8, 9, 10, 0, 0, 0, 0]]
    assert labels.tolist() == [[-100, 5, 6, 0, -100, 7, 0, -100], [-100, 8, 9, 10, 0, -100, -100, -100]]


def test_quick_build_writes_loadable_safetensors_assets(quick_base):
    output_dir, info = quick_base
    assert (output_dir / "model.safetensors").is_file()
    assert not list(output_dir.glob("*.bin"))
    saved_info = json.loads((output_dir / "training_info.json").read_text())
    assert saved_info == info
    assert info["steps"] == BASE_QUICK_CONFIG.max_steps
    assert info["corpus_license"] == CORPUS_LICENSE
    assert 1.0 < info["held_out_perplexity"] < BASE_QUICK_CONFIG.vocab_size


def test_quick_build_tokenizer_round_trips_a_fortune(quick_base):
    output_dir, _ = quick_base
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    fortune = load_fortunes("held_out")[0]
    assert tokenizer.decode(tokenizer(fortune)["input_ids"]) == fortune
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.pad_token == END_OF_TEXT
    assert tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == BASE_QUICK_CONFIG.n_positions


def test_quick_build_model_produces_finite_logits(quick_base):
    output_dir, _ = quick_base
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    input_ids = tokenizer(END_OF_TEXT + load_fortunes("held_out")[1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    assert logits.shape == (1, input_ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    assert model.config.eos_token_id == model.config.pad_token_id == tokenizer.eos_token_id


def test_default_asset_path_names_the_rebuild_command():
    with pytest.raises(FileNotFoundError, match=r"python -m hf_genarm\.assets\.build --stage no_such_stage"):
        default_asset_path("no_such_stage/model.safetensors")
    with pytest.raises(ValueError, match="relative"):
        default_asset_path("../escape")

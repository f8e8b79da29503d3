import dataclasses
import json
import math

import pytest
import torch
from build_demo_assets import (
    ARM_QUICK_CONFIG,
    BASE_QUICK_CONFIG,
    CORPUS_LICENSE,
    END_OF_TEXT,
    PREFERENCES_QUICK_CONFIG,
    REWARD_BACKBONE_QUICK_CONFIG,
    PreferenceBuildConfig,
    _held_out_perplexity,
    _preference_pairs,
    _write_pairs,
    build_arm,
    build_stages,
    fortune_prompts,
    load_fortunes,
    pack_fortunes,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.assets import OBJECTIVES, default_asset_path, preference_pairs_path, read_preference_pairs
from hf_genarm.vocab import tokenizer_fingerprint


@pytest.fixture(scope="module")
def quick_base(quick_assets):
    root, results = quick_assets
    return root / "base", results["base"]


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


def test_held_out_perplexity_equals_each_labelled_token_scored_from_a_full_forward_pass():
    from hf_genarm.testing import make_tiny_causal_lm

    model = make_tiny_causal_lm(seed=1)
    input_ids, labels = pack_fortunes([[5, 6], [7], [8, 9, 10], [11, 12, 13, 14, 15]], block_size=8, eos_token_id=0)
    total_log_prob, count = 0.0, 0
    for row, row_labels in zip(input_ids, labels):
        with torch.no_grad():
            log_probs = torch.log_softmax(model(row[None]).logits[0].float(), dim=-1)
        for column in range(1, len(row)):
            if row_labels[column] != -100:
                total_log_prob += log_probs[column - 1, row_labels[column]].item()
                count += 1
    expected = math.exp(-total_log_prob / count)
    assert _held_out_perplexity(model, input_ids, labels) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_quick_build_writes_loadable_safetensors_assets(quick_base):
    output_dir, info = quick_base
    assert (output_dir / "model.safetensors").is_file()
    assert not list(output_dir.glob("*.bin"))
    saved_info = json.loads((output_dir / "training_info.json").read_text())
    assert saved_info == info
    assert info["steps"] == BASE_QUICK_CONFIG.max_steps
    assert info["corpus_license"] == CORPUS_LICENSE
    assert 1.0 < info["held_out_perplexity"] < BASE_QUICK_CONFIG.vocab_size


@pytest.mark.slow
def test_quick_build_tokenizer_round_trips_a_fortune(quick_base):
    output_dir, _ = quick_base
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    fortune = load_fortunes("held_out")[0]
    assert tokenizer.decode(tokenizer(fortune)["input_ids"]) == fortune
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.pad_token == END_OF_TEXT
    assert tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == BASE_QUICK_CONFIG.n_positions


@pytest.mark.slow
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
    with pytest.raises(FileNotFoundError, match=r"python scripts/build_demo_assets\.py --stage no_such_stage"):
        default_asset_path("no_such_stage/model.safetensors")
    with pytest.raises(ValueError, match="relative"):
        default_asset_path("../escape")


# ------------------------------------------------------------------------------------- reward-model stages
@pytest.mark.slow
def test_quick_build_of_all_stages_writes_a_folder_per_stage(quick_assets):
    root, results = quick_assets
    assert list(results) == ["base", "reward-backbone", "preferences", "arm-sentiment", "arm-topic", "total_seconds"]
    for stage in ("base", "reward-backbone", "preferences", "arm-sentiment", "arm-topic"):
        saved = json.loads((root / stage / "training_info.json").read_text())
        assert saved == results[stage]
        assert saved["total_seconds"] >= 0
    assert results["reward-backbone"]["config"] == dataclasses.asdict(REWARD_BACKBONE_QUICK_CONFIG)


@pytest.mark.slow
def test_reward_backbone_reuses_the_base_tokenizer(quick_assets):
    root, results = quick_assets
    base_tokenizer = AutoTokenizer.from_pretrained(root / "base")
    backbone_tokenizer = AutoTokenizer.from_pretrained(root / "reward-backbone")
    assert tokenizer_fingerprint(backbone_tokenizer) == tokenizer_fingerprint(base_tokenizer)
    config = json.loads((root / "reward-backbone" / "tokenizer_config.json").read_text())
    assert "local_files_only" not in config
    assert results["reward-backbone"]["num_parameters"] < results["base"]["num_parameters"]


@pytest.mark.slow
def test_preference_pairs_are_judged_best_and_worst_continuations(quick_assets):
    root, results = quick_assets
    openings = {
        split: [" ".join(fortune.split()) for fortune in load_fortunes(split)] for split in ("train", "held_out")
    }
    for objective in OBJECTIVES:
        for split in ("train", "held_out"):
            rows = read_preference_pairs(preference_pairs_path(root / "preferences", objective, split))
            assert len(rows) == results["preferences"]["pairs"][objective][split] > 0
            for row in rows:
                assert set(row) == {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}
                assert row["prompt"].startswith(END_OF_TEXT)
                prompt = row["prompt"][len(END_OF_TEXT) :]
                assert any(fortune.startswith(prompt + " ") for fortune in openings[split])
                assert row["chosen"] != row["rejected"] and row["chosen"].strip() and row["rejected"].strip()
                assert row["score_chosen"] >= row["score_rejected"]


@pytest.mark.slow
def test_demo_prompts_are_held_out_and_unused_by_pairs(quick_assets):
    root, _ = quick_assets
    demo = json.loads((root / "preferences" / "demo_prompts.json").read_text())
    assert len(demo["prompts"]) == PREFERENCES_QUICK_CONFIG.num_demo_prompts
    held_out_pairs = read_preference_pairs(preference_pairs_path(root / "preferences", "sentiment", "held_out"))
    paired = {row["prompt"][len(END_OF_TEXT) :] for row in held_out_pairs}
    assert not paired & set(demo["prompts"])
    assert "BSD" in (root / "preferences" / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_reward_models_load_and_guide_the_base(quick_assets, objective):
    root, results = quick_assets
    info = results[f"arm-{objective}"]
    assert info["steps"] == ARM_QUICK_CONFIG.max_steps
    assert 0.0 <= info["held_out_accuracy"] <= 1.0
    assert info["held_out_pairs"] == results["preferences"]["pairs"][objective]["held_out"]
    folder = root / f"arm-{objective}"
    assert (folder / "model.safetensors").is_file() and (folder / "genarm_config.json").is_file()
    assert AutoModelForCausalLM.from_pretrained(folder).num_parameters() == info["num_parameters"]
    reward_model = AutoregressiveRewardModel.from_pretrained(folder)
    assert reward_model.beta_r == ARM_QUICK_CONFIG.beta_r
    assert reward_model.metadata.metrics["eval_preference_accuracy"] == pytest.approx(
        info["held_out_accuracy"], abs=1e-4
    )

    tokenizer = AutoTokenizer.from_pretrained(root / "base")
    base = AutoModelForCausalLM.from_pretrained(root / "base")
    inputs = tokenizer([END_OF_TEXT + "A fortune", END_OF_TEXT + "Never"], return_tensors="pt", padding=True)
    processor = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    output = base.generate(
        **inputs, logits_processor=[processor], max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert output.shape == (2, inputs["input_ids"].shape[1] + 3)


def test_fortune_prompts_take_openings_with_words_to_spare():
    fortunes = ["One two three four five six seven", "Too short to use", "One two three four five six seven"]
    prompts = fortune_prompts(fortunes, count=5, min_words=3, max_words=3)
    assert prompts == ["One two three"]
    assert fortune_prompts(load_fortunes("held_out"), count=3) == fortune_prompts(load_fortunes("held_out"), count=3)


def test_preference_pairs_respect_the_margin_and_skip_empty_and_repeated_continuations():
    arguments = (
        ["a", "b", "c"],
        [[" x", " y", " z"], [" x", " y", " z"], [" x", "  ", " x"]],
        [[0.1, 0.9, 0.7], [0.1, 0.2, 0.15], [0.0, 0.9, 0.5]],
    )

    def pair(chosen, rejected, score_chosen, score_rejected):
        return {
            "prompt": END_OF_TEXT + "a",
            "chosen": chosen,
            "rejected": rejected,
            "score_chosen": score_chosen,
            "score_rejected": score_rejected,
        }

    best_worst = _preference_pairs(*arguments, margin=0.3, bos_token=END_OF_TEXT, pairing="best-worst")
    assert best_worst == [pair(" y", " x", 0.9, 0.1)]
    every_pair = _preference_pairs(*arguments, margin=0.3, bos_token=END_OF_TEXT, pairing="all")
    assert every_pair == [pair(" y", " x", 0.9, 0.1), pair(" z", " x", 0.7, 0.1)]
    assert _preference_pairs(*arguments, margin=0.0, bos_token=END_OF_TEXT)[:3] == [
        pair(" y", " z", 0.9, 0.7),
        pair(" y", " x", 0.9, 0.1),
        pair(" z", " x", 0.7, 0.1),
    ]


def test_preference_config_refuses_an_unknown_pairing():
    with pytest.raises(ValueError, match="pairing"):
        PreferenceBuildConfig(topic_pairing="random")


def test_build_stages_rejects_unknown_stages(tmp_path):
    with pytest.raises(ValueError, match="rewards"):
        build_stages("everything", tmp_path)
    with pytest.raises(ValueError, match="objective"):
        build_arm("humour", tmp_path)


def test_shipped_assets_are_small_and_the_reward_models_beat_chance():
    from hf_genarm.assets import ASSETS_DIR

    total_bytes = sum(
        path.stat().st_size for path in ASSETS_DIR.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    )
    assert total_bytes < 25_000_000
    base_fingerprint = tokenizer_fingerprint(AutoTokenizer.from_pretrained(default_asset_path("base")))
    for objective in OBJECTIVES:
        folder = default_asset_path(f"arm-{objective}")
        info = json.loads((folder / "training_info.json").read_text())
        assert info["held_out_accuracy"] > 0.6
        assert json.loads((folder / "genarm_config.json").read_text())["tokenizer"] == base_fingerprint
        # The card's snippet loads the shipped folder by its path in the repository, not the builder's machine.
        assert f'from_pretrained("hf_genarm/assets/arm-{objective}")' in (folder / "README.md").read_text()
    assert json.loads(default_asset_path("preferences/demo_prompts.json").read_text())["prompts"]


def test_pair_files_are_gzip_without_time_stamp_or_name_and_read_back(tmp_path):
    rows = [
        {"prompt": "<|endoftext|>A", "chosen": " good ☺", "rejected": " bad", "score_chosen": 1, "score_rejected": 0}
    ]
    path = preference_pairs_path(tmp_path, "sentiment", "train")
    _write_pairs(path, rows)
    header = path.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b" and header[3] == 0 and header[4:8] == bytes(4)  # no FNAME flag, mtime 0
    assert read_preference_pairs(path) == rows
    plain = tmp_path / "pairs.jsonl"
    plain.write_text("\n" + json.dumps(rows[0], ensure_ascii=False) + "\n\n", encoding="utf-8")
    assert read_preference_pairs(str(plain)) == rows
    with pytest.raises(ValueError, match="objective"):
        preference_pairs_path(tmp_path, "humour", "train")
    with pytest.raises(ValueError, match="split"):
        preference_pairs_path(tmp_path, "topic", "test")

"""Preference-conditioned ARMs (PARM, PBLoRA): the module, saving, training and guided decoding against brute force."""

import json
import os

import pytest
import torch
from peft import LoraConfig, PeftModel
from test_logits_process import DECODING_MODES, Recorder, brute_force_log_probs, generate, left_padded
from transformers import AutoModelForCausalLM

from hf_genarm import (
    AutoregressiveRewardModel,
    CrossTokenizerGenARMLogitsProcessor,
    GenARMLogitsProcessor,
    PreferenceARMConfig,
    PreferenceARMTrainer,
    PreferenceConditionedARM,
)
from hf_genarm.configuration import GENARM_CONFIG_NAME
from hf_genarm.preference_lora import PreferenceLoraCore, validate_preference
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

ATOL = 1e-5
OBJECTIVES = ["sentiment", "topic"]


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


def make_conditioned_arm(tokenizer, seed=1, architecture="gpt2", target_modules=("c_attn",), base=None):
    """A PARM whose A, B and cores are all random (an untrained core would hide preference bugs)."""
    torch.manual_seed(seed)
    arm = PreferenceConditionedARM(
        make_tiny_causal_lm(architecture, seed=seed) if base is None else base,
        objectives=OBJECTIVES,
        lora_config=LoraConfig(r=6, lora_alpha=6, target_modules=list(target_modules), init_lora_weights=False),
        preference_rank=4,
        tokenizer=tokenizer,
    )
    with torch.no_grad():
        for name, parameter in arm.named_parameters():
            if "core_" in name:
                parameter.normal_(0.0, 1.0)
    return arm.eval()


def logits_at(arm, preference, input_ids):
    arm.set_preference(preference)
    with torch.no_grad():
        return arm(input_ids=input_ids, use_cache=False).logits


# ------------------------------------------------------------------------------------------------ the module
def test_per_row_preferences_equal_each_row_alone(tokenizer):
    arm = make_conditioned_arm(tokenizer)
    input_ids = torch.randint(5, 390, (3, 9))
    preferences = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    batched = logits_at(arm, preferences, input_ids)
    for row, preference in enumerate(preferences):
        alone = logits_at(arm, preference, input_ids[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], alone, atol=ATOL, rtol=0)
    # The preference changes the model, and linearly only in the core: the corners differ.
    assert not torch.allclose(batched[0], logits_at(arm, [0.0, 1.0], input_ids[:1])[0], atol=1e-3)


def test_update_is_b_core_a_with_the_papers_block_core(tokenizer):
    arm = make_conditioned_arm(tokenizer)
    layer = next(module for module in arm.model.modules() if hasattr(module, "lora_A") and "default" in module.lora_A)
    core = layer.lora_A["default"]
    assert isinstance(core, PreferenceLoraCore)
    preference = torch.tensor([0.25, 0.75])
    arm.set_preference(preference)
    x = torch.randn(1, 5, core.in_features)
    full_core = torch.block_diag(
        core.core_shared, torch.einsum("k,kij->ij", preference, core.core_preference)
    )  # C(p) = diag(C_shared, sum_j p_j C_j)
    expected = x @ core.weight.T @ full_core.T
    torch.testing.assert_close(core(x), expected, atol=ATOL, rtol=0)


def test_untrained_adapter_is_the_base_model_at_every_preference(tokenizer):
    base = make_tiny_causal_lm(seed=1).eval()
    input_ids = torch.randint(5, 390, (1, 6))
    with torch.no_grad():
        expected = base(input_ids=input_ids).logits
    arm = PreferenceConditionedARM(
        make_tiny_causal_lm(seed=1), objectives=OBJECTIVES, lora_config=LoraConfig(r=4, target_modules=["c_attn"])
    ).eval()
    for preference in ([1.0, 0.0], [0.4, 0.6]):
        torch.testing.assert_close(logits_at(arm, preference, input_ids), expected, atol=ATOL, rtol=0)


def test_forward_without_a_preference_says_how_to_set_it(tokenizer):
    arm = make_conditioned_arm(tokenizer)
    with pytest.raises(ValueError, match="set_preference"):
        arm(input_ids=torch.tensor([[5, 6, 7]]))
    arm.set_preference(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="holds 2 rows but the forward pass has 3"):
        arm(input_ids=torch.randint(5, 300, (3, 4)))


@pytest.mark.parametrize(
    ("preference", "error", "pattern"),
    [
        ([0.5, 0.6], ValueError, "simplex"),
        ([-0.5, 1.5], ValueError, "simplex"),
        ([1.0], ValueError, "2 objectives"),
        ({"sentiment": 1.0, "style": 0.0}, ValueError, "objectives are"),
        ("sentiment", TypeError, "dict"),
        ([True, False], TypeError, "floats"),
        (torch.ones(1, 1, 2) / 2, ValueError, "1-D"),
        ([float("nan"), 1.0], ValueError, "simplex"),
    ],
)
def test_bad_preferences_are_refused(preference, error, pattern):
    with pytest.raises(error, match=pattern):
        validate_preference(preference, OBJECTIVES)


def test_named_preference_follows_the_models_order():
    assert validate_preference({"topic": 0.9, "sentiment": 0.1}, OBJECTIVES)[0].tolist() == pytest.approx([0.1, 0.9])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"objectives": ["only"]}, "at least two"),
        ({"objectives": ["a", "a"]}, "repeat"),
        ({"objectives": None}, "`objectives` is required"),
        ({"objectives": OBJECTIVES, "lora_config": None}, "lora_config"),
        ({"objectives": OBJECTIVES, "preference_rank": 9}, "between 1 and the LoRA rank"),
    ],
)
def test_bad_construction_is_refused(kwargs, pattern):
    arguments = {"lora_config": LoraConfig(r=4, target_modules=["c_attn"]), **kwargs}
    with pytest.raises(ValueError, match=pattern):
        PreferenceConditionedARM(make_tiny_causal_lm(), **arguments)


def test_merging_is_refused(tokenizer):
    with pytest.raises(ValueError, match="depends on the preference"):
        make_conditioned_arm(tokenizer).merge_adapter()


# ------------------------------------------------------------------------------------------------ saving
def test_save_and_load_round_trip_with_objectives_and_card(tokenizer, tmp_path):
    arm = make_conditioned_arm(tokenizer)
    folder = tmp_path / "parm"
    arm.save_pretrained(folder, tokenizer=tokenizer)
    metadata = json.loads((folder / GENARM_CONFIG_NAME).read_text())
    assert metadata["objectives"] == OBJECTIVES
    assert metadata["preference_conditioning"] == {"method": "pblora", "preference_rank": 4}
    assert sorted(os.listdir(folder)) == sorted(
        ["README.md", "adapter_config.json", "adapter_model.safetensors", GENARM_CONFIG_NAME]
        + [name for name in os.listdir(folder) if name.startswith("tokenizer")]
    )
    card = (folder / "README.md").read_text()
    assert "preference" in card and "sentiment" in card and "topic" in card
    with pytest.raises(ValueError, match=r"PreferenceConditionedARM\.from_pretrained"):
        AutoregressiveRewardModel.from_pretrained(folder, base_model=make_tiny_causal_lm(seed=1))
    loaded = PreferenceConditionedARM.from_pretrained(folder, base_model=make_tiny_causal_lm(seed=1))
    assert loaded.objectives == OBJECTIVES
    input_ids = torch.randint(5, 390, (2, 7))
    preferences = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    torch.testing.assert_close(
        logits_at(loaded, preferences, input_ids), logits_at(arm, preferences, input_ids), atol=ATOL, rtol=0
    )


def saved_conditioned_arm(tokenizer, folder):
    """A random PARM on a base saved in `folder / "base"` (so its adapter records a base PEFT can load), saved."""
    make_tiny_causal_lm(seed=1).save_pretrained(folder / "base")
    arm = make_conditioned_arm(tokenizer, base=AutoModelForCausalLM.from_pretrained(folder / "base"))
    arm.save_pretrained(folder / "parm", tokenizer=tokenizer)
    return arm, folder / "parm"


def test_plain_peft_refuses_a_conditioned_folder_and_names_the_loader(tokenizer, tmp_path):
    arm, folder = saved_conditioned_arm(tokenizer, tmp_path)
    assert json.loads((folder / GENARM_CONFIG_NAME).read_text())["format_version"] == 2
    # PEFT alone would load B·A without the preference cores, another model: both plain loads stop instead.
    with pytest.raises(KeyError, match=r"PreferenceConditionedARM\.from_pretrained"):
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), folder)
    with pytest.raises(KeyError, match=r"PreferenceConditionedARM\.from_pretrained"):
        AutoModelForCausalLM.from_pretrained(folder)
    loaded = PreferenceConditionedARM.from_pretrained(folder)
    input_ids = torch.randint(5, 390, (2, 7))
    preferences = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    torch.testing.assert_close(
        logits_at(loaded, preferences, input_ids), logits_at(arm, preferences, input_ids), atol=ATOL, rtol=0
    )
    # Saved again, it stays refused by PEFT and exact for hf-genarm.
    loaded.save_pretrained(tmp_path / "again")
    with pytest.raises(KeyError, match="PreferenceConditionedARM"):
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "again")
    torch.testing.assert_close(
        logits_at(PreferenceConditionedARM.from_pretrained(tmp_path / "again"), preferences, input_ids),
        logits_at(arm, preferences, input_ids),
        atol=ATOL,
        rtol=0,
    )


def test_format_one_folder_loads_exactly_and_other_adapters_are_refused(tokenizer, tmp_path):
    arm, folder = saved_conditioned_arm(tokenizer, tmp_path)
    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    metadata = json.loads((folder / GENARM_CONFIG_NAME).read_text())
    # Format 1 wrote PEFT's own "LORA" type; the cores come from the weights all the same.
    (folder / "adapter_config.json").write_text(json.dumps({**adapter_config, "peft_type": "LORA"}))
    (folder / GENARM_CONFIG_NAME).write_text(json.dumps({**metadata, "format_version": 1}))
    input_ids = torch.randint(5, 390, (1, 6))
    torch.testing.assert_close(
        logits_at(PreferenceConditionedARM.from_pretrained(folder), [0.6, 0.4], input_ids),
        logits_at(arm, [0.6, 0.4], input_ids),
        atol=ATOL,
        rtol=0,
    )
    (folder / "adapter_config.json").write_text(json.dumps({**adapter_config, "peft_type": "IA3"}))
    with pytest.raises(ValueError, match="peft_type 'IA3'"):
        PreferenceConditionedARM.from_pretrained(folder)


def test_plain_arm_files_stay_as_before(tokenizer, tmp_path):
    AutoregressiveRewardModel(make_tiny_causal_lm(), tokenizer=tokenizer).save_pretrained(tmp_path)
    metadata = json.loads((tmp_path / GENARM_CONFIG_NAME).read_text())
    assert "objectives" not in metadata and "preference_conditioning" not in metadata
    assert metadata["format_version"] == 1  # older hf-genarm versions keep reading ordinary ARMs


def test_plain_arm_folder_is_refused_by_the_conditioned_loader(tokenizer, tmp_path):
    AutoregressiveRewardModel(make_tiny_causal_lm(), tokenizer=tokenizer).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a preference-conditioned ARM"):
        PreferenceConditionedARM.from_pretrained(tmp_path)


def test_damaged_conditioning_metadata_is_refused(tmp_path):
    (tmp_path / GENARM_CONFIG_NAME).write_text(
        json.dumps({"beta_r": 0.1, "format_version": 1, "objectives": ["a", "b"], "preference_conditioning": None})
    )
    with pytest.raises(ValueError, match="come together"):
        PreferenceConditionedARM.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------------ decoding
def assert_steps_match_per_row_brute_force(recorder, arm, row_preferences, weight, prompt_mask, vocab=400):
    """Each call's output equals lp_base + weight * lp_arm(p_row), the ARM run at each row's preference alone."""
    assert recorder.calls, "the processor was never called"
    for input_ids, scores, output in recorder.calls:
        rows = input_ids.shape[0]
        mask = prompt_mask.repeat_interleave(rows // prompt_mask.shape[0], 0)
        mask = torch.cat([mask, torch.ones(rows, input_ids.shape[1] - mask.shape[1], dtype=mask.dtype)], dim=1)
        preferences = row_preferences.repeat_interleave(rows // row_preferences.shape[0], 0)
        expected = torch.log_softmax(scores.float(), dim=-1)
        for row in range(rows):
            arm.set_preference(preferences[row])
            reward = brute_force_log_probs(arm, input_ids[row : row + 1], mask[row : row + 1], vocab)
            expected[row] = expected[row] + weight * reward[0]
        torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", list(DECODING_MODES))
def test_every_step_equals_per_row_brute_force(tokenizer, mode):
    base = make_tiny_causal_lm(seed=0, hidden_size=48)
    arm = make_conditioned_arm(tokenizer)
    inputs = left_padded(tokenizer)
    preferences = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    processor = GenARMLogitsProcessor(
        arm, alpha=0.7, beta=0.5, attention_mask=inputs["attention_mask"], tokenizer=tokenizer, preference=preferences
    )
    recorder = Recorder(processor)
    torch.manual_seed(1)
    generate(base, inputs, recorder, max_new_tokens=6, **DECODING_MODES[mode])
    assert len(recorder.calls) >= 6
    assert_steps_match_per_row_brute_force(recorder, arm, preferences, 0.7 / 0.5, inputs["attention_mask"])


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_one_preference_for_every_row_on_other_architectures(tokenizer, architecture):
    base = make_tiny_causal_lm(architecture, seed=0, hidden_size=48)
    arm = make_conditioned_arm(tokenizer, architecture=architecture, target_modules=("q_proj", "v_proj"))
    inputs = left_padded(tokenizer)
    processor = GenARMLogitsProcessor(
        arm, attention_mask=inputs["attention_mask"], tokenizer=tokenizer, preference={"topic": 0.6, "sentiment": 0.4}
    )
    recorder = Recorder(processor)
    generate(base, inputs, recorder, max_new_tokens=5, do_sample=False, num_beams=2)
    assert_steps_match_per_row_brute_force(recorder, arm, torch.tensor([[0.4, 0.6]]), 1.0, inputs["attention_mask"])


def test_one_reward_model_pass_per_token_whatever_the_number_of_objectives(tokenizer):
    base = make_tiny_causal_lm(seed=0, hidden_size=48)
    arm = make_conditioned_arm(tokenizer)
    calls = []
    arm.model.register_forward_hook(lambda *args: calls.append(1))
    inputs = left_padded(tokenizer)
    processor = GenARMLogitsProcessor(
        arm, attention_mask=inputs["attention_mask"], tokenizer=tokenizer, preference=[0.5, 0.5]
    )
    generate(base, inputs, processor, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert len(calls) == 5


def test_processor_refuses_missing_or_misplaced_preferences(tokenizer):
    arm = make_conditioned_arm(tokenizer)
    with pytest.raises(ValueError, match="preference="):
        GenARMLogitsProcessor(arm, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no reward model is preference-conditioned"):
        GenARMLogitsProcessor(make_tiny_causal_lm(seed=1), tokenizer=tokenizer, preference=[0.5, 0.5])
    with pytest.raises(ValueError, match="simplex"):
        GenARMLogitsProcessor(arm, tokenizer=tokenizer, preference=[0.5, 0.7])
    inputs = left_padded(tokenizer)
    with pytest.raises(ValueError, match="Batch sizes disagree"):
        GenARMLogitsProcessor(
            arm, attention_mask=inputs["attention_mask"], tokenizer=tokenizer, preference=torch.full((2, 2), 0.5)
        )


def test_cross_tokenizer_processor_with_the_same_tokenizer_takes_a_preference(tokenizer):
    base = make_tiny_causal_lm(seed=0, hidden_size=48)
    arm = make_conditioned_arm(tokenizer)
    inputs = left_padded(tokenizer)
    preferences = torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    processor = CrossTokenizerGenARMLogitsProcessor(
        arm, tokenizer, attention_mask=inputs["attention_mask"], preference=preferences
    )
    recorder = Recorder(processor)
    generate(base, inputs, recorder, max_new_tokens=5, do_sample=False, num_beams=2)
    assert_steps_match_per_row_brute_force(recorder, arm, preferences, 1.0, inputs["attention_mask"])


# ------------------------------------------------------------------------------------------------ training
ADJECTIVES = ["lovely", "wonderful", "good", "kind", "awful", "boring", "worst", "bad"]


def opposite_objectives(topics):
    """Two objectives ranking the same responses in opposite orders ("." against "!"): no single ARM serves both."""
    calm, excited = [], []
    for index, topic in enumerate(topics):
        adjective = ADJECTIVES[index % len(ADJECTIVES)]
        prompt, quiet, loud = (
            f"Topic: the {topic}. Answer:",
            f" The {topic} is {adjective}.",
            f" The {topic} is {adjective}!",
        )
        calm.append({"prompt": prompt, "chosen": quiet, "rejected": loud})
        excited.append({"prompt": prompt, "chosen": loud, "rejected": quiet})
    return {"calm": calm, "excited": excited}


def pair_accuracy(arm, tokenizer, pairs, preference):
    arm.set_preference(preference)
    correct = 0
    for pair in pairs:
        prompt_length = len(tokenizer(pair["prompt"])["input_ids"])
        rewards = [
            arm.sequence_rewards(
                **tokenizer([pair["prompt"] + pair[side] + tokenizer.eos_token], return_tensors="pt"),
                prompt_length=prompt_length,
            ).item()
            for side in ("chosen", "rejected")
        ]
        correct += rewards[0] > rewards[1]
    return correct / len(pairs)


def test_training_learns_both_objectives_at_their_corners(tokenizer, tmp_path):
    train = opposite_objectives(["cat", "dog", "bread", "movie", "meeting", "weather", "food", "fire"] * 4)
    held_out = opposite_objectives(["window", "journey", "bank", "dessert"] * 2)
    args = PreferenceARMConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=100,
        per_device_train_batch_size=16,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    trainer = PreferenceARMTrainer(
        make_tiny_causal_lm(seed=3),
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"]),
    )
    before = trainer.evaluate()
    trainer.train()
    arm = trainer.reward_model.eval()
    assert arm.objectives == ["calm", "excited"]
    assert pair_accuracy(arm, tokenizer, held_out["calm"], [1.0, 0.0]) >= 0.9
    assert pair_accuracy(arm, tokenizer, held_out["excited"], [0.0, 1.0]) >= 0.9
    # The same pairs at the other corner are ranked the other way: the preference, not the data, decides.
    assert pair_accuracy(arm, tokenizer, held_out["calm"], [0.0, 1.0]) <= 0.1
    after = trainer.evaluate()
    assert min(before["eval_calm_rewards/accuracies"], before["eval_excited_rewards/accuracies"]) <= 0.5
    assert after["eval_calm_rewards/accuracies"] >= 0.9 and after["eval_excited_rewards/accuracies"] >= 0.9
    trainer.save_model()
    saved = json.loads((tmp_path / "out" / GENARM_CONFIG_NAME).read_text())
    assert saved["objectives"] == ["calm", "excited"]
    # The trainer's save is marked for PEFT like save_pretrained's, and loads back exactly.
    assert "PreferenceConditionedARM" in json.loads((tmp_path / "out" / "adapter_config.json").read_text())["peft_type"]
    loaded = PreferenceConditionedARM.from_pretrained(tmp_path / "out", base_model=make_tiny_causal_lm(seed=3))
    input_ids = torch.randint(5, 390, (2, 7))
    torch.testing.assert_close(
        logits_at(loaded, [0.3, 0.7], input_ids), logits_at(arm, [0.3, 0.7], input_ids), atol=ATOL, rtol=0
    )


def test_pair_weights_are_the_preference_over_the_objectives_share(tokenizer, tmp_path):
    """PARM's scalarisation sum_j p_j L_j, per pair: weight p_j / share_j, so a larger dataset does not count more."""
    pairs = opposite_objectives(["cat", "dog", "bread", "movie"])
    pairs["excited"] = pairs["excited"][:1]  # shares 4/5 and 1/5
    args = PreferenceARMConfig(output_dir=str(tmp_path), max_steps=1, use_cpu=True, save_strategy="no", report_to=[])
    trainer = PreferenceARMTrainer(
        make_tiny_causal_lm(),
        args=args,
        train_dataset=pairs,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, target_modules=["c_attn"]),
    )
    assert args.preference_concentration == 0.5  # PARM's released training script
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(5)])
    objective = batch["objective_index"]
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch)
    drawn = trainer.reward_model.preference[:5]  # the chosen rows' preferences (the rejected rows repeat them)
    share = torch.tensor([4 / 5, 1 / 5])[objective]
    expected = drawn.gather(1, objective.unsqueeze(1)).squeeze(1) / share
    torch.testing.assert_close(trainer._pair_loss_weights(batch), expected)


def test_objective_column_and_bad_data_are_handled(tokenizer, tmp_path):
    pairs = opposite_objectives(["cat", "dog"])
    rows = [{**pair, "objective": name} for name, part in pairs.items() for pair in part]
    args = PreferenceARMConfig(output_dir=str(tmp_path), max_steps=1, use_cpu=True, save_strategy="no", report_to=[])
    lora = LoraConfig(r=4, target_modules=["c_attn"])
    trainer = PreferenceARMTrainer(
        make_tiny_causal_lm(), args=args, train_dataset=rows, processing_class=tokenizer, peft_config=lora
    )
    assert trainer.reward_model.objectives == ["calm", "excited"]  # sorted names of the column
    assert sorted(set(trainer.train_dataset["objective_index"])) == [0, 1]
    with pytest.raises(ValueError, match="peft_config"):
        PreferenceARMTrainer(make_tiny_causal_lm(), args=args, train_dataset=pairs, processing_class=tokenizer)
    with pytest.raises(ValueError, match="not among the objectives"):
        PreferenceARMTrainer(
            make_tiny_causal_lm(),
            args=args,
            train_dataset=pairs,
            objectives=["calm", "style"],
            processing_class=tokenizer,
            peft_config=LoraConfig(r=4, target_modules=["c_attn"]),
        )
    with pytest.raises(TypeError, match="PreferenceARMConfig"):
        from hf_genarm import ARMConfig

        PreferenceARMTrainer(make_tiny_causal_lm(), args=ARMConfig(output_dir=str(tmp_path)), peft_config=lora)
    with pytest.raises(ValueError, match="preference_concentration"):
        PreferenceARMConfig(output_dir=str(tmp_path), preference_concentration=0.0)


def test_cross_tokenizer_processor_across_tokenizers_refuses_a_preference_for_now(tokenizer):
    arm = PreferenceConditionedARM(
        make_tiny_causal_lm(seed=1), objectives=OBJECTIVES, lora_config=LoraConfig(r=4, target_modules=["c_attn"])
    )
    with pytest.raises(ValueError, match="not supported yet"):
        CrossTokenizerGenARMLogitsProcessor(
            arm, tokenizer, reward_model_tokenizers=[make_tiny_tokenizer(vocab_size=300)], preference=[0.5, 0.5]
        )

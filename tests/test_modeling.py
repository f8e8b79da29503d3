"""AutoregressiveRewardModel: rewards by hand, padding, save/load round trips, sidecar, PEFT adapters, model card."""

import json
import logging
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from hf_genarm import AutoregressiveRewardModel, RewardModelMetadata
from hf_genarm.configuration import GENARM_CONFIG_NAME
from hf_genarm.model_card import is_unedited_generated_card
from hf_genarm.modeling import response_log_probs
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
from hf_genarm.vocab import tokenizer_fingerprint

BETA_R = 0.2
# (prompt, response) pairs of different lengths; responses end with EOS (id 0), which counts.
ROWS = [
    ("Question: how do I bake bread? Answer:", " mix flour, water, salt and yeast."),
    ("Life is short;", " eat dessert first."),
]


@pytest.fixture()
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture()
def reward_model(tokenizer):
    return AutoregressiveRewardModel(make_tiny_causal_lm(seed=2), beta_r=BETA_R, tokenizer=tokenizer)


def tokenized_rows(tokenizer):
    rows = []
    for prompt, response in ROWS:
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + response)["input_ids"] + [tokenizer.eos_token_id]
        assert full_ids[: len(prompt_ids)] == prompt_ids
        rows.append((prompt_ids, full_ids))
    return rows


def hand_token_log_probs(causal_lm, full_ids, prompt_length):
    """log p(token_t | tokens_<t) for each response position of one unpadded sequence."""
    with torch.no_grad():
        logits = causal_lm(input_ids=torch.tensor([full_ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return [log_probs[position - 1, full_ids[position]].item() for position in range(prompt_length, len(full_ids))]


def padded_batch(rows, padding_side, pad_id):
    width = max(len(full_ids) for _, full_ids in rows)
    input_ids, attention_mask, starts = [], [], []
    for prompt_ids, full_ids in rows:
        padding = width - len(full_ids)
        if padding_side == "left":
            input_ids.append([pad_id] * padding + full_ids)
            attention_mask.append([0] * padding + [1] * len(full_ids))
            starts.append(padding + len(prompt_ids))
        else:
            input_ids.append(full_ids + [pad_id] * padding)
            attention_mask.append([1] * len(full_ids) + [0] * padding)
            starts.append(len(prompt_ids))
    return torch.tensor(input_ids), torch.tensor(attention_mask), torch.tensor(starts)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_token_and_sequence_rewards_match_a_hand_computation(reward_model, tokenizer, padding_side):
    rows = tokenized_rows(tokenizer)
    input_ids, attention_mask, starts = padded_batch(rows, padding_side, tokenizer.pad_token_id)
    assert attention_mask.min() == 0, "the batch must contain padding"
    token_rewards = reward_model.token_rewards(input_ids, attention_mask, prompt_length=starts)
    sequence_rewards = reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts)
    for row, (prompt_ids, full_ids) in enumerate(rows):
        expected = [BETA_R * value for value in hand_token_log_probs(reward_model.model, full_ids, len(prompt_ids))]
        start = starts[row].item()
        response_columns = token_rewards[row, start : start + len(expected)]
        assert torch.allclose(response_columns.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5)
        masked = torch.ones(input_ids.shape[1], dtype=torch.bool)
        masked[start : start + len(expected)] = False
        assert torch.all(token_rewards[row, masked] == 0), "prompt and padding columns must be zero"
        assert input_ids[row, start + len(expected) - 1] == tokenizer.eos_token_id, "EOS is the last scored token"
        assert sequence_rewards[row].item() == pytest.approx(sum(expected), abs=1e-4)
    response_mask = torch.zeros_like(input_ids)
    for row, (prompt_ids, full_ids) in enumerate(rows):
        response_mask[row, starts[row] : starts[row] + len(full_ids) - len(prompt_ids)] = 1
    by_mask = reward_model.sequence_rewards(input_ids, attention_mask, response_mask=response_mask)
    assert torch.allclose(by_mask, sequence_rewards)


def test_response_log_probs_match_a_hand_computation_in_float32_for_a_half_precision_model(tokenizer):
    causal_lm = make_tiny_causal_lm(seed=2)
    rows = tokenized_rows(tokenizer)
    input_ids, attention_mask, starts = padded_batch(rows, "left", tokenizer.pad_token_id)
    response_mask = torch.arange(input_ids.shape[1]).unsqueeze(0) >= starts.unsqueeze(1)
    per_token, summed = response_log_probs(causal_lm, input_ids, attention_mask, response_mask)
    assert per_token.dtype == summed.dtype == torch.float32
    for row, (prompt_ids, full_ids) in enumerate(rows):
        expected = hand_token_log_probs(causal_lm, full_ids, len(prompt_ids))
        start = starts[row].item()
        assert torch.allclose(per_token[row, start:].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5)
        assert torch.all(per_token[row, :start] == 0)
    assert torch.allclose(summed, per_token.sum(-1))

    half_per_token, _ = response_log_probs(causal_lm.to(torch.bfloat16), input_ids, attention_mask, response_mask)
    assert half_per_token.dtype == torch.float32
    assert torch.allclose(half_per_token, per_token, atol=0.1), "bf16 weights, float32 log-softmax"

    with pytest.raises(ValueError, match="`response_mask` must have the shape of `input_ids`"):
        response_log_probs(causal_lm, input_ids, attention_mask, response_mask[:1, :-1])


def test_sequence_rewards_can_be_normalised_by_response_length(reward_model, tokenizer):
    rows = tokenized_rows(tokenizer)
    input_ids, attention_mask, starts = padded_batch(rows, "right", tokenizer.pad_token_id)
    summed = reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts)
    assert torch.equal(
        reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts, normalize="sum"), summed
    )
    mean = reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts, normalize="mean")
    lengths = torch.tensor([len(full_ids) - len(prompt_ids) for prompt_ids, full_ids in rows])
    assert torch.allclose(mean, summed / lengths)
    with pytest.raises(ValueError, match="`normalize` must be 'sum'"):
        reward_model.sequence_rewards(input_ids, attention_mask, normalize="max")


def test_next_token_log_probs_of_left_padded_rows_match_unpadded_rows(reward_model, tokenizer):
    prefixes = [tokenizer(prompt)["input_ids"] for prompt, _ in ROWS]
    width = max(map(len, prefixes))
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in prefixes])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prefixes])
    batched = reward_model.next_token_log_probs(input_ids, attention_mask)
    for row, ids in enumerate(prefixes):
        alone = reward_model.next_token_log_probs(torch.tensor([ids]))
        assert torch.allclose(batched[row], alone[0], atol=1e-5)
    assert torch.allclose(batched.exp().sum(-1), torch.ones(len(prefixes)), atol=1e-5)


def test_saved_folder_loads_with_plain_transformers_and_has_the_sidecar(reward_model, tokenizer, tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    reward_model.save_pretrained(tmp_path, tokenizer=tokenizer)
    files = {path.name for path in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json", GENARM_CONFIG_NAME, "README.md", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl", ".py")) for name in files)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())

    sidecar = json.loads((tmp_path / GENARM_CONFIG_NAME).read_text())
    assert sidecar["beta_r"] == BETA_R
    assert sidecar["tokenizer"] == tokenizer_fingerprint(tokenizer)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)
    sample = torch.tensor([tokenizer("Life is short; eat dessert first.")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(plain(sample).logits, reward_model.model(sample).logits, atol=1e-6)
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert is_unedited_generated_card(card)
    assert "beta_r = 0.2" in card and "GenARMLogitsProcessor" in card and "xu2025genarm" in card


def test_from_pretrained_reads_the_sidecar_and_accepts_a_beta_r_override(reward_model, tokenizer, tmp_path, caplog):
    reward_model.save_pretrained(tmp_path, tokenizer=tokenizer)
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path)
    assert loaded.beta_r == BETA_R
    assert loaded.metadata.tokenizer == tokenizer_fingerprint(tokenizer)
    assert AutoregressiveRewardModel.from_pretrained(tmp_path, beta_r=0.05).beta_r == 0.05
    input_ids, attention_mask, starts = padded_batch(tokenized_rows(tokenizer), "right", tokenizer.pad_token_id)
    assert torch.allclose(
        loaded.sequence_rewards(input_ids, attention_mask, prompt_length=starts),
        reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts),
        atol=1e-6,
    )


def test_plain_causal_lm_without_sidecar_loads_with_the_callers_beta_r(tmp_path, caplog):
    make_tiny_causal_lm(seed=1).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        defaulted = AutoregressiveRewardModel.from_pretrained(tmp_path)
    assert defaulted.beta_r == 0.1
    assert "no genarm_config.json" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        given = AutoregressiveRewardModel.from_pretrained(tmp_path, beta_r=0.05)
    assert given.beta_r == 0.05 and "genarm_config.json" not in caplog.text


def test_peft_adapter_saves_loads_and_merges(tokenizer, tmp_path):
    from peft import AutoPeftModelForCausalLM, LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=3).save_pretrained(base_dir)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False),
    )
    reward_model = AutoregressiveRewardModel(peft_model, beta_r=BETA_R, tokenizer=tokenizer).eval()
    adapter_dir = tmp_path / "adapter"
    reward_model.save_pretrained(adapter_dir, tokenizer=tokenizer)
    files = {path.name for path in adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", GENARM_CONFIG_NAME} <= files
    assert "model.safetensors" not in files
    assert "library_name: peft" in (adapter_dir / "README.md").read_text(encoding="utf-8")

    input_ids, attention_mask, starts = padded_batch(tokenized_rows(tokenizer), "left", tokenizer.pad_token_id)
    expected = reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts)
    loaded = AutoregressiveRewardModel.from_pretrained(adapter_dir)
    assert loaded.is_peft_model and loaded.beta_r == BETA_R
    assert torch.allclose(loaded.sequence_rewards(input_ids, attention_mask, prompt_length=starts), expected, atol=1e-6)
    merged = loaded.merge_adapter()
    assert not merged.is_peft_model and merged.beta_r == BETA_R
    assert torch.allclose(merged.sequence_rewards(input_ids, attention_mask, prompt_length=starts), expected, atol=1e-5)
    plain_base = AutoregressiveRewardModel(AutoModelForCausalLM.from_pretrained(base_dir), beta_r=BETA_R)
    assert not torch.allclose(plain_base.sequence_rewards(input_ids, attention_mask, prompt_length=starts), expected)
    assert hasattr(AutoPeftModelForCausalLM.from_pretrained(adapter_dir), "peft_config")


def test_save_keeps_a_users_model_card_and_refreshes_its_own(reward_model, tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    user_card = "---\nlicense: mit\n---\n# My reward model\n\nHand-written notes.\n"
    (tmp_path / "README.md").write_text(user_card, encoding="utf-8")
    adapter_model = AutoregressiveRewardModel(
        get_peft_model(make_tiny_causal_lm(), LoraConfig(r=2, target_modules=["c_attn"])), beta_r=BETA_R
    )
    adapter_model.save_pretrained(tmp_path, tokenizer=tokenizer)  # PEFT edits an existing card when saving
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == user_card

    own = tmp_path / "own"
    reward_model.save_pretrained(own)
    reward_model.metadata.metrics = {"eval_preference_accuracy": 0.75}
    reward_model.save_pretrained(own)
    assert "| `eval_preference_accuracy` | 0.75 |" in (own / "README.md").read_text(encoding="utf-8")

    generated = (own / "README.md").read_text(encoding="utf-8")
    edited = generated.replace("# own\n", "# own (edited by hand)\n")
    assert edited != generated
    (own / "README.md").write_text(edited, encoding="utf-8")
    reward_model.save_pretrained(own)
    assert (own / "README.md").read_text(encoding="utf-8") == edited
    reward_model.save_pretrained(own, overwrite_model_card=True)
    assert is_unedited_generated_card((own / "README.md").read_text(encoding="utf-8"))


def test_metadata_round_trips_and_bad_beta_r_is_refused(tmp_path):
    metadata = RewardModelMetadata(beta_r=0.3, base_model="org/base", datasets=["org/data"], metrics={"eval_loss": 0.5})
    metadata.to_json_file(tmp_path / "meta.json")
    assert RewardModelMetadata.from_json_file(tmp_path / "meta.json") == metadata
    with pytest.raises(ValueError, match="beta_r"):
        AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=-1.0)
    with pytest.raises(ValueError, match="is a file"):
        (tmp_path / "file").write_text("x")
        AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(tmp_path / "file")


def test_adapter_of_a_config_built_model_needs_and_accepts_base_model(tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = make_tiny_causal_lm(seed=5)
    reward_model = AutoregressiveRewardModel(
        get_peft_model(base, LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False)), beta_r=BETA_R
    ).eval()
    reward_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pass `base_model=`"):
        AutoregressiveRewardModel.from_pretrained(tmp_path)
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path, base_model=make_tiny_causal_lm(seed=5))
    input_ids, attention_mask, starts = padded_batch(tokenized_rows(tokenizer), "right", tokenizer.pad_token_id)
    assert torch.allclose(
        loaded.sequence_rewards(input_ids, attention_mask, prompt_length=starts),
        reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts),
        atol=1e-6,
    )


def adapter_reward_model(base_dir, seed=3):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False),
    )
    return AutoregressiveRewardModel(peft_model, beta_r=BETA_R).eval()


def saved_files(folder):
    return {path.name for path in folder.iterdir()}


def test_saving_over_an_earlier_save_leaves_exactly_one_model(tokenizer, tmp_path):
    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=3).save_pretrained(base_dir)
    adapter_model, full_model = adapter_reward_model(base_dir), AutoregressiveRewardModel(make_tiny_causal_lm(seed=8))
    input_ids, attention_mask, starts = padded_batch(tokenized_rows(tokenizer), "right", tokenizer.pad_token_id)

    def rewards(model):
        return model.sequence_rewards(input_ids, attention_mask, prompt_length=starts)

    folder = tmp_path / "arm"
    adapter_model.save_pretrained(folder)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    full_model.save_pretrained(folder)  # a full-model run saved where a LoRA run was
    assert not {"adapter_config.json", "adapter_model.safetensors"} & saved_files(folder)
    loaded = AutoregressiveRewardModel.from_pretrained(folder)
    assert not loaded.is_peft_model and torch.allclose(rewards(loaded), rewards(full_model), atol=1e-6)

    adapter_model.save_pretrained(folder)  # and back
    assert not {"config.json", "model.safetensors"} & saved_files(folder)
    loaded = AutoregressiveRewardModel.from_pretrained(folder)
    assert loaded.is_peft_model and torch.allclose(rewards(loaded), rewards(adapter_model), atol=1e-6)

    full_model.save_pretrained(folder, max_shard_size="100KB")
    shards = {name for name in saved_files(folder) if name.startswith("model-")}
    assert len(shards) > 1 and "model.safetensors.index.json" in saved_files(folder)
    full_model.save_pretrained(folder)  # unsharded over sharded: no stale index or shard may stay
    assert not shards & saved_files(folder) and "model.safetensors.index.json" not in saved_files(folder)
    assert torch.allclose(rewards(AutoregressiveRewardModel.from_pretrained(folder)), rewards(full_model), atol=1e-6)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not [name for name in saved_files(folder) if name.startswith(".")], "no staging folder left behind"


def test_saving_refuses_model_files_it_did_not_write_unless_asked(tmp_path):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1))
    someone_elses = tmp_path / "plain"
    make_tiny_causal_lm(seed=9).save_pretrained(someone_elses)
    before = (someone_elses / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"did not write \(config.json, .*model.safetensors\).*`overwrite=True`"):
        reward_model.save_pretrained(someone_elses)
    assert (someone_elses / "model.safetensors").read_bytes() == before
    assert GENARM_CONFIG_NAME not in saved_files(someone_elses)
    reward_model.save_pretrained(someone_elses, overwrite=True)
    assert GENARM_CONFIG_NAME in saved_files(someone_elses)

    pickled = tmp_path / "pickled"
    reward_model.save_pretrained(pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not ours")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin"):
        reward_model.save_pretrained(pickled)
    reward_model.save_pretrained(pickled, overwrite=True)
    assert "pytorch_model.bin" not in saved_files(pickled)


def test_loading_refuses_a_folder_holding_two_models(tmp_path):
    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=3).save_pretrained(base_dir)
    folder = tmp_path / "arm"
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=8)).save_pretrained(folder)
    adapter_reward_model(base_dir).model.save_pretrained(folder)  # written by PEFT itself, beside the full model
    with pytest.raises(ValueError, match=r"holds two models: a full checkpoint \(.*model.safetensors.*adapter_config"):
        AutoregressiveRewardModel.from_pretrained(folder)


def test_save_with_a_tokenizer_records_its_fingerprint_and_refuses_another(tokenizer, tmp_path):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), beta_r=BETA_R)
    assert reward_model.metadata.tokenizer is None
    reward_model.save_pretrained(tmp_path / "arm", tokenizer=tokenizer)
    assert json.loads((tmp_path / "arm" / GENARM_CONFIG_NAME).read_text())["tokenizer"] == tokenizer_fingerprint(
        tokenizer
    )
    assert AutoregressiveRewardModel.from_pretrained(tmp_path / "arm").metadata.tokenizer == tokenizer_fingerprint(
        tokenizer
    )

    other = make_tiny_tokenizer(vocab_size=380)
    with pytest.raises(ValueError, match="`tokenizer` differs from the tokenizer this reward model records"):
        reward_model.save_pretrained(tmp_path / "lie", tokenizer=other)
    assert reward_model.metadata.tokenizer == tokenizer_fingerprint(tokenizer), "in-memory metadata unchanged"
    assert not (tmp_path / "lie").exists()


def test_adapters_record_a_base_that_resolves_from_anywhere_and_accept_base_model(tokenizer, tmp_path, monkeypatch):
    workdir = tmp_path / "work"
    make_tiny_causal_lm(seed=3).save_pretrained(workdir / "base")
    monkeypatch.chdir(workdir)
    reward_model = adapter_reward_model("./base")  # as `hf-genarm train --model ./base --lora` loads it
    reward_model.save_pretrained("arm")
    recorded = json.loads((workdir / "arm" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str(workdir / "base")
    assert json.loads((workdir / "arm" / GENARM_CONFIG_NAME).read_text())["base_model"] == str(workdir / "base")

    # Loaded by a relative name (as ARMTrainer loads `--model ./base`), an adapter put on it later records it whole.
    from peft import LoraConfig, get_peft_model

    loaded_base = AutoregressiveRewardModel.from_pretrained("base", beta_r=BETA_R).model
    later_adapter = get_peft_model(loaded_base, LoraConfig(r=2, target_modules=["c_attn"]))
    assert later_adapter.peft_config["default"].base_model_name_or_path == str(workdir / "base")

    input_ids, attention_mask, starts = padded_batch(tokenized_rows(tokenizer), "right", tokenizer.pad_token_id)
    expected = reward_model.sequence_rewards(input_ids, attention_mask, prompt_length=starts)
    monkeypatch.chdir(tmp_path)
    loaded = AutoregressiveRewardModel.from_pretrained(workdir / "arm")
    assert torch.allclose(loaded.sequence_rewards(input_ids, attention_mask, prompt_length=starts), expected, atol=1e-6)

    # An adapter whose recorded base cannot be found (relative, or moved): the error says how to point at it.
    config_path = workdir / "arm" / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "base_model_name_or_path": "./base"}))
    with pytest.raises(ValueError, match=r"'\./base', is neither a folder here nor a Hub repository id.*base_model="):
        AutoregressiveRewardModel.from_pretrained(workdir / "arm")
    moved = AutoregressiveRewardModel.from_pretrained(workdir / "arm", base_model=workdir / "base")
    assert torch.allclose(moved.sequence_rewards(input_ids, attention_mask, prompt_length=starts), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("null", "got null"),
        ("[]", "got list"),
        ('{"beta_r": 0.1, "format_version": 1, "tokenizer": 7}', "`tokenizer` must be"),
        ('{"beta_r": 0.1, "format_version": 99}', "`format_version` is 99, written by a newer hf-genarm"),
    ],
)
def test_loading_a_damaged_genarm_config_names_the_file_and_the_field(tmp_path, content, message):
    AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(tmp_path)
    (tmp_path / GENARM_CONFIG_NAME).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as raised:
        AutoregressiveRewardModel.from_pretrained(tmp_path)
    assert str(tmp_path / GENARM_CONFIG_NAME) in str(raised.value)


def test_loading_from_the_hub_offline_names_the_repo_and_hf_hub_offline(tmp_path):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "tests run with HF_HUB_OFFLINE=1"
    with pytest.raises(OSError, match=r"'alice/never-downloaded' from the Hub: HF_HUB_OFFLINE is set"):
        AutoregressiveRewardModel.from_pretrained("alice/never-downloaded", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="neither an existing folder nor a Hub repository id"):
        AutoregressiveRewardModel.from_pretrained(tmp_path / "no" / "such" / "folder")


def test_remote_code_is_refused_as_everywhere_in_the_package(tmp_path):
    AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="never runs code from a model repository"):
        AutoregressiveRewardModel.from_pretrained(tmp_path, trust_remote_code=True)
    assert AutoregressiveRewardModel.from_pretrained(tmp_path, trust_remote_code=False).beta_r == 0.1


def test_a_save_that_fails_midway_leaves_the_earlier_save_as_it_was(tokenizer, tmp_path, monkeypatch):
    folder = tmp_path / "arm"
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=tokenizer).save_pretrained(folder)
    before = {name: (folder / name).read_bytes() for name in saved_files(folder)}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(tokenizer, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        AutoregressiveRewardModel(make_tiny_causal_lm(seed=2)).save_pretrained(folder, tokenizer=tokenizer)
    assert {name: (folder / name).read_bytes() for name in saved_files(folder)} == before


def lora_reward_model_on(base_dir):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    return AutoregressiveRewardModel(get_peft_model(base, LoraConfig(r=2, target_modules=["c_attn"])))


def test_an_adapter_is_never_saved_into_the_folder_holding_its_base_model(tokenizer, tmp_path):
    # The folder holds a full ARM saved by hf-genarm: its model files would otherwise count as replaceable.
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=tokenizer).save_pretrained(tmp_path / "arm")
    before = saved_files(tmp_path / "arm")
    adapter = lora_reward_model_on(tmp_path / "arm")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"holds the base model of the adapter being saved.*another folder"):
            adapter.save_pretrained(tmp_path / "arm", overwrite=overwrite)
    assert saved_files(tmp_path / "arm") == before
    assert not AutoregressiveRewardModel.from_pretrained(tmp_path / "arm").is_peft_model

    adapter.save_pretrained(tmp_path / "adapter")
    assert AutoregressiveRewardModel.from_pretrained(tmp_path / "adapter").is_peft_model
    # Put on a copy of its base, the adapter needs both the base it records and the one it was put on.
    shutil.copytree(tmp_path / "arm", tmp_path / "copy")
    moved = AutoregressiveRewardModel.from_pretrained(tmp_path / "adapter", base_model=tmp_path / "copy")
    for folder in ("arm", "copy"):
        with pytest.raises(ValueError, match="holds the base model of the adapter being saved"):
            moved.save_pretrained(tmp_path / folder)
        assert saved_files(tmp_path / folder) == before


def test_a_recorded_tokenizer_is_never_replaced_by_re_wrapping(reward_model, tokenizer, tmp_path):
    from hf_genarm import GenARMLogitsProcessor

    reward_model.save_pretrained(tmp_path / "arm")
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path / "arm")
    other = make_tiny_tokenizer(vocab_size=380)
    with pytest.raises(ValueError, match=r"`tokenizer` differs from the tokenizer the reward model records.*plain"):
        AutoregressiveRewardModel(loaded, tokenizer=other)
    with pytest.raises(ValueError, match="`tokenizer` differs"):
        AutoregressiveRewardModel(loaded.model, metadata=loaded.metadata, tokenizer=other)
    assert loaded.metadata.tokenizer == tokenizer_fingerprint(tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        GenARMLogitsProcessor(loaded, tokenizer=other)
    # The same tokenizer is accepted, and starting afresh from the plain causal LM is the documented opt-in.
    assert AutoregressiveRewardModel(loaded, tokenizer=tokenizer).metadata.tokenizer == tokenizer_fingerprint(tokenizer)
    fresh = AutoregressiveRewardModel(loaded.model, tokenizer=other)
    assert fresh.metadata.tokenizer == tokenizer_fingerprint(other)


def test_the_wrapper_is_in_the_mode_of_the_model_it_wraps(reward_model, tmp_path, caplog):
    from hf_genarm import GenARMLogitsProcessor

    assert AutoregressiveRewardModel(make_tiny_causal_lm().train()).training
    assert not AutoregressiveRewardModel(make_tiny_causal_lm().eval()).training
    reward_model.save_pretrained(tmp_path / "arm")
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path / "arm")
    assert not any(module.training for module in loaded.modules())
    base = make_tiny_causal_lm(seed=7)
    with caplog.at_level(logging.WARNING):
        base.generate(
            torch.tensor([[5, 6, 7]]),
            max_new_tokens=2,
            do_sample=False,
            logits_processor=[GenARMLogitsProcessor(loaded)],
            pad_token_id=0,
        )
    assert "training mode" not in caplog.text


def test_scoring_runs_without_dropout_and_leaves_the_mode_as_it_was(tokenizer):
    from hf_genarm.visualize import score_text

    causal_lm = make_tiny_causal_lm(seed=2)
    for module in causal_lm.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    reward_model = AutoregressiveRewardModel(causal_lm, tokenizer=tokenizer)
    batch = tokenizer(["Life is short; eat dessert first."], return_tensors="pt")
    reference = {
        "token": reward_model.token_rewards(**batch, prompt_length=3),
        "sequence": reward_model.sequence_rewards(**batch, prompt_length=3),
        "next": reward_model.next_token_log_probs(**batch),
        "text": torch.tensor(score_text(reward_model, tokenizer, "Life is", " short")[1]),
    }
    reward_model.train()
    for _ in range(2):
        scored = {
            "token": reward_model.token_rewards(**batch, prompt_length=3),
            "sequence": reward_model.sequence_rewards(**batch, prompt_length=3),
            "next": reward_model.next_token_log_probs(**batch),
            "text": torch.tensor(score_text(reward_model, tokenizer, "Life is", " short")[1]),
        }
        for name, values in scored.items():
            torch.testing.assert_close(values, reference[name], rtol=0, atol=1e-6, msg=name)
    assert all(module.training for module in reward_model.modules()), "the training mode is restored"
    # The plain forward (what the trainer's loss runs) keeps dropout as configured.
    first, second = (reward_model(**batch).logits for _ in range(2))
    assert not torch.allclose(first, second)


def test_a_genarm_config_json_that_is_not_a_file_is_an_error_naming_it(tmp_path):
    AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.5).save_pretrained(tmp_path)
    (tmp_path / GENARM_CONFIG_NAME).unlink()
    (tmp_path / GENARM_CONFIG_NAME).mkdir()
    with pytest.raises(ValueError, match="is not a file") as raised:
        AutoregressiveRewardModel.from_pretrained(tmp_path, beta_r=0.5)
    assert str(tmp_path / GENARM_CONFIG_NAME) in str(raised.value)

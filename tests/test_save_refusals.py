"""What a save refuses, before writing, and what push says offline (issue 23).

Another model's weights beside a save, another model's tokenizer files that a save without `tokenizer=` would
pair with the new model, an adapter on a base that is not the one it was trained on, a read-only `output_dir`,
and a Hub that cannot be reached.
"""

import json
import os
import socket

import pytest
import torch
from huggingface_hub import constants
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from hf_genarm import ARMConfig, ARMTrainer, AutoregressiveRewardModel
from hf_genarm.hub import HubUnreachableError, push_saved_reward_model
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer


def _reward_model(seed=1, tokenizer=None):
    return AutoregressiveRewardModel(make_tiny_causal_lm(seed=seed), beta_r=0.1, tokenizer=tokenizer)


def _other_tokenizer():
    return make_tiny_tokenizer(vocab_size=300)


@pytest.mark.parametrize("name", ["model.gguf", "model.onnx", "pytorch_model.bin", "Model.GGUF", "model.onnx_data"])
def test_saving_beside_another_models_weights_is_refused_and_they_are_never_pushed(tmp_path, name):
    folder = tmp_path / "arm"
    _reward_model().save_pretrained(folder, tokenizer=make_tiny_tokenizer())
    (folder / name).write_bytes(b"GGUF weights of another model")
    with pytest.raises(ValueError, match=rf"(?s){name}.*overwrite=True"):
        _reward_model(seed=2).save_pretrained(folder, tokenizer=make_tiny_tokenizer())
    assert (folder / name).read_bytes() == b"GGUF weights of another model", "nothing the user saved is lost"
    with pytest.raises(ValueError, match=rf"{name}.*Remove them"):
        push_saved_reward_model(folder, "alice/arm")
    _reward_model(seed=2).save_pretrained(folder, tokenizer=make_tiny_tokenizer(), overwrite=True)
    assert not (folder / name).exists(), "`overwrite=True` replaces them"


def test_a_save_without_tokenizer_refuses_another_tokenizers_files_and_a_recorded_fingerprint_wins(tmp_path):
    folder = tmp_path / "arm"
    other = _other_tokenizer()
    _reward_model(tokenizer=other).save_pretrained(folder, tokenizer=other)
    recorded = _reward_model(seed=2, tokenizer=make_tiny_tokenizer())
    with pytest.raises(ValueError, match=r"(?s)tokenizer saved in .*arm.*differs.*Pass `tokenizer=`"):
        recorded.save_pretrained(folder)
    unrecorded = _reward_model(seed=3)
    with pytest.raises(ValueError, match="records no tokenizer: saving without `tokenizer=` would pair them"):
        unrecorded.save_pretrained(folder)
    assert (
        AutoregressiveRewardModel.from_pretrained(folder).metadata.tokenizer
        == _reward_model(tokenizer=other).metadata.tokenizer
    )
    # The fix the error names: the reward model's own tokenizer replaces every file of the other one.
    (folder / "vocab.txt").write_text("[PAD]\n")  # a file of another tokenizer family, not rewritten by this one
    recorded.save_pretrained(folder, tokenizer=make_tiny_tokenizer())
    assert not (folder / "vocab.txt").exists()
    assert len(AutoregressiveRewardModel.from_pretrained(folder).metadata.tokenizer) > 0
    # Re-saving without `tokenizer=` over the model's own tokenizer files is fine.
    AutoregressiveRewardModel.from_pretrained(folder).save_pretrained(folder)


def _lora(base_folder, seed=3):
    torch.manual_seed(seed)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_folder),
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False),
    )
    return AutoregressiveRewardModel(peft_model, beta_r=0.1).eval()


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ({"seed": 9}, "other weights"),  # same architecture, another model
        ({"vocab_size": 480}, "vocab_size 400 recorded, 480 found"),
        ({"hidden_size": 64}, "hidden_size 32 recorded, 64 found"),
    ],
)
def test_an_adapter_whose_base_folder_now_holds_another_model_is_refused_naming_it_and_base_model(
    tmp_path, replacement, message
):
    base = tmp_path / "base"
    make_tiny_causal_lm(seed=1).save_pretrained(base)
    adapter = tmp_path / "adapter"
    _lora(base).save_pretrained(adapter, tokenizer=make_tiny_tokenizer())
    AutoregressiveRewardModel.from_pretrained(adapter)  # the recorded base: loads
    make_tiny_causal_lm(**replacement).save_pretrained(base)
    with pytest.raises(ValueError, match=rf"(?s){base}.*{message}.*base_model="):
        AutoregressiveRewardModel.from_pretrained(adapter)
    original = tmp_path / "original-base"
    make_tiny_causal_lm(seed=1).save_pretrained(original)
    loaded = AutoregressiveRewardModel.from_pretrained(adapter, base_model=original)
    assert loaded.is_peft_model


def test_a_base_given_on_purpose_that_differs_loads_with_a_warning_and_bfloat16_is_the_same_base(tmp_path, caplog):
    base = tmp_path / "base"
    make_tiny_causal_lm(seed=1).save_pretrained(base)
    adapter = tmp_path / "adapter"
    _lora(base).save_pretrained(adapter, tokenizer=make_tiny_tokenizer())
    with caplog.at_level("WARNING"):
        AutoregressiveRewardModel.from_pretrained(adapter, dtype=torch.bfloat16)
    assert "not the one the adapter" not in caplog.text
    other = tmp_path / "other"
    make_tiny_causal_lm(seed=9).save_pretrained(other)
    with caplog.at_level("WARNING"):
        AutoregressiveRewardModel.from_pretrained(adapter, base_model=other)
    assert "not the one the adapter" in caplog.text and "other weights" in caplog.text


def test_an_adapter_saved_without_the_base_record_still_loads_and_a_wider_base_names_base_model(tmp_path):
    base = tmp_path / "base"
    make_tiny_causal_lm(seed=1).save_pretrained(base)
    adapter = tmp_path / "adapter"
    _lora(base).save_pretrained(adapter, tokenizer=make_tiny_tokenizer())
    config = adapter / "genarm_config.json"
    raw = json.loads(config.read_text())
    assert raw.pop("base_model_fingerprint")["vocab_size"] == 400
    config.write_text(json.dumps(raw))  # as hf-genarm wrote it before the record existed
    AutoregressiveRewardModel.from_pretrained(adapter)  # no record, no check
    make_tiny_causal_lm(hidden_size=64).save_pretrained(base)
    with pytest.raises(ValueError, match=rf"(?s)does not fit its base model '{base}'.*base_model="):
        AutoregressiveRewardModel.from_pretrained(adapter)


def _read_only_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return str(folder)
    # Root ignores permission bits; a read-only file system stops it too.
    for candidate in ("/sys/fs", "/proc/sys"):
        if (os.path.isdir(candidate) and not os.access(candidate, os.W_OK)) or _unwritable(candidate):
            return candidate
    pytest.skip("no read-only folder available to root here")


def _unwritable(folder):
    try:
        open(os.path.join(folder, ".probe"), "w").close()
    except OSError:
        return True
    os.remove(os.path.join(folder, ".probe"))
    return False


@pytest.mark.parametrize("inside", [False, True])
def test_a_read_only_output_dir_is_refused_when_the_trainer_is_built(tmp_path, inside):
    read_only = _read_only_folder(tmp_path)
    output_dir = os.path.join(read_only, "arm") if inside else read_only
    data = [{"prompt": "Hi", "chosen": " good", "rejected": " bad"}] * 2
    args = ARMConfig(output_dir=output_dir, max_steps=1, use_cpu=True, report_to=[])
    with pytest.raises(ValueError, match=rf"`output_dir` \({output_dir}\) cannot be saved into.*not writable"):
        ARMTrainer(make_tiny_causal_lm(), args=args, train_dataset=data, processing_class=make_tiny_tokenizer())


def test_a_push_that_cannot_reach_the_hub_says_so_with_the_endpoint_and_what_to_do(tmp_path, monkeypatch):
    folder = tmp_path / "arm"
    _reward_model().save_pretrained(folder, tokenizer=make_tiny_tokenizer())
    with socket.socket() as probe:  # a local port nobody listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    with pytest.raises(
        HubUnreachableError, match=rf"Could not reach the Hugging Face Hub at {endpoint}.*HF_HUB_OFFLINE"
    ) as caught:
        push_saved_reward_model(folder, "alice/arm", token="hf_test")
    assert isinstance(caught.value, ConnectionError) and caught.value.__cause__ is not None
    with pytest.raises(HubUnreachableError, match="Could not reach the Hugging Face Hub"):
        _reward_model().push_to_hub("alice/arm", token="hf_test")

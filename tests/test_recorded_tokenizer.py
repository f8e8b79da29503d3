"""A reward model's recorded tokenizer wins at every entry point that takes a tokenizer for it (issue 23, item 2).

Also: the shared vocabulary of a mixed list of reward models (some recording a tokenizer, some plain causal LMs)
is decided over the whole list, so the refusal reads the same whatever the list's order.
"""

from __future__ import annotations

import pytest
import torch

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.cross_tokenizer import CrossTokenizerGenARMLogitsProcessor, cross_tokenizer_token_rewards
from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
from hf_genarm.visualize import score_text

RECORDED_WINS = r"is not the tokenizer .* records \(vocabulary size \d+ \(given\) vs \d+ \(recorded\)"


@pytest.fixture(scope="module")
def base_tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def metaspace_tokenizer():
    return make_tiny_metaspace_tokenizer()


@pytest.fixture(scope="module")
def metaspace_arm(metaspace_tokenizer):
    model = make_tiny_causal_lm("llama", vocab_size=len(metaspace_tokenizer), seed=1)
    return AutoregressiveRewardModel(model, tokenizer=metaspace_tokenizer).eval()


@pytest.fixture(scope="module")
def base_arm(base_tokenizer):
    return AutoregressiveRewardModel(make_tiny_causal_lm(seed=2), tokenizer=base_tokenizer).eval()


class CountingForwards:
    """Counts forwards of a module (a refusal must come before any)."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


def test_same_tokenizer_processor_refuses_a_tokenizer_that_contradicts_the_recorded_one(
    base_arm, base_tokenizer, metaspace_tokenizer
):
    counter = CountingForwards(base_arm)
    try:
        for tokenizer in (base_tokenizer, None):
            with pytest.raises(ValueError, match=r"`reward_model_tokenizers\[0\]` " + RECORDED_WINS) as error:
                GenARMLogitsProcessor(base_arm, tokenizer=tokenizer, reward_model_tokenizers=[metaspace_tokenizer])
            assert "`reward_models[0]`" in str(error.value) and "AutoTokenizer.from_pretrained" in str(error.value)
    finally:
        counter.handle.remove()
    assert counter.calls == 0
    # The recorded tokenizer itself, given again, is accepted.
    processor = GenARMLogitsProcessor(base_arm, tokenizer=base_tokenizer, reward_model_tokenizers=[base_tokenizer])
    assert processor.shared_vocab_size == len(base_tokenizer)


def test_cross_tokenizer_processor_refuses_a_tokenizer_that_contradicts_the_recorded_one(
    metaspace_arm, base_tokenizer, metaspace_tokenizer
):
    # Given the base's tokenizer, the processor used to take the same-tokenizer path and guide id by id.
    for wrong in (base_tokenizer, make_tiny_metaspace_tokenizer(vocab_size=150)):
        with pytest.raises(ValueError, match=r"`reward_model_tokenizers\[0\]` " + RECORDED_WINS):
            CrossTokenizerGenARMLogitsProcessor(
                metaspace_arm, tokenizer=base_tokenizer, reward_model_tokenizers=[wrong]
            )
    # Without a tokenizer given or saved, the base tokenizer is tried, and refused by the same rule.
    with pytest.raises(ValueError, match=r"The base tokenizer .*" + RECORDED_WINS + r".*reward_model_tokenizers\[0\]"):
        CrossTokenizerGenARMLogitsProcessor(metaspace_arm, tokenizer=base_tokenizer)
    processor = CrossTokenizerGenARMLogitsProcessor(
        metaspace_arm, tokenizer=base_tokenizer, reward_model_tokenizers=[metaspace_tokenizer]
    )
    assert processor.cross_tokenizer


def test_scoring_refuses_a_tokenizer_that_contradicts_the_recorded_one(metaspace_arm, base_tokenizer):
    with pytest.raises(ValueError, match=r"`tokenizer` " + RECORDED_WINS):
        score_text(metaspace_arm, base_tokenizer, "The cat", " sat")
    for per in ("base", "reward"):
        with pytest.raises(ValueError, match=r"`reward_tokenizer` " + RECORDED_WINS):
            cross_tokenizer_token_rewards(metaspace_arm, base_tokenizer, base_tokenizer, "The cat", " sat", per=per)


def test_scoring_cli_refuses_tokenizer_files_of_another_model(tmp_path, metaspace_arm, base_tokenizer, capsys):
    from hf_genarm.cli import main

    metaspace_arm.save_pretrained(tmp_path / "arm", tokenizer=make_tiny_metaspace_tokenizer())
    base_tokenizer.save_pretrained(tmp_path / "arm")  # another model's tokenizer written over the folder's
    assert main(["score", "--reward-model", str(tmp_path / "arm"), "--prompt", "The cat", "--response", " sat"]) != 0
    assert "differs from the tokenizer" in capsys.readouterr().err


def test_a_plain_causal_lm_records_nothing_and_takes_the_tokenizer_given(base_tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=3)).eval()
    tokens, rewards = score_text(reward_model, base_tokenizer, "The cat", " sat")
    assert tokens[-1] == base_tokenizer.eos_token and len(rewards) == len(tokens)


@pytest.mark.parametrize("order", ["recording-first", "plain-first"])
def test_a_mixed_list_is_refused_with_one_accurate_message_whatever_its_order(
    order, metaspace_arm, metaspace_tokenizer
):
    plain = make_tiny_causal_lm("llama", vocab_size=len(metaspace_tokenizer) - 16, seed=4)
    models = [metaspace_arm, plain] if order == "recording-first" else [plain, metaspace_arm]
    plain_index, recording_index = (1, 0) if order == "recording-first" else (0, 1)
    with pytest.raises(ValueError) as error:
        GenARMLogitsProcessor(models)
    message = str(error.value)
    assert message.startswith(f"`reward_models[{plain_index}]` (LlamaForCausalLM, recording no tokenizer) has ")
    assert f"fewer than the {len(metaspace_tokenizer)} tokens of the tokenizer `reward_models[{recording_index}]` " in (
        message
    )
    assert "reward_model_tokenizers=" in message


def test_reward_models_recording_different_tokenizers_are_refused_without_a_base_tokenizer(metaspace_arm, base_arm):
    with pytest.raises(ValueError, match=r"`reward_models\[0\]` and `reward_models\[1\]` use different tokenizers"):
        GenARMLogitsProcessor([base_arm, metaspace_arm])
    with torch.no_grad():
        assert GenARMLogitsProcessor([base_arm, base_arm]).shared_vocab_size == 400

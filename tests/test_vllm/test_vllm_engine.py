"""GenARM inside vLLM's offline engine against the `generate()` path, on one engine shared by the module.

`engine_kwargs` sets `logprobs_mode="processed_logprobs"` (the engine here takes vLLM's other settings only): a
guided request's returned log-probabilities are those vLLM samples from after the processor, which the
sampled-decoding test compares with `GenARMLogitsProcessor`'s scores.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import LLM, SamplingParams
from vllm.exceptions import VLLMValidationError

from hf_genarm.integrations.vllm import engine_kwargs, request_args

BETA = 0.5
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def llm(model_dirs, engine_options):
    engine = LLM(
        model=model_dirs["base"],
        max_model_len=256,
        **engine_kwargs({"rm_a": model_dirs["rm_a"], "rm_b": model_dirs["rm_b"]}),
        **engine_options,
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _greedy(alpha, beta=BETA, max_tokens=NEW_TOKENS, **options):
    extra_args = None if alpha is None else request_args(alpha, beta)
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, extra_args=extra_args, **options)


def _token_ids(outputs):
    return [list(output.outputs[0].token_ids) for output in outputs]


def test_greedy_batch_matches_generate(llm, reference, make_prompts):
    prompts = make_prompts(8, seed=0)
    # numpy numbers through `request_args`, which converts them; a dict travels as its JSON text.
    alphas = [[1.0, 0.0], [0.5, 0.5], [2.0, -1.0], None, [1.0, 1.0], [np.float32(0.25), np.int64(1)], 1.5, {"rm_b": 2}]
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(alpha) for alpha in alphas])
    by_name = {"rm_a": 0, "rm_b": 1}
    for ids, alpha, generated in zip(prompts, alphas, _token_ids(outputs)):
        if isinstance(alpha, dict):
            alpha = [alpha.get(name, 0.0) for name in by_name]
        elif isinstance(alpha, list):
            alpha = [float(weight) for weight in alpha]
        assert generated == reference.greedy(ids, alpha, BETA, NEW_TOKENS), (ids, alpha)


def test_guidance_changes_tokens_and_unguided_request_is_plain_vllm(llm, reference, make_prompts):
    prompts = make_prompts(4, seed=1)
    guided = _token_ids(llm.generate([{"prompt_token_ids": ids} for ids in prompts], _greedy([4.0, 0.0], beta=0.25)))
    plain = _token_ids(llm.generate([{"prompt_token_ids": ids} for ids in prompts], _greedy(None)))
    assert guided != plain, "the reward model never changed a token: the test would not see a missing processor"
    for ids, tokens in zip(prompts, plain):
        assert tokens == reference.greedy(ids, None, BETA, NEW_TOKENS)


def test_requests_joining_a_running_batch(llm, reference, make_prompts):
    """Requests submitted at different steps join (and leave) the running batch; each equals `generate()`."""
    engine = llm.llm_engine
    prompts = make_prompts(6, seed=2)
    alphas = [[1.0, 0.5], None, [0.0, 2.0], [1.0, -0.5], [0.7, 0.7], [3.0, 0.0]]
    lengths = [NEW_TOKENS, 5, 16, 3, 9, NEW_TOKENS]
    join_at_step = [0, 0, 2, 3, 5, 8]
    finished, step = {}, 0
    while len(finished) < len(prompts):
        for index, start in enumerate(join_at_step):
            if start == step:
                params = _greedy(alphas[index], max_tokens=lengths[index])
                engine.add_request(f"join-{index}", {"prompt_token_ids": prompts[index]}, params)
        for output in engine.step():
            if output.finished:
                finished[output.request_id] = list(output.outputs[0].token_ids)
        step += 1
    for index, ids in enumerate(prompts):
        assert finished[f"join-{index}"] == reference.greedy(ids, alphas[index], BETA, lengths[index])


def _assert_log_probs_match(reference, ids, completion, alpha):
    """vLLM's processed log-probabilities of a sampled completion equal the processor's scores, to 1e-4.

    vLLM's CPU kernels and transformers' differ by about 1e-6 in the logits; a sum of three log-softmaxes with
    weights up to 2 stays well within 1e-4.
    """
    expected = reference.guided_log_probs(ids, list(completion.token_ids), alpha, BETA)
    assert len(completion.logprobs) == len(completion.token_ids)
    for step, top in enumerate(completion.logprobs):
        for token_id, logprob in top.items():
            assert abs(logprob.logprob - expected[step, token_id].item()) < 1e-4, (step, token_id)


def _sampled(alpha, **options):
    return SamplingParams(temperature=1.0, logprobs=5, ignore_eos=True, extra_args=request_args(alpha, BETA), **options)


def test_sampled_log_probs_match_processor_scores(llm, reference, make_prompts):
    prompts = make_prompts(2, seed=3)
    alpha = [1.0, 0.5]
    params = _sampled(alpha, max_tokens=8, seed=1234)
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [params, params])
    for ids, output in zip(prompts, outputs):
        _assert_log_probs_match(reference, ids, output.outputs[0], alpha)


def test_parallel_sampling_stop_strings_and_max_tokens(llm, reference, make_prompts):
    ids = make_prompts(1, seed=4)[0]
    alpha = [1.0, 1.0]
    # n > 1: every child is guided through its own cache row.
    (output,) = llm.generate([{"prompt_token_ids": ids}], _sampled(alpha, n=3, max_tokens=6, seed=7))
    assert len(output.outputs) == 3
    assert len({tuple(child.token_ids) for child in output.outputs}) > 1
    for child in output.outputs:
        _assert_log_probs_match(reference, ids, child, alpha)
    expected = reference.greedy(ids, alpha, BETA, NEW_TOKENS)
    # max_tokens cuts the guided continuation short.
    (output,) = llm.generate([{"prompt_token_ids": ids}], _greedy(alpha, max_tokens=4))
    assert list(output.outputs[0].token_ids) == expected[:4]
    # A stop string ends the request early; what came before is unchanged.
    stop_text = reference.tokenizer.decode(expected[5:7])
    (output,) = llm.generate([{"prompt_token_ids": ids}], _greedy(alpha, stop=[stop_text]))
    tokens = list(output.outputs[0].token_ids)
    assert output.outputs[0].finish_reason == "stop"
    assert len(tokens) < NEW_TOKENS
    assert tokens == expected[: len(tokens)]


@pytest.mark.parametrize(
    ("extra_args", "argument"),
    [
        ({"genarm_alpha": [float("nan"), 1.0]}, "genarm_alpha[0]"),
        ({"genarm_alpha": "strong"}, "genarm_alpha"),
        ({"genarm_alpha": [np.float32(1.0), "2"]}, "genarm_alpha[1]"),
        ({"genarm_alpha": [1.0, np.float32(0.5)]}, "genarm_alpha[1]"),  # raw numpy: msgpack could not send it
        ({"genarm_alpha": 1.0, "genarm_beta": 0.0}, "genarm_beta"),
        ({"genarm_alpha": 1.0, "genarm_beta": -1.0}, "genarm_beta"),
        ({"genarm_beta": 1.0}, "genarm_alpha"),
    ],
)
def test_bad_request_arguments_are_refused_and_the_engine_keeps_serving(
    llm, reference, make_prompts, extra_args, argument
):
    ids = make_prompts(1, seed=5)[0]
    params = SamplingParams(max_tokens=4, temperature=0.0, extra_args=extra_args)
    with pytest.raises(VLLMValidationError, match=re.escape(f"`{argument}`")) as caught:
        llm.generate([{"prompt_token_ids": ids}], params)
    assert isinstance(caught.value.__cause__, ValueError)
    (output,) = llm.generate([{"prompt_token_ids": ids}], _greedy([1.0, 0.0], max_tokens=4))
    assert list(output.outputs[0].token_ids) == reference.greedy(ids, [1.0, 0.0], BETA, 4)


@pytest.mark.parametrize("alpha", [[1.0, 2.0, 3.0], {"rm_c": 1.0}])
def test_weights_the_engine_cannot_apply_are_served_unguided_and_the_engine_serves_on(
    llm, reference, make_prompts, alpha
):
    """vLLM's front end cannot count the engine's reward models: the worker serves such a request as plain vLLM."""
    ids = make_prompts(1, seed=7)[0]
    unguidable, guided = llm.generate([{"prompt_token_ids": ids}] * 2, [_greedy(alpha), _greedy([1.0, 0.0])])
    assert list(unguidable.outputs[0].token_ids) == reference.greedy(ids, None, BETA, NEW_TOKENS)
    assert list(guided.outputs[0].token_ids) == reference.greedy(ids, [1.0, 0.0], BETA, NEW_TOKENS)


def test_same_prompt_guided_and_unguided_in_one_batch(llm, make_prompts):
    """The same prompt with and without guidance in one batch: the unguided one equals a lone plain run."""
    ids = make_prompts(1, seed=6)[0]
    alone = _token_ids(llm.generate([{"prompt_token_ids": ids}], _greedy(None)))[0]
    mixed = _token_ids(
        llm.generate([{"prompt_token_ids": ids}] * 3, [_greedy([3.0, 0.0]), _greedy(None), _greedy([0.0, 3.0])])
    )
    assert mixed[1] == alone
    assert torch.tensor(mixed[0]).ne(torch.tensor(alone)).any()

"""A served base whose output head has padding rows beyond its tokenizer (as Qwen2.5's 151,936 rows for 151,665
tokens), on an engine of its own.

vLLM accepts prompt ids up to the model's rows, but a reward model's embedding ends with the tokenizer: the worker
serves a guided request whose prompt holds a padding-row id without guidance (it logs why), and the engine keeps
serving. Guided decoding on the padded base equals the `generate()` path.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import LLM, SamplingParams

from hf_genarm.integrations.vllm import engine_kwargs, request_args

from .conftest import HEAD_SCALE, Reference, make_model

TOKENIZER_SIZE = 400
MODEL_ROWS = 416
BETA = 0.5


@pytest.fixture(scope="module")
def padded_dirs(model_dirs, tmp_path_factory):
    from hf_genarm.testing import make_tiny_tokenizer

    folder = tmp_path_factory.mktemp("padded-base")
    make_model(seed=7, head_scale=HEAD_SCALE, vocab_size=MODEL_ROWS).save_pretrained(folder)
    make_tiny_tokenizer().save_pretrained(folder)
    return {"base": str(folder), "rm_a": model_dirs["rm_a"]}


@pytest.fixture(scope="module")
def llm(padded_dirs, engine_options):
    engine = LLM(model=padded_dirs["base"], max_model_len=256, **engine_kwargs([padded_dirs["rm_a"]]), **engine_options)
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _greedy(alpha, max_tokens=8):
    extra_args = None if alpha is None else request_args(alpha, BETA)
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, extra_args=extra_args)


def test_guided_decoding_on_a_padded_base_matches_generate(llm, padded_dirs, make_prompts):
    reference = Reference(padded_dirs, ["rm_a"])
    prompts = make_prompts(4, seed=31)
    alphas = [1.0, 2.0, -0.5, 0.7]
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(alpha) for alpha in alphas])
    for ids, alpha, output in zip(prompts, alphas, outputs):
        generated = list(output.outputs[0].token_ids)
        assert max(generated) < TOKENIZER_SIZE
        assert generated == reference.greedy(ids, [alpha], BETA, 8), (ids, alpha)


def test_guided_prompt_with_a_padding_row_id_is_served_unguided_and_the_engine_serves_on(
    llm, padded_dirs, make_prompts
):
    reference = Reference(padded_dirs, ["rm_a"])
    outside = [5, TOKENIZER_SIZE + 5, 7]
    inside = make_prompts(1, seed=32)[0]
    asked, plain, guided = llm.generate(
        [{"prompt_token_ids": outside}, {"prompt_token_ids": outside}, {"prompt_token_ids": inside}],
        [_greedy(1.0, max_tokens=3), _greedy(None, max_tokens=3), _greedy(1.0, max_tokens=3)],
    )
    assert len(plain.outputs[0].token_ids) == 3  # vLLM itself serves such a prompt
    assert list(asked.outputs[0].token_ids) == list(plain.outputs[0].token_ids)
    assert list(guided.outputs[0].token_ids) == reference.greedy(inside, [1.0], BETA, 3)

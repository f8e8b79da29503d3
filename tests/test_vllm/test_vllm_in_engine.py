"""Reward models as vLLM model code inside the engine (`engine_kwargs(..., mode="in_engine")`) against `generate()`.

One cramped engine serves the module, so vLLM does what it does under load: 8 KV blocks of 128 tokens (vLLM-CPU's
block size; `num_gpu_blocks_override` counts blocks) for up to 32 running requests, so requests growing into a second
block preempt others (recomputed later), 48 batched tokens per step (chunked prefill), and prefix caching on.
It serves three reward models of different shapes beside the base (19.3M-parameter-style tiny Llamas): one of the
base's shape, a quarter-width one (weak-to-strong) and a wider one whose KV heads differ from the base's, so its
layers take pages of another size in the same cache (vLLM's `UniformTypeKVCacheSpecs`).
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

from vllm import LLM, SamplingParams
from vllm.model_executor.layers.attention import Attention

from hf_genarm import AutoregressiveRewardModel
from hf_genarm.integrations.vllm import engine_kwargs, request_args
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

from .conftest import HEAD_SCALE, Reference

BETA = 0.5
NAMES = ["rm_a", "rm_small", "rm_wide"]


def _save_reward_model(model, folder) -> str:
    with torch.no_grad():
        model.lm_head.weight.mul_(HEAD_SCALE)
    tokenizer = make_tiny_tokenizer()
    AutoregressiveRewardModel(model.eval(), tokenizer=tokenizer).save_pretrained(folder, tokenizer)
    return str(folder)


@pytest.fixture(scope="module")
def dirs(model_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm-in-engine-models")
    small = make_tiny_causal_lm("llama", hidden_size=64, num_heads=1, num_layers=2, seed=11)  # head_dim 64, 1 KV head
    wide = make_tiny_causal_lm("llama", hidden_size=256, num_heads=4, num_layers=3, seed=12)  # head_dim 64, 2 KV heads
    return {
        "base": model_dirs["base"],
        "rm_a": model_dirs["rm_a"],
        "rm_small": _save_reward_model(small, root / "rm_small"),
        "rm_wide": _save_reward_model(wide, root / "rm_wide"),
    }


@pytest.fixture(scope="module")
def reference(dirs):
    return Reference(dirs, NAMES)


@pytest.fixture(scope="module", autouse=True)
def _functions_reach_the_worker():
    """`apply_model` sends a function to the worker; vLLM sends functions only when allowed to pickle (this module
    only: the setting is restored after it)."""
    saved = os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION")
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
    yield
    if saved is None:
        os.environ.pop("VLLM_ALLOW_INSECURE_SERIALIZATION")
    else:
        os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = saved


@pytest.fixture(scope="module")
def llm(dirs, engine_options):
    engine = LLM(
        model=dirs["base"],
        max_model_len=256,
        max_num_seqs=32,
        num_gpu_blocks_override=8,
        max_num_batched_tokens=48,
        enable_chunked_prefill=True,
        enable_prefix_caching=True,
        disable_log_stats=False,
        **engine_kwargs({name: dirs[name] for name in NAMES}, mode="in_engine"),
        **engine_options,
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _greedy(alpha, max_tokens: int):
    extra_args = None if alpha is None else request_args(alpha, BETA)
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, extra_args=extra_args)


def _weights(alpha):
    """A request's `alpha` as `GenARMLogitsProcessor` takes it (one weight per reward model, in order)."""
    if isinstance(alpha, dict):
        return [alpha.get(name, 0.0) for name in NAMES]
    return alpha


def _attention_caches(model) -> dict[str, tuple[str, tuple[int, ...]]]:
    """In the worker: the model's class and each attention layer's bound KV-cache shape."""
    return {
        name: (type(model).__name__, tuple(module.kv_cache.shape))
        for name, module in model.named_modules()
        if isinstance(module, Attention)
    }


def _metric(llm, name: str) -> float:
    return sum(getattr(metric, "value", 0) for metric in llm.get_metrics() if metric.name == name)


def test_reward_models_are_layers_of_the_engines_kv_cache(llm):
    (caches,) = llm.apply_model(_attention_caches)
    assert {kind for kind, _ in caches.values()} == {"GenARMForCausalLM"}
    layers = {prefix: [name for name in caches if name.startswith(prefix)] for prefix in ("base.", "reward_models.")}
    assert len(layers["base."]) == 2
    assert len(layers["reward_models."]) == 2 + 2 + 3  # rm_a, rm_small, rm_wide
    for name in layers["reward_models."]:
        assert caches[name][1] and torch.Size(caches[name][1]).numel() > 0, name
    # The wide reward model has two KV heads, the base one: pages of another size, in the same number of blocks.
    base_shape = caches[layers["base."][0]][1]
    wide_shape = caches[next(name for name in caches if name.startswith("reward_models.arm_2."))][1]
    assert base_shape != wide_shape


def test_greedy_batch_matches_generate(llm, reference, make_prompts):
    prompts = make_prompts(8, seed=20, max_length=96)  # prompts over 48 tokens are prefilled in chunks
    alphas = [
        [1.0, 0.0, 0.0],
        [0.0, 1.5, 0.0],
        [0.0, 0.0, 1.0],
        None,
        [1.0, 0.5, -0.5],
        0.7,
        {"rm_wide": 2.0},
        [2, 1, 1],
    ]
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(alpha, 12) for alpha in alphas])
    plain = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(None, 12)] * len(prompts))
    changed = 0
    for ids, alpha, output, unguided in zip(prompts, alphas, outputs, plain):
        tokens = list(output.outputs[0].token_ids)
        assert tokens == reference.greedy(ids, _weights(alpha), BETA, 12), (len(ids), alpha)
        changed += tokens != list(unguided.outputs[0].token_ids)
    assert changed >= 4, "guidance changed too few generations for this test to see missing reward models"


def test_requests_join_leave_and_abort(llm, reference, make_prompts):
    """Requests join the running batch at different steps; one is aborted mid-way; the others equal `generate()`."""
    engine = llm.llm_engine
    prompts = make_prompts(6, seed=21, max_length=70)
    alphas = [[1.0, 0.5, 0.0], None, [0.0, 2.0, 0.5], [1.0, -0.5, 1.0], [0.7, 0.7, 0.7], [3.0, 0.0, 0.0]]
    lengths = [12, 5, 16, 3, 9, 12]
    join_at_step = [0, 0, 2, 3, 5, 8]
    aborted, abort_at_step = "join-2", 6
    finished, step = {}, 0
    while step <= max(join_at_step) or engine.has_unfinished_requests():
        for index, start in enumerate(join_at_step):
            if start == step:
                engine.add_request(
                    f"join-{index}", {"prompt_token_ids": prompts[index]}, _greedy(alphas[index], lengths[index])
                )
        if step == abort_at_step:
            engine.abort_request([aborted])
        for output in engine.step():
            if output.finished:
                finished[output.request_id] = list(output.outputs[0].token_ids)
        step += 1
    for index, ids in enumerate(prompts):
        if f"join-{index}" != aborted:
            assert finished[f"join-{index}"] == reference.greedy(ids, alphas[index], BETA, lengths[index]), index
    assert len(finished.get(aborted, [])) < lengths[2]


def test_preempted_requests_equal_generate(llm, reference, make_prompts):
    """Requests growing past 128 tokens overflow the 8 blocks: vLLM preempts some and recomputes them later."""
    prompts = make_prompts(32, seed=22, min_length=100, max_length=200)
    generator = torch.Generator().manual_seed(22)
    alphas = [None if index % 7 == 3 else (torch.rand(3, generator=generator) * 3 - 1).tolist() for index in range(32)]
    preempted_before = _metric(llm, "vllm:num_preemptions")
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(alpha, 24) for alpha in alphas])
    assert _metric(llm, "vllm:num_preemptions") > preempted_before, "the engine preempted nothing: not a test of it"
    mismatches = [
        index
        for index, (ids, alpha, output) in enumerate(zip(prompts, alphas, outputs))
        if list(output.outputs[0].token_ids) != reference.greedy(ids, alpha, BETA, 24)
    ]
    assert not mismatches


def test_sampled_log_probs_match_processor_scores(llm, reference, make_prompts):
    """vLLM's processed log-probabilities equal `GenARMLogitsProcessor`'s scores (vLLM's kernels vs transformers')."""
    alpha = [1.0, 0.5, -0.5]
    params = SamplingParams(
        temperature=1.0, logprobs=5, ignore_eos=True, max_tokens=8, seed=5, extra_args=request_args(alpha, BETA)
    )
    for ids in make_prompts(2, seed=23):
        (output,) = llm.generate([{"prompt_token_ids": ids}], params)
        completion = output.outputs[0]
        expected = reference.guided_log_probs(ids, list(completion.token_ids), alpha, BETA)
        for step, top in enumerate(completion.logprobs):
            for token_id, logprob in top.items():
                assert abs(logprob.logprob - expected[step, token_id].item()) < 1e-4, (step, token_id)


# ------------------------------------------------------------------------------ choosing the mode, no engine
def test_engine_kwargs_in_engine_mode(dirs):
    kwargs = engine_kwargs({"rm_a": dirs["rm_a"]}, mode="in_engine")
    assert kwargs["hf_overrides"] == {"architectures": ["GenARMForCausalLM"]}
    assert kwargs["additional_config"]["genarm"]["mode"] == "in_engine"
    assert "hf_overrides" not in engine_kwargs({"rm_a": dirs["rm_a"]})  # the default stays beside the engine
    with pytest.raises(ValueError, match="`mode` is 'inside'"):
        engine_kwargs({"rm_a": dirs["rm_a"]}, mode="inside")


@pytest.fixture(scope="module")
def qwen_reward_model(tmp_path_factory):
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_causal_lm("qwen2", hidden_size=128, num_heads=2)
    folder = tmp_path_factory.mktemp("vllm-in-engine-qwen") / "rm_qwen"
    AutoregressiveRewardModel(model, tokenizer=tokenizer).save_pretrained(folder, tokenizer)
    return str(folder)


def test_in_engine_mode_refuses_what_cannot_run_there(dirs, qwen_reward_model):
    with pytest.raises(ValueError, match=r"reward model 'rm_qwen'.*architecture \['Qwen2ForCausalLM'\]"):
        engine_kwargs({"rm_qwen": qwen_reward_model}, mode="in_engine")
    with pytest.raises(ValueError, match="places the reward models outside the engine"):
        engine_kwargs({"rm_a": dirs["rm_a"]}, device="cpu", mode="in_engine")


def test_auto_mode_falls_back_beside_the_engine_and_says_why(dirs, qwen_reward_model, caplog):
    assert engine_kwargs({"rm_a": dirs["rm_a"]}, mode="auto")["additional_config"]["genarm"]["mode"] == "in_engine"
    with caplog.at_level(logging.WARNING, logger="hf_genarm.integrations.vllm"):
        kwargs = engine_kwargs({"rm_a": dirs["rm_a"], "rm_qwen": qwen_reward_model}, mode="auto")
    assert "mode" not in kwargs["additional_config"]["genarm"]
    assert "hf_overrides" not in kwargs
    assert "'rm_qwen'" in caplog.text and "Qwen2ForCausalLM" in caplog.text


def test_prefix_cache_hits_equal_generate(llm, reference, make_prompts):
    """A prompt seen before reads its first block (base and reward models alike) from vLLM's prefix cache."""
    (ids,) = make_prompts(1, seed=24, min_length=150, max_length=180)
    first = llm.generate([{"prompt_token_ids": ids}], _greedy([1.0, 0.0, 0.0], 8))
    hits_before = _metric(llm, "vllm:prefix_cache_hits")
    second = llm.generate([{"prompt_token_ids": ids}], _greedy([0.0, 1.0, 1.0], 8))
    assert _metric(llm, "vllm:prefix_cache_hits") >= hits_before + 128
    assert list(first[0].outputs[0].token_ids) == reference.greedy(ids, [1.0, 0.0, 0.0], BETA, 8)
    assert list(second[0].outputs[0].token_ids) == reference.greedy(ids, [0.0, 1.0, 1.0], BETA, 8)


def test_server_command_in_engine_mode(dirs):
    from hf_genarm.integrations._vllm_settings import server_command

    command = server_command(dirs["base"], {"rm_a": dirs["rm_a"]}, mode="in_engine")
    assert command[command.index("--hf-overrides") + 1] == '{"architectures": ["GenARMForCausalLM"]}'
    assert '"mode": "in_engine"' in command[command.index("--additional-config") + 1]
    assert "--hf-overrides" not in server_command(dirs["base"], {"rm_a": dirs["rm_a"]})


def _reward_model_shard_rows(model) -> int:
    """In a worker: rows of the first reward model's fused QKV projection held by this rank."""
    return model.reward_models["arm_0"].model.layers[0].self_attn.qkv_proj.output_size_per_partition


def test_tensor_parallel_two_shards_the_reward_models_and_equals_generate(dirs, engine_options, make_prompts):
    """Tensor parallel 2 on CPU (one core per rank: vLLM-CPU binds each rank's threads to its own NUMA node unless
    told which cores): each rank holds half of the reward model's projections; greedy tokens equal `generate()`."""
    saved = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "0|1"
    try:
        llm = LLM(
            model=dirs["base"],
            max_model_len=256,
            tensor_parallel_size=2,
            **engine_kwargs({"rm_a": dirs["rm_a"], "rm_wide": dirs["rm_wide"]}, mode="in_engine"),
            **engine_options,
        )
    finally:
        if saved is None:
            os.environ.pop("VLLM_CPU_OMP_THREADS_BIND")
        else:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = saved
    try:
        # rm_a: query heads 2 -> 1 per rank, its one KV head replicated: (1 + 2 * 1) * 64 rows, not (2 + 2) * 64.
        assert llm.apply_model(_reward_model_shard_rows) == [(1 + 2 * 1) * 64] * 2
        reference = Reference(dirs, ["rm_a", "rm_wide"])
        prompts = make_prompts(4, seed=25, max_length=60)
        alphas = [[1.0, 0.0], [0.0, 1.0], None, [1.0, -0.5]]
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], [_greedy(a, 12) for a in alphas])
        for ids, alpha, output in zip(prompts, alphas, outputs):
            assert list(output.outputs[0].token_ids) == reference.greedy(ids, alpha, BETA, 12), alpha
    finally:
        llm.llm_engine.engine_core.shutdown()


def test_in_engine_tokenizer_check_is_the_processors(model_dirs, reference):
    """The in-engine model checks reward-model tokenizers when the engine builds it, with `GenARMLogitsProcessor`'s
    check and message (called here on vLLM-like configurations: building the model needs a running engine)."""
    from types import SimpleNamespace

    from hf_genarm import GenARMLogitsProcessor
    from hf_genarm.integrations._vllm_engine_model import _check_vocabularies
    from hf_genarm.integrations._vllm_settings import _ServingSettings

    def config(path, rows=400):
        return SimpleNamespace(tokenizer=path, tokenizer_revision=None, get_vocab_size=lambda: rows)

    names = ["rm_a", "rm_other_tokenizer"]
    settings = _ServingSettings({name: model_dirs[name] for name in names}, mode="in_engine")
    with pytest.raises(ValueError) as refused:
        _check_vocabularies(settings, [config(model_dirs[name]) for name in names], config(model_dirs["base"]))
    other = AutoregressiveRewardModel.from_pretrained(model_dirs["rm_other_tokenizer"])
    with pytest.raises(ValueError) as expected:
        GenARMLogitsProcessor([reference.reward_models[0], other], tokenizer=reference.tokenizer)
    assert str(refused.value) == str(expected.value)
    assert (
        _check_vocabularies(
            settings.__class__({"rm_a": model_dirs["rm_a"]}), [config(model_dirs["rm_a"])], config(model_dirs["base"])
        )
        == 400
    )


def test_in_engine_setting_without_the_engine_model_is_refused_at_start(dirs):
    """`mode='in_engine'` in the settings but no `hf_overrides`: the processor refuses when the engine starts."""
    from types import SimpleNamespace

    from hf_genarm.integrations.vllm import GenARMVLLMLogitsProcessor

    kwargs = engine_kwargs({"rm_a": dirs["rm_a"]}, mode="in_engine")
    model_config = SimpleNamespace(architectures=["LlamaForCausalLM"], enable_prompt_embeds=False)
    config = SimpleNamespace(model_config=model_config, additional_config=kwargs["additional_config"])
    with pytest.raises(ValueError, match="hf_overrides"):
        GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)
    model_config.architectures = kwargs["hf_overrides"]["architectures"]
    GenARMVLLMLogitsProcessor(config, torch.device("cpu"), False)  # the in-engine model then feeds it


def test_server_in_engine_mode_equals_generate(dirs, engine_options, reference, make_prompts, tmp_path):
    """vLLM's server started by `server_command(..., mode="in_engine")`: its API server resolves the in-engine
    architecture through hf-genarm's `vllm.general_plugins` entry point; greedy tokens equal `generate()`."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    from process_group import started_in_own_group

    from hf_genarm.integrations._vllm_settings import server_command

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--dtype", engine_options["dtype"], "--enforce-eager", "--max-model-len", "256", "--seed", "0"]
    options += ["--gpu-memory-utilization", str(engine_options["gpu_memory_utilization"]), "--port", str(port)]
    command = server_command(
        dirs["base"],
        {name: dirs[name] for name in NAMES},
        mode="in_engine",
        server_args=["--host", "127.0.0.1", *options],
    )
    url, log_path = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with (
        open(log_path, "wb") as log,
        started_in_own_group(command, grace=60, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        deadline = time.monotonic() + 600
        while True:
            assert process.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except OSError:
                time.sleep(2)
        for ids, alpha in zip(make_prompts(2, seed=26), [[1.0, 0.5, 0.0], {"rm_small": 2.0}]):
            body = {
                "model": dirs["base"], "prompt": ids, "max_tokens": 10, "temperature": 0.0, "ignore_eos": True,
                "return_token_ids": True, "vllm_xargs": request_args(alpha, BETA),
            }  # fmt: skip
            request = urllib.request.Request(
                f"{url}/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.load(response)
            assert answer["choices"][0]["token_ids"] == reference.greedy(ids, _weights(alpha), BETA, 10), alpha
    assert "Resolved architecture: GenARMForCausalLM" in log_path.read_text()


def test_lora_adapter_reward_model_is_merged_into_the_engine(model_dirs, engine_options, make_prompts, tmp_path):
    """A PEFT adapter folder runs inside the engine as its backbone with the adapter merged; equals `generate()`
    with the adapter unmerged."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    backbone = AutoModelForCausalLM.from_pretrained(model_dirs["rm_a"])
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    tokenizer = make_tiny_tokenizer()
    adapter = AutoregressiveRewardModel(get_peft_model(backbone, lora), tokenizer=tokenizer)
    adapter.save_pretrained(tmp_path / "rm_lora", tokenizer)
    kwargs = engine_kwargs({"rm_lora": str(tmp_path / "rm_lora")}, mode="in_engine")
    llm = LLM(model=model_dirs["base"], max_model_len=256, **kwargs, **engine_options)
    try:
        reference = Reference({**model_dirs, "rm_lora": str(tmp_path / "rm_lora")}, ["rm_lora"])
        assert reference.reward_models[0].is_peft_model
        with_backbone = Reference(model_dirs, ["rm_a"])
        prompts = make_prompts(4, seed=27, max_length=60)
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], _greedy(2.0, 12))
        differs = 0
        for ids, output in zip(prompts, outputs):
            tokens = list(output.outputs[0].token_ids)
            assert tokens == reference.greedy(ids, [2.0], BETA, 12)
            differs += tokens != with_backbone.greedy(ids, [2.0], BETA, 12)
        assert differs, "the adapter changed no generation: the test could not tell it was merged"
    finally:
        llm.llm_engine.engine_core.shutdown()

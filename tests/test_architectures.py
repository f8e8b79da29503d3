"""Reward models of every kind of decoder-only architecture transformers ships, in every decoding mode.

Each step of each mode is compared with a brute-force reference (a full forward over the whole prefix, no
cache) in float32. To cover a new family, add one tiny config to `REWARD_MODEL_CONFIGS`.
"""

import itertools

import pytest
import torch
import transformers
from test_logits_process import PROMPTS, Recorder, assert_every_step_matches
from transformers import AutoModelForCausalLM, LogitsProcessorList

from hf_genarm import GenARMLogitsProcessor
from hf_genarm._reward_stream import RECURRENT_GEMMA_MIN_TRANSFORMERS, TRANSFORMERS_VERSION
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

SPECIAL = {"vocab_size": 400, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}
ATTENTION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
# A window of 4 positions: every generation below runs past it, so the windowed layers drop states.
WINDOW = 4

# name -> (config class, its arguments). One family per kind of layer the reward model's cache holds.
REWARD_MODEL_CONFIGS = {
    # learned absolute positions
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4}),
    # rotary positions, full attention
    "llama": ("LlamaConfig", ATTENTION),
    # ALiBi
    "bloom": ("BloomConfig", {"hidden_size": 32, "n_layer": 2, "n_head": 4}),
    "falcon-alibi": (
        "FalconConfig",
        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "alibi": True},
    ),
    # sliding window on every layer
    "mistral-sliding": ("MistralConfig", {**ATTENTION, "sliding_window": WINDOW}),
    # sliding and full attention layers alternating
    "gemma2": ("Gemma2Config", {**ATTENTION, "head_dim": 8, "sliding_window": WINDOW}),
    "gemma3": (
        "Gemma3TextConfig",
        {
            **ATTENTION,
            "head_dim": 8,
            "sliding_window": WINDOW,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "cohere2": (
        "Cohere2Config",
        {**ATTENTION, "sliding_window": WINDOW, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    "olmo3": (
        "Olmo3Config",
        {**ATTENTION, "sliding_window": WINDOW, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    # state-space layers only
    "mamba": ("MambaConfig", {"hidden_size": 16, "num_hidden_layers": 2, "state_size": 4, "expand": 2}),
    "falcon-mamba": ("FalconMambaConfig", {"hidden_size": 16, "num_hidden_layers": 2, "state_size": 4, "expand": 2}),
    "mamba2": (
        "Mamba2Config",
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "state_size": 8,
            "expand": 2,
            "num_heads": 8,
            "head_dim": 8,
            "n_groups": 1,
            "chunk_size": 16,
        },
    ),
    # convolution and attention layers
    "lfm2": ("Lfm2Config", {**ATTENTION, "layer_types": ["conv", "full_attention"]}),
    # state-space and attention layers
    "jamba": (
        "JambaConfig",
        {
            **ATTENTION,
            "attn_layer_period": 2,
            "attn_layer_offset": 1,
            "expert_layer_period": 2,
            "expert_layer_offset": 1,
            "num_experts": 1,
            "mamba_d_state": 4,
            "mamba_expand": 2,
            "mamba_dt_rank": 4,
        },
    ),
    "bamba": (
        "BambaConfig",
        {
            **ATTENTION,
            "attn_layer_indices": [1],
            "mamba_n_heads": 8,
            "mamba_d_head": 8,
            "mamba_d_state": 8,
            "mamba_n_groups": 1,
            "mamba_chunk_size": 16,
            "mamba_expand": 2,
        },
    ),
    # gated delta-rule linear attention and full attention
    "qwen3-next": (
        "Qwen3NextConfig",
        {
            **ATTENTION,
            "head_dim": 8,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_num_value_heads": 4,
            "linear_num_key_heads": 2,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "num_experts": 2,
            "num_experts_per_tok": 1,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 32,
        },
    ),
    # hybrid layers: a state-space mixer and attention side by side in every layer
    "falcon-h1": (
        "FalconH1Config",
        {
            **ATTENTION,
            "mamba_d_ssm": 32,
            "mamba_n_heads": 4,
            "mamba_d_head": 8,
            "mamba_n_groups": 1,
            "mamba_d_state": 8,
            "mamba_chunk_size": 16,
            "mamba_expand": 1,
        },
    ),
    # state-space layers and hybrid layers (a state-space layer followed by a shared attention block)
    "zamba2": (
        "Zamba2Config",
        {
            **ATTENTION,
            "num_key_value_heads": 4,
            "layers_block_type": ["mamba", "hybrid"],
            "mamba_d_state": 8,
            "mamba_expand": 2,
            "n_mamba_heads": 8,
            "mamba_ngroups": 1,
            "chunk_size": 16,
            "num_mem_blocks": 1,
            "adapter_rank": 4,
        },
    ),
    # recurrent blocks whose state lives on the modules, and local attention
    "recurrent-gemma": (
        "RecurrentGemmaConfig",
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "lru_width": 32,
            "attention_window_size": WINDOW,
            "block_types": ["recurrent", "attention"],
        },
    ),
}

MODES = ["greedy", "sampling", "beam_search", "assisted", "batch_vs_single"]
NEW_TOKENS = 7


def make_reward_model(name):
    config_class, arguments = REWARD_MODEL_CONFIGS[name]
    config = getattr(transformers, config_class)(**arguments, **SPECIAL)
    torch.manual_seed(1)
    return AutoModelForCausalLM.from_config(config).float().eval()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def base():
    return make_tiny_causal_lm("llama", seed=0, hidden_size=48)


def generate(base, inputs, processor, **kwargs):
    return base.generate(
        **inputs,
        logits_processor=LogitsProcessorList([processor]),
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        pad_token_id=0,
        **kwargs,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("architecture", list(REWARD_MODEL_CONFIGS))
def test_reward_model_architecture_equals_brute_force(architecture, mode, base, tokenizer):
    reward_model = make_reward_model(architecture)
    if architecture == "recurrent-gemma" and TRANSFORMERS_VERSION < RECURRENT_GEMMA_MIN_TRANSFORMERS:
        # Older transformers (the declared floor, .ci/floor): refused up front instead of drifting.
        with pytest.raises(ValueError, match=r"RecurrentGemma model.*transformers >= 5\.23"):
            GenARMLogitsProcessor(reward_model, alpha=1.5, tokenizer=tokenizer)
        return
    weight = 1.5
    if mode == "batch_vs_single":
        inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
        told = {"attention_mask": inputs["attention_mask"], "tokenizer": tokenizer}
        batched = generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=weight, **told))
        for row, prompt in enumerate(PROMPTS):
            single = tokenizer([prompt], return_tensors="pt")
            alone = generate(base, single, GenARMLogitsProcessor(reward_model, alpha=weight, tokenizer=tokenizer))
            assert torch.equal(batched[row, -NEW_TOKENS:], alone[0, -NEW_TOKENS:]), f"row {row}"
        return
    if mode == "assisted":
        inputs = tokenizer([PROMPTS[0]], return_tensors="pt")
        assistant = make_tiny_causal_lm(seed=9)
        # A random assistant proposing three tokens at a time: most candidates are rejected and cropped.
        assistant.generation_config.assistant_confidence_threshold = 0.0
        assistant.generation_config.num_assistant_tokens = 3
        assistant.generation_config.num_assistant_tokens_schedule = "constant"
        plain = generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=weight), do_sample=False)
        recorder = Recorder(GenARMLogitsProcessor(reward_model, alpha=weight))
        assisted = generate(base, inputs, recorder, assistant_model=assistant, do_sample=False)
        assert torch.equal(assisted, plain)
        lengths = [call[0].shape[1] for call in recorder.calls]
        assert any(later < earlier for earlier, later in itertools.pairwise(lengths)), "no candidate was taken back"
    else:
        inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
        recorder = Recorder(
            GenARMLogitsProcessor(
                reward_model, alpha=weight, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
            )
        )
        decoding = {
            "greedy": {"do_sample": False},
            "sampling": {"do_sample": True, "top_k": 0},
            "beam_search": {"do_sample": False, "num_beams": 3},
        }[mode]
        torch.manual_seed(3)
        generate(base, inputs, recorder, **decoding)
        assert len(recorder.calls) == NEW_TOKENS
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[weight]]), inputs["attention_mask"])


def each_row_alone_log_probs(model, input_ids, prompt_mask):
    """Next-token log-probs of each row run alone, without its padding, in a full forward: float32, CPU."""
    rows = []
    for row, row_prompt_mask in zip(input_ids, prompt_mask.bool()):
        keep = torch.cat([row_prompt_mask, row_prompt_mask.new_ones(row.shape[0] - row_prompt_mask.shape[0])])
        with torch.no_grad():
            logits = model(input_ids=row[keep][None], use_cache=False).logits[0, -1]
        rows.append(torch.log_softmax(logits.float(), dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize("architecture", ["falcon-h1", "zamba2", "jamba", "bamba"])
def test_hybrid_reward_model_on_a_left_padded_batch_equals_each_row_run_alone(architecture, base, tokenizer):
    # A hybrid layer holds a state-space state and attention keys side by side; at each decoding step its
    # attention needs the mask of the whole row, or the padded row's new token attends to the padding.
    reward_model = make_reward_model(architecture)
    inputs = tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)
    assert not inputs["attention_mask"].all(), "the batch must hold left padding"
    weight = 1.0
    processor = GenARMLogitsProcessor(
        reward_model, alpha=weight, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    recorder = Recorder(processor)
    generate(base, inputs, recorder, do_sample=False)
    assert len(recorder.calls) == NEW_TOKENS
    for input_ids, scores, output in recorder.calls:
        expected = torch.log_softmax(scores.float(), dim=-1)
        expected += weight * each_row_alone_log_probs(reward_model, input_ids, inputs["attention_mask"])
        finite = torch.isfinite(expected)
        assert torch.equal(finite, torch.isfinite(output))
        torch.testing.assert_close(output[finite], expected[finite], atol=1e-5, rtol=0)

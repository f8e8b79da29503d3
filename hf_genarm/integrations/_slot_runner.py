"""A reward model decoding many independent requests at once, each in its own slot-cache row.

Engine-side guidance (vLLM) sees requests join, advance and leave at every step, each at its own length. The
runner keeps one `SlotKVCache` row per request and the row's latest next-token log-probabilities, and advances any
subset of rows in one batched forward with per-row positions and an explicit 4-D mask. Nothing here imports an
engine: the vLLM processor drives it, and `benchmarks/bench_vllm.py` times it alone.
"""

from __future__ import annotations

import torch

from ..combine import shared_log_probs
from ..model_caller import ModelCaller, innermost_transformers_model
from ..modeling import AutoregressiveRewardModel
from ._grouped_attention import GROUPED_DECODE_ATTENTION
from ._slot_cache import SlotKVCache, slot_attention_mask


def load_served_reward_model(path: str, dtype: torch.dtype, device: torch.device) -> AutoregressiveRewardModel:
    """A reward model as each worker runs it: in eval mode, its `sdpa` attention reading grouped KV heads as cached.

    The grouped attention is the same computation as `sdpa` without its per-step copy of the cache (see
    `_grouped_attention`); the processor owns the models it loads, so switching their attention affects nothing else.
    """
    model = AutoregressiveRewardModel.from_pretrained(path, dtype=dtype).to(device).eval()
    inner = innermost_transformers_model(model)
    # Models whose attention layers do not dispatch through transformers' attention interface keep their own.
    if inner.config._attn_implementation == "sdpa" and type(inner).is_backend_compatible():
        inner.set_attn_implementation(GROUPED_DECODE_ATTENTION)
    return model


class SlotRewardModelRunner(ModelCaller):
    """One reward model, its per-request KV rows and each row's latest next-token log-probabilities.

    Rows are the caller's to assign (the vLLM processor keeps its live requests in rows `0 .. n-1`). `reserve`
    makes room, `step` feeds tokens to some rows at their own columns and returns their next-token log-probs,
    `move_row` relocates a request, `release` frees everything.

    Args:
        model (`torch.nn.Module`): A transformers causal LM, or an `AutoregressiveRewardModel` / PEFT model around
            one, with full attention in every layer.
        vocab_size (`int`): Columns of the returned log-probabilities (the shared tokenizer's size; padded rows of
            the output head are dropped before the softmax).

    Raises:
        ValueError: If the model has sliding-window or linear-attention layers, or if it cannot decode rows at
            their own positions: on construction the runner decodes two rows of different lengths through its cache
            and compares them with full forwards, so a model that fails or disagrees is refused before any request.

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm.integrations._slot_runner import SlotRewardModelRunner
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> runner = SlotRewardModelRunner(make_tiny_causal_lm("llama"), vocab_size=400)
    >>> prompts = torch.tensor([[5, 6, 7], [8, 9, 0]])  # two requests of 3 and 2 tokens, right-padded
    >>> runner.reserve(rows=2, length=3)
    >>> start = runner.step(torch.arange(2), prompts, torch.zeros(2, dtype=torch.long), 3, torch.tensor([2, 1]))
    >>> runner.reserve(rows=2, length=4)  # then one new token each, at columns 3 and 2
    >>> runner.step(None, torch.tensor([[11], [12]]), torch.tensor([3, 2]), 4, torch.zeros(2, dtype=torch.long)).shape
    torch.Size([2, 400])
    ```
    """

    def __init__(self, model: torch.nn.Module, vocab_size: int) -> None:
        super().__init__(model)
        self.vocab_size = vocab_size
        inner = innermost_transformers_model(model)
        layer_types = set(getattr(inner.config, "layer_types", None) or ["full_attention"])
        if layer_types != {"full_attention"}:
            raise ValueError(
                f"Reward model {inner.config.name_or_path!r} has {sorted(layer_types)} layers; the vLLM integration "
                "runs reward models with full attention only (sliding-window or linear-attention layers are refused)."
            )
        self.dtype = next(model.parameters()).dtype
        self.cache = SlotKVCache()
        self.log_probs = torch.empty(0, vocab_size, device=self.device)
        self._check_against_full_forwards(inner)

    @torch.inference_mode()
    def _check_against_full_forwards(self, inner: torch.nn.Module) -> None:
        """Refuse a model whose per-row cached decoding fails or differs from its full forward passes.

        Two rows of 4 and 7 tokens are started together (right-padded) and then decode one token each; their
        next-token distributions must match full forwards without a cache to a total-variation distance of 1e-4
        (0.05 for 16-bit models). A model that builds its own masks or positions from the cache length (ALiBi
        models such as BLOOM) fails here instead of on a request.
        """
        sequences = [[(7 * row + 3 * index) % (self.vocab_size - 1) + 1 for index in range(8)] for row in range(2)]
        lengths = torch.tensor([4, 7], device=self.device)
        input_ids = torch.zeros(2, 7, dtype=torch.long, device=self.device)
        for row, length in enumerate(lengths.tolist()):
            input_ids[row, :length] = torch.tensor(sequences[row][:length])
        label = f"Reward model {inner.config.name_or_path!r} ({type(inner).__name__})"
        try:
            self.reserve(2, 8)
            rows = torch.arange(2, device=self.device)
            started = self.step(rows, input_ids, torch.zeros_like(lengths), 7, lengths - 1)
            new_tokens = torch.tensor([[sequences[row][length]] for row, length in enumerate(lengths.tolist())])
            decoded = self.step(None, new_tokens.to(self.device), lengths, 8, torch.zeros_like(lengths))
            expected = [
                self._full_forward_log_probs(ids)
                for row, length in enumerate(lengths.tolist())
                for ids in (sequences[row][:length], sequences[row][: length + 1])
            ]
        except Exception as error:  # any failure of the model on this input means it cannot be served this way
            raise ValueError(
                f"{label} cannot decode requests at their own positions through a per-request cache (a forward with "
                f"per-row position ids and a 4-D attention mask failed: {type(error).__name__}: {error}); serve it "
                "with the generate() path (GenARMLogitsProcessor) instead."
            ) from error
        finally:
            self.release()
        actual = [started[0], decoded[0], started[1], decoded[1]]
        tolerance = 1e-4 if torch.finfo(self.dtype).bits > 16 else 5e-2
        distance = max(0.5 * (have.exp() - want.exp()).abs().sum().item() for have, want in zip(actual, expected))
        if distance > tolerance:
            raise ValueError(
                f"{label} decodes requests at their own positions differently from its full forward passes (total "
                f"variation {distance:.2g} > {tolerance:g}): it does not take per-row position ids and a 4-D attention "
                "mask as given. Serve it with the generate() path (GenARMLogitsProcessor) instead."
            )

    def _full_forward_log_probs(self, ids: list[int]) -> torch.Tensor:
        logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, -1:]
        return shared_log_probs(logits, self.vocab_size)[0]

    def reserve(self, rows: int, length: int) -> None:
        """Make room for `rows` rows of `length` cached tokens (existing rows and log-probs are kept)."""
        self.cache.reserve(rows, length)
        if self.log_probs.shape[0] < self.cache.row_capacity:
            grown = self.log_probs.new_zeros(self.cache.row_capacity, self.vocab_size)
            grown[: self.log_probs.shape[0]] = self.log_probs
            self.log_probs = grown

    def step(
        self,
        rows: torch.LongTensor | None,
        input_ids: torch.LongTensor,
        start_positions: torch.LongTensor,
        kv_length: int,
        last_columns: torch.LongTensor,
    ) -> torch.Tensor:
        """Feed `input_ids` to some rows, each from its own column; return float32 next-token log-probs.

        Args:
            rows (`torch.LongTensor`, *optional*): Cache row of each batch row; `None` for rows `0 .. batch-1`.
            input_ids (`torch.LongTensor`): `(batch, new_tokens)` tokens; a row shorter than the batch is
                right-padded, its padding written past its own tokens and overwritten later.
            start_positions (`torch.LongTensor`): Column (and position) of each row's first new token.
            kv_length (`int`): Columns attended to, at least `max(start_positions) + new_tokens`.
            last_columns (`torch.LongTensor`): Index in `input_ids` of each row's last real token.

        Returns:
            `torch.Tensor`: `(batch, vocab_size)` float32 log-probabilities of the token after each row's last one.
        """
        new_tokens = input_ids.shape[1]
        positions = start_positions.unsqueeze(-1) + torch.arange(new_tokens, device=self.device)
        self.cache.plan(rows, positions, kv_length)
        kwargs = {self._cache_argument: self.cache}
        if new_tokens > 1 and self._supports_logits_to_keep:
            # Only the output head's rows at each row's last column: over a real vocabulary, the logits of every
            # prompt position of a batch of starting requests would take gigabytes.
            kwargs["logits_to_keep"], last_columns = torch.unique(last_columns, return_inverse=True)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=slot_attention_mask(start_positions, new_tokens, kv_length, self.dtype),
            position_ids=positions,
            use_cache=True,
            **kwargs,
        )
        logits = outputs.logits[torch.arange(input_ids.shape[0], device=self.device), last_columns]
        return shared_log_probs(logits, self.vocab_size)

    def move_row(self, source: int, destination: int) -> None:
        """Copy row `source` (cache and log-probs) over row `destination`."""
        self.cache.move_row(source, destination)
        self.log_probs[destination] = self.log_probs[source]

    def release(self) -> None:
        """Free the cache buffers and log-probs; the next `reserve` allocates afresh."""
        self.cache.release()
        self.log_probs = self.log_probs.new_zeros(0, self.vocab_size)

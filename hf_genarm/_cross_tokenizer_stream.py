"""One reward model of another tokenizer during generation: its tokens of the text, and candidate scores.

The reward model reads its own tokenization of the text the base has produced. Its KV cache holds only the
*committed* tokens, those of the text's stable prefix (see `RewardTokenizer.stable_prefix`); the rest of the
text stays *pending* and is re-tokenized with each candidate. Each step the cache is extended by the newly
stable tokens, never recomputed. Rows commit different numbers of tokens, so a row's cache may hold padding
between its tokens: the attention mask and the position ids (counted over attended tokens, as `generate()`
counts them) skip it.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

from ._cross_tokenizer_text import BaseTextDecoder, RewardTokenizer, complete_text
from ._growing_cache import growing_dynamic_cache
from ._reward_stream import _innermost_transformers_model
from .modeling import positions_from_attention_mask

__all__ = ["CommittedContext", "CrossTokenizerStream"]


class CommittedContext:
    """A reward model's KV cache of each row's committed tokens, fed a different number of tokens per row.

    Args:
        model (`torch.nn.Module`): The reward model (causal LM, PEFT model or `AutoregressiveRewardModel`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        inner = _innermost_transformers_model(model)
        self._cache_argument = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
        self._config = inner.config
        self.device = next(model.parameters()).device
        self.cache: DynamicCache | None = None
        self.attention_mask: torch.Tensor | None = None

    def start(self, rows: int) -> None:
        """Empty the cache for `rows` rows."""
        self.cache = growing_dynamic_cache(self._config)
        self.attention_mask = torch.zeros(rows, 0, dtype=torch.long, device=self.device)

    def release(self) -> None:
        """Drop the cache."""
        self.cache = None
        self.attention_mask = None

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held."""
        row_sources = row_sources.to(self.device)
        self.cache.reorder_cache(row_sources)
        self.attention_mask = self.attention_mask.index_select(0, row_sources)

    def _forward(self, ids: torch.LongTensor, mask: torch.Tensor, cache: DynamicCache, attention_mask: torch.Tensor):
        attention_mask = torch.cat([attention_mask, mask], dim=1)
        outputs = self.model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=positions_from_attention_mask(attention_mask)[:, -ids.shape[1] :],
            use_cache=True,
            **{self._cache_argument: cache},
        )
        return outputs.logits.float(), attention_mask

    def extend(self, ids: torch.LongTensor, mask: torch.Tensor) -> torch.Tensor:
        """Append `ids` (0 in `mask` where a row has fewer tokens) to the cache; return the last column's logits."""
        logits, self.attention_mask = self._forward(
            ids.to(self.device), mask.to(self.device), self.cache, self.attention_mask
        )
        return logits[:, -1]

    def continuation_logits(self, rows: torch.LongTensor, ids: torch.LongTensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits of every position of `ids[i]` read after the cached tokens of row `rows[i]`; the cache is kept.

        Each sequence needs its row's cache: a copy is made per sequence.
        """
        rows = rows.to(self.device)
        copies = DynamicCache(
            ddp_cache_data=[
                (layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in self.cache.layers
            ]
        )
        logits, _ = self._forward(
            ids.to(self.device), mask.to(self.device), copies, self.attention_mask.index_select(0, rows)
        )
        return logits


class CrossTokenizerStream:
    """Log-probabilities, under one reward model, of the text that each base candidate token appends.

    The score of a candidate whose text is `s` after the text so far `x` is, by definition,
    `log P_r(tok_r(x + s)) - log P_r(tok_r(x))`, where `tok_r` is the reward model's tokenization (after its
    own prompt, or its special prefix such as BOS) and `log P_r` sums the log-probabilities of every token
    after the first. When `tok_r(x + s)` extends `tok_r(x)`, that is the log-probability of `s`'s tokens.

    Args:
        model (`torch.nn.Module`): The reward model.
        own_prompt_ids (`torch.LongTensor`, *optional*): Its own prompt (one left-padded row per prompt), if any.
        own_prompt_mask (`torch.Tensor`, *optional*): That prompt's attention mask.
        base_decoder (`BaseTextDecoder`): Decodes the base's tokens.
        reward_tokenizer (`RewardTokenizer`): The reward model's tokenizer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        own_prompt_ids: torch.LongTensor | None,
        own_prompt_mask: torch.Tensor | None,
        base_decoder: BaseTextDecoder,
        reward_tokenizer: RewardTokenizer,
    ):
        self.context = CommittedContext(model)
        self.own_prompt_ids = own_prompt_ids
        self.own_prompt_mask = own_prompt_mask
        self.base_decoder = base_decoder
        self.reward_tokenizer = reward_tokenizer
        self.release()

    # ------------------------------------------------------------------------------------------- state
    def release(self) -> None:
        """Drop the cache and per-row state."""
        self.context.release()
        self.base_ids: list[list[int]] = []
        self.texts: list[str] = []
        self.committed_chars: list[int] = []
        self.cached_tokens: list[int] = []
        self.last_log_probs: torch.Tensor | None = None

    def start(self, prompt_ids: torch.LongTensor, prompt_mask: torch.Tensor, rows: int) -> None:
        """Begin a new generation on the base prompt; commit the stable part of the reward model's context."""
        self.context.start(rows)
        keep = prompt_mask.bool().cpu()
        self.base_ids = [row[row_mask].tolist() for row, row_mask in zip(prompt_ids.cpu(), keep)]
        self.committed_chars = [0] * rows
        self.cached_tokens = [0] * rows
        self.last_log_probs = None
        if self.own_prompt_ids is not None:
            # The reward model reads its own prompt, then only the generated text.
            repeat = rows // self.own_prompt_ids.shape[0]
            own = zip(
                self.own_prompt_ids.repeat_interleave(repeat, 0), self.own_prompt_mask.repeat_interleave(repeat, 0)
            )
            self.texts = [""] * rows
            self._feed_rows([row[mask.bool()].tolist() for row, mask in own])
            return
        self.texts = [complete_text(text) for text in self.base_decoder.decode(self.base_ids)]
        prefix = self.reward_tokenizer.prefix_ids
        for row, text in enumerate(self.texts):
            if not text and not prefix:
                raise ValueError(
                    f"Prompt {row} of this generate() call is empty as text and the reward model's tokenizer adds no "
                    "BOS token, so the reward model has nothing to condition on; give every prompt some text or pass "
                    "the reward model its own prompt with `reward_model_inputs=`."
                )
        self._commit(leading=[list(prefix)] * rows)

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held (beam search)."""
        sources = row_sources.tolist()
        self.base_ids = [list(self.base_ids[source]) for source in sources]
        self.texts = [self.texts[source] for source in sources]
        self.committed_chars = [self.committed_chars[source] for source in sources]
        self.cached_tokens = [self.cached_tokens[source] for source in sources]
        self.last_log_probs = self.last_log_probs.index_select(0, row_sources.to(self.last_log_probs.device))
        self.context.reorder(row_sources)

    def crop(self, tokens_to_remove: int) -> None:
        """Taking tokens back (assisted decoding's rejected candidates) is refused."""
        if tokens_to_remove > 0:
            raise ValueError(
                "Cross-tokenizer guidance cannot take back generated tokens, which assisted (speculative) decoding "
                "and prompt-lookup decoding do; generate without `assistant_model=` / `prompt_lookup_num_tokens=`, "
                "or use a reward model that shares the base tokenizer (GenARMLogitsProcessor)."
            )

    def append(self, new_ids: torch.LongTensor) -> None:
        """Append base tokens (one column per step) to every row, and commit the newly stable reward tokens."""
        new = new_ids.tolist()
        deltas = self.base_decoder.continuations(self.base_ids, [[row] for row in new])
        for row, (ids, delta) in enumerate(zip(new, deltas)):
            self.base_ids[row].extend(ids)
            self.texts[row] += delta[0]
        self._commit(leading=None)

    # -------------------------------------------------------------------------------------- reward model
    def _commit(self, leading: list[list[int]] | None) -> None:
        chunks = []
        for row, text in enumerate(self.texts):
            head = leading[row] if leading is not None else []
            needs_first_token = self.cached_tokens[row] == 0 and not head
            chars, ids = self.reward_tokenizer.stable_prefix(text[self.committed_chars[row] :], force=needs_first_token)
            self.committed_chars[row] += chars
            chunks.append(head + ids)
        self._feed_rows(chunks)

    def _feed_rows(self, chunks: list[list[int]]) -> None:
        """Feed each row its own number of tokens (left-padded into one block); keep the last log-probs per row."""
        width = max(len(chunk) for chunk in chunks)
        if width == 0:
            return
        ids = torch.zeros(len(chunks), width, dtype=torch.long)
        mask = torch.zeros(len(chunks), width, dtype=torch.long)
        for row, chunk in enumerate(chunks):
            if chunk:
                ids[row, width - len(chunk) :] = torch.tensor(chunk)
                mask[row, width - len(chunk) :] = 1
            self.cached_tokens[row] += len(chunk)
        log_probs = torch.log_softmax(self.context.extend(ids, mask), dim=-1)
        if self.last_log_probs is None:
            self.last_log_probs = log_probs
        else:
            fed = mask[:, -1].bool().to(log_probs.device).unsqueeze(-1)
            self.last_log_probs = torch.where(fed, log_probs, self.last_log_probs)

    @torch.no_grad()
    def candidate_log_probs(self, candidates: list[list[int]], base_eos_token_id: int | None) -> torch.Tensor:
        """The reward model's log-probability of each candidate's text after each row's text (see the class).

        Args:
            candidates (`list[list[int]]`): Per row, the base token ids to score (the same number per row).
            base_eos_token_id (`int`, *optional*): The base's EOS, scored as the reward model's EOS.

        Returns:
            `torch.Tensor` of shape `(rows, candidates)`, float32, on the reward model's device. Candidates that
            add no complete character (part of a multi-byte character, special tokens other than EOS) get the
            lowest score of their row's scored candidates.
        """
        pieces = self.base_decoder.continuations(self.base_ids, [[[token] for token in row] for row in candidates])
        special = self.base_decoder.special_ids
        reward_eos = self.reward_tokenizer.eos_token_id
        strings, plan = [], []
        for row, (row_candidates, row_pieces) in enumerate(zip(candidates, pieces)):
            pending = self.texts[row][self.committed_chars[row] :]
            strings.append(pending)
            row_plan = []
            for token, piece in zip(row_candidates, row_pieces):
                if token == base_eos_token_id and reward_eos is not None:
                    row_plan.append("eos")
                elif token in special or not piece:
                    row_plan.append(None)
                else:
                    row_plan.append(len(strings))
                    strings.append(pending + piece)
            plan.append(row_plan)
        encoded = self.reward_tokenizer.encode(strings)
        row_index, tails, slots = [], [], []
        position = 0
        for row, row_plan in enumerate(plan):
            pending_tokens = encoded[position]
            row_index.append(row)
            tails.append(pending_tokens)
            row_slots = [len(tails) - 1]
            for entry in row_plan:
                if entry is None:
                    row_slots.append(None)
                    continue
                row_index.append(row)
                tails.append([*pending_tokens, reward_eos] if entry == "eos" else encoded[entry])
                row_slots.append(len(tails) - 1)
            position += 1 + sum(isinstance(entry, int) for entry in row_plan)
            slots.append(row_slots)
        sums = self._tail_log_probs(row_index, tails)
        scores = torch.zeros(len(candidates), len(candidates[0]) if candidates else 0, device=sums.device)
        for row, row_slots in enumerate(slots):
            base_slot, candidate_slots = row_slots[0], row_slots[1:]
            scored = [index for index, slot in enumerate(candidate_slots) if slot is not None]
            if not scored:
                continue
            values = sums[[candidate_slots[index] for index in scored]] - sums[base_slot]
            scores[row, scored] = values
            unscored = [index for index, slot in enumerate(candidate_slots) if slot is None]
            if unscored:
                scores[row, unscored] = values.min()
        return scores

    def _tail_log_probs(self, row_index: list[int], tails: list[list[int]]) -> torch.Tensor:
        """Sum of log-probabilities of each tail after its row's committed tokens, in one batched forward."""
        device = self.last_log_probs.device
        width = max(len(tail) for tail in tails)
        if width == 0:
            return torch.zeros(len(tails), device=device)
        ids = torch.zeros(len(tails), width, dtype=torch.long)
        mask = torch.zeros(len(tails), width, dtype=torch.long)
        for index, tail in enumerate(tails):
            ids[index, : len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[index, : len(tail)] = 1
        logits = self.context.continuation_logits(torch.tensor(row_index), ids, mask)
        ids, mask, rows = ids.to(device), mask.to(device), torch.tensor(row_index, device=device)
        log_probs = torch.log_softmax(logits, dim=-1)
        predictors = torch.cat([self.last_log_probs.index_select(0, rows).unsqueeze(1), log_probs[:, :-1]], dim=1)
        token_log_probs = predictors.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return (token_log_probs * mask).sum(-1)

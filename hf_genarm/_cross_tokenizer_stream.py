"""One reward model of another tokenizer during generation: its tokens of the text, and candidate scores.

The reward model reads its own tokenization of the text the base has produced. Its KV cache holds only the
*committed* tokens, those of the text's stable prefix (see `RewardTokenizer.stable_prefixes`); the rest of the
text stays *pending* and is re-tokenized with each candidate. Each step the cache is extended by the newly
stable tokens, never recomputed. Rows commit different numbers of tokens, so a row's cache may hold padding
between its tokens: the attention mask and the position ids (counted over attended tokens, as `generate()`
counts them) skip it.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from ._cross_tokenizer_text import BaseTextDecoder, RewardTokenizer, complete_text
from ._growing_cache import GrowingBuffer, growing_dynamic_cache
from .model_caller import ModelCaller

__all__ = ["ASSISTED_DECODING_REFUSED", "CommittedContext", "CrossTokenizerStream"]

ASSISTED_DECODING_REFUSED = (
    "Cross-tokenizer guidance cannot take back generated tokens, which assisted (speculative) decoding and "
    "prompt-lookup decoding do; generate without `assistant_model=` / `prompt_lookup_num_tokens=`, or use a "
    "reward model that shares the base tokenizer (GenARMLogitsProcessor)."
)


class CommittedContext(ModelCaller):
    """A reward model's KV cache of each row's committed tokens, fed a different number of tokens per row.

    Args:
        model (`torch.nn.Module`): The reward model (causal LM, PEFT model or `AutoregressiveRewardModel`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.cache: DynamicCache | None = None
        # The cache's attention mask grows into preallocated room: a step copies only its new columns.
        self.attention_mask = GrowingBuffer(dim=1)

    def start(self, rows: int) -> None:
        """Empty the cache for `rows` rows."""
        self.cache = growing_dynamic_cache(self._config)
        self.attention_mask.clear()
        self.attention_mask.append(torch.zeros(rows, 0, dtype=torch.long, device=self.device))

    def release(self) -> None:
        """Drop the cache."""
        self.cache = None
        self.attention_mask.clear()

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held."""
        row_sources = row_sources.to(self.device)
        self.cache.reorder_cache(row_sources)
        self.attention_mask.select_rows(row_sources)

    def run(
        self,
        cache: DynamicCache,
        attention_mask: GrowingBuffer,
        ids: torch.LongTensor,
        mask: torch.Tensor,
        attended: list[int],
        added: list[int],
        keep: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """Feed `ids` (0 in `mask` on padding) after `cache`, whose mask `attention_mask` grows by `mask`.

        `attended[i]` is the number of tokens row `i` attends before `ids` and `added[i]` how many of `ids` it
        attends: the position ids and the position limit follow from these counts, without summing the mask.
        Returns the float32 logits of every position, or, where the model takes `logits_to_keep`, of the positions
        `keep` only (the first `len(keep)` columns then hold them when `keep` is `0, 1, ...`).
        """
        needed = max(before + count for before, count in zip(attended, added))
        if self.position_limit is not None and needed > self.position_limit:
            raise ValueError(
                f"The reward model reads at most {self.position_limit} positions (its config's position limit), but "
                f"its tokenization of the text so far needs {needed}. Shorten the prompt or `max_new_tokens`, or use "
                "a reward model built for longer sequences."
            )
        mask = mask.to(self.device)
        # As `positions_from_attention_mask` over the whole mask: attended tokens before, plus those fed so far.
        before = torch.tensor(attended, device=self.device).unsqueeze(-1)
        positions = (before + mask.long().cumsum(-1) - 1).clamp_min(0)
        kwargs = {self._cache_argument: cache}
        if keep is not None and self._supports_logits_to_keep:
            kwargs["logits_to_keep"] = keep
        outputs = self.model(
            input_ids=ids.to(self.device),
            attention_mask=attention_mask.append(mask),
            position_ids=positions,
            use_cache=True,
            **kwargs,
        )
        return outputs.logits.float()

    @staticmethod
    def fork(cache: DynamicCache, rows: torch.LongTensor) -> DynamicCache:
        """A new cache whose row `i` is a copy of row `rows[i]` of `cache` (the original is left as it was)."""
        return DynamicCache(
            ddp_cache_data=[
                (layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in cache.layers
            ]
        )


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
        # Each row's text after its committed part: the only text a step reads, so a step copies no more than it.
        self.pending_texts: list[str] = []
        self.cached_tokens: list[int] = []
        # Tokens found stable but not fed yet: they run in the same forward as the next step's pending tokens.
        self.to_commit: list[list[int]] = []
        self.last_log_probs: torch.Tensor | None = None

    def start(self, prompt_ids: torch.LongTensor, prompt_mask: torch.Tensor, rows: int) -> None:
        """Begin a new generation on the base prompt; commit the stable part of the reward model's context."""
        self.context.start(rows)
        keep = prompt_mask.bool().cpu()
        self.base_ids = [row[row_mask].tolist() for row, row_mask in zip(prompt_ids.cpu(), keep)]
        self.cached_tokens = [0] * rows
        self.to_commit = [[] for _ in range(rows)]
        self.last_log_probs = None
        if self.own_prompt_ids is not None:
            # The reward model reads its own prompt, then only the generated text.
            repeat = rows // self.own_prompt_ids.shape[0]
            own = zip(
                self.own_prompt_ids.repeat_interleave(repeat, 0), self.own_prompt_mask.repeat_interleave(repeat, 0)
            )
            self.pending_texts = [""] * rows
            self.to_commit = [row[mask.bool()].tolist() for row, mask in own]
            return
        self.pending_texts = [complete_text(text) for text in self.base_decoder.decode(self.base_ids)]
        prefix = self.reward_tokenizer.prefix_ids
        for row, text in enumerate(self.pending_texts):
            if not text and not prefix:
                raise ValueError(
                    f"Prompt {row} of this generate() call is empty as text and the reward model's tokenizer adds no "
                    "BOS token, so the reward model has nothing to condition on; give every prompt some text or pass "
                    "the reward model its own prompt with `reward_model_inputs=`."
                )
        self._commit(leading=[list(prefix)] * rows)

    def check_room(self, new_tokens: int) -> None:
        """Nothing to refuse in advance: the reward model's tokens for `new_tokens` base tokens are not known yet.

        Its position limit is checked on every forward instead, against its own tokenization of the text.
        """

    def reorder(self, row_sources: torch.LongTensor) -> None:
        """Row `i` continues what row `row_sources[i]` held (beam search)."""
        sources = row_sources.tolist()
        self.base_ids = [list(self.base_ids[source]) for source in sources]
        self.pending_texts = [self.pending_texts[source] for source in sources]
        self.cached_tokens = [self.cached_tokens[source] for source in sources]
        self.to_commit = [list(self.to_commit[source]) for source in sources]
        if self.last_log_probs is not None:
            self.last_log_probs = self.last_log_probs.index_select(0, row_sources.to(self.last_log_probs.device))
        self.context.reorder(row_sources)

    def crop(self, tokens_to_remove: int) -> None:
        """Taking tokens back (assisted decoding's rejected candidates) is refused."""
        if tokens_to_remove > 0:
            raise ValueError(ASSISTED_DECODING_REFUSED)

    def append(self, new_ids: torch.LongTensor) -> None:
        """Append base tokens (one column per step) to every row, and commit the newly stable reward tokens."""
        new = new_ids.tolist()
        deltas = self.base_decoder.continuations(self.base_ids, [[row] for row in new])
        for row, (ids, delta) in enumerate(zip(new, deltas)):
            self.base_ids[row].extend(ids)
            self.pending_texts[row] += delta[0]
        self._commit(leading=None)

    # -------------------------------------------------------------------------------------- reward model
    def _commit(self, leading: list[list[int]] | None) -> None:
        heads = leading if leading is not None else [[]] * len(self.pending_texts)
        pendings = list(self.pending_texts)
        needs_first_token = [
            cached == 0 and not waiting and not head
            for cached, waiting, head in zip(self.cached_tokens, self.to_commit, heads)
        ]
        for row, (chars, ids) in enumerate(self.reward_tokenizer.stable_prefixes(pendings, needs_first_token)):
            self.pending_texts[row] = pendings[row][chars:]
            self.to_commit[row] += heads[row] + ids

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
        pendings = self.pending_texts
        strings, where = list(pendings), []
        for row, (row_candidates, row_pieces) in enumerate(zip(candidates, pieces)):
            for column, (token, piece) in enumerate(zip(row_candidates, row_pieces)):
                if token == base_eos_token_id and reward_eos is not None:
                    where.append((row, column, None))
                elif token not in special and piece:
                    where.append((row, column, len(strings)))
                    strings.append(pendings[row] + piece)
        encoded = self.reward_tokenizer.encode(strings)
        pending_tokens = encoded[: len(pendings)]
        tails = [[*pending_tokens[row], reward_eos] if index is None else encoded[index] for row, _, index in where]
        scores = torch.zeros(len(candidates), len(candidates[0]) if candidates else 0, device=self.context.device)
        if not where:
            return scores
        values = self._score_tails(pending_tokens, [row for row, _, _ in where], tails)
        rows = torch.tensor([row for row, _, _ in where], device=scores.device)
        columns = torch.tensor([column for _, column, _ in where], device=scores.device)
        # Unscored candidates get their row's lowest score: fill every slot with it, then write the scored ones.
        lowest = torch.full((len(candidates),), float("inf"), device=scores.device).scatter_reduce(
            0, rows, values, reduce="amin"
        )
        scores = torch.where(torch.isinf(lowest), 0.0, lowest).unsqueeze(-1).expand_as(scores).clone()
        scores[rows, columns] = values
        return scores

    def _score_tails(self, pending: list[list[int]], rows: list[int], tails: list[list[int]]) -> torch.Tensor:
        """`log P(tail | committed) - log P(pending | committed)` for each tail of row `rows[i]`.

        The pending tokens of every row run once, on the cache itself (cropped back afterwards). A tail's first
        token after the pending tokens it shares is then scored from those logits; only tails with more tokens
        run again, from where they leave the pending tokens, on a copy of their row's cache in which the pending
        tokens they do not share are masked out (the position ids, counted over attended tokens, skip them as
        they skip padding).
        """
        device, context = self.context.device, self.context
        commit_width = max(len(tokens) for tokens in self.to_commit)
        pending_width = max(1, max(len(tokens) for tokens in pending))
        # One forward: each row's newly stable tokens (left-padded, they stay in the cache), then its pending
        # tokens (right-padded, cropped off again below).
        commit_ids, commit_mask = _left_padded(self.to_commit, commit_width, device)
        pending_ids, pending_mask = _right_padded(pending, pending_width, device)
        attended = list(self.cached_tokens)
        logits = context.run(
            context.cache,
            context.attention_mask,
            torch.cat([commit_ids, pending_ids], dim=1),
            torch.cat([commit_mask, pending_mask], dim=1),
            attended,
            [len(commit) + len(tokens) for commit, tokens in zip(self.to_commit, pending)],
        )
        try:
            log_probs = torch.log_softmax(logits, dim=-1)
            if commit_width:
                committed_now = commit_mask[:, -1].bool().unsqueeze(-1)
                after_commit = log_probs[:, commit_width - 1]
                self.last_log_probs = (
                    after_commit
                    if self.last_log_probs is None
                    else torch.where(committed_now, after_commit, self.last_log_probs)
                )
                for row, tokens in enumerate(self.to_commit):
                    self.cached_tokens[row] += len(tokens)
                self.to_commit = [[] for _ in self.to_commit]
            log_probs = log_probs[:, commit_width:]
            predictors = torch.cat([self.last_log_probs.unsqueeze(1), log_probs[:, :-1]], dim=1)
            pending_log_probs = predictors.gather(-1, pending_ids.unsqueeze(-1)).squeeze(-1) * pending_mask
            shared = [_shared_prefix_length(pending[row], tail) for row, tail in zip(rows, tails)]
            suffixes = [tail[count:] for tail, count in zip(tails, shared)]
            row_index = torch.tensor(rows, device=device)
            shared_count = torch.tensor(shared, device=device)
            first_ids = torch.tensor([suffix[0] if suffix else 0 for suffix in suffixes], device=device)
            has_first = torch.tensor([bool(suffix) for suffix in suffixes], device=device)
            # A suffix's first token is predicted by the last pending token it shares, or by the committed context.
            suffix_log_probs = (
                torch.where(
                    shared_count > 0,
                    log_probs[row_index, (shared_count - 1).clamp_min(0), first_ids],
                    self.last_log_probs[row_index, first_ids],
                )
                * has_first
            )
            longer = [index for index, suffix in enumerate(suffixes) if len(suffix) > 1]
            if longer:
                chosen = torch.tensor(longer, device=device)
                suffix_log_probs[chosen] += self._later_suffix_tokens(
                    pending_mask,
                    row_index[chosen],
                    shared_count[chosen],
                    [suffixes[i] for i in longer],
                    [self.cached_tokens[rows[i]] + shared[i] for i in longer],
                )
            columns = torch.arange(pending_width, device=device).unsqueeze(0)
            dropped = pending_log_probs.index_select(0, row_index) * (columns >= shared_count.unsqueeze(-1))
            return suffix_log_probs - dropped.sum(-1)
        finally:
            context.cache.crop(-pending_width)
            context.attention_mask.crop(pending_width)

    def _later_suffix_tokens(
        self,
        pending_mask: torch.Tensor,
        rows: torch.LongTensor,
        shared_count: torch.LongTensor,
        suffixes: list[list[int]],
        attended: list[int],
    ) -> torch.Tensor:
        """Log-probability of each suffix's tokens after its first, on copies of the (pending-extended) cache."""
        context, device = self.context, self.context.device
        width = max(len(suffix) for suffix in suffixes)
        ids, mask = _right_padded(suffixes, width, device)
        pending_width = pending_mask.shape[1]
        columns = torch.arange(pending_width, device=device).unsqueeze(0)
        kept_pending = pending_mask.index_select(0, rows) * (columns < shared_count.unsqueeze(-1))
        full_mask = context.attention_mask.filled
        committed = full_mask[:, : full_mask.shape[1] - pending_width].index_select(0, rows)
        # The copies of the cache and of its mask are those of the forked rows (as long as their text).
        forked_mask = GrowingBuffer(dim=1, spare=width)
        forked_mask.append(torch.cat([committed, kept_pending], dim=1))
        # Logits are needed at every suffix position but the last (each predicts the next suffix token).
        logits = context.run(
            context.fork(context.cache, rows),
            forked_mask,
            ids,
            mask,
            attended,
            [len(suffix) for suffix in suffixes],
            keep=torch.arange(width - 1, device=device),
        )
        log_probs = torch.log_softmax(logits[:, : width - 1], dim=-1)
        return (log_probs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * mask[:, 1:]).sum(-1)


def _left_padded(sequences: list[list[int]], width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [[0] * (width - len(sequence)) + sequence for sequence in sequences]
    mask = [[0] * (width - len(sequence)) + [1] * len(sequence) for sequence in sequences]
    ids, mask = (torch.tensor(rows, dtype=torch.long, device=device) for rows in (ids, mask))
    return ids.reshape(len(sequences), width), mask.reshape(len(sequences), width)


def _right_padded(sequences: list[list[int]], width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([sequence + [0] * (width - len(sequence)) for sequence in sequences], device=device)
    mask = torch.tensor([[1] * len(sequence) + [0] * (width - len(sequence)) for sequence in sequences], device=device)
    return ids, mask


def _shared_prefix_length(first: list[int], second: list[int]) -> int:
    count = 0
    while count < min(len(first), len(second)) and first[count] == second[count]:
        count += 1
    return count

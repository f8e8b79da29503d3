"""Text bookkeeping for cross-tokenizer guidance: the base's tokens as text, the reward model's tokens of that text.

Two jobs, one per class:

- `BaseTextDecoder` turns base token ids into the text they add, decoding only a short window of the
  tokens before them (a tokenizer's decoder may change a token's text by what precedes it: `▁` prefixes,
  byte-fallback and byte-level tokens that complete a character).
- `RewardTokenizer` tokenizes text for the reward model and finds, in a pending tail of text, the longest
  prefix whose reward-model tokens no later text can change (its "stable" part), so only the unstable tail
  is re-tokenized each step.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BaseTextDecoder", "RewardTokenizer", "complete_text"]

# A trailing U+FFFD is an incomplete UTF-8 character (byte-level or byte-fallback tokens of one character split
# across tokens): it is held back until the tokens that complete it arrive.
_INCOMPLETE = "\ufffd"
# Base tokens decoded before the new ones, so the decoder sees what it needs of the left context.
_DECODE_WINDOW = 8
# Commit points tried per step (each try tokenizes three short strings).
_MAX_SPLIT_TRIES = 3
# Without word boundaries from a pre-tokenizer, a pending tail longer than this falls back to token boundaries
# and keeps `_FALLBACK_PENDING_TOKENS` tokens pending.
_LONG_PENDING_CHARS = 64
_FALLBACK_PENDING_TOKENS = 4


def complete_text(text: str) -> str:
    """`text` without a trailing incomplete character (the U+FFFD a partial UTF-8 sequence decodes to)."""
    return text.rstrip(_INCOMPLETE)


class BaseTextDecoder:
    """Text that base token ids add to a row, decoding a short window of context.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The base model's tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self.special_ids = frozenset(tokenizer.all_special_ids)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Decode each list of ids, special tokens skipped, spaces left exactly as the tokens hold them."""
        if self._backend is not None:
            # The Rust tokenizer's batch call: transformers' batch_decode loops in Python, once per sequence.
            return self._backend.decode_batch(ids, skip_special_tokens=True)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def continuations(self, contexts: list[list[int]], additions: list[list[list[int]]]) -> list[list[str]]:
        """For each row, the complete text each addition appends to the complete text of its context.

        Args:
            contexts (`list[list[int]]`): Each row's base ids so far.
            additions (`list[list[list[int]]]`): Per row, the id sequences to append (candidates, or the new tokens).

        Returns:
            `list[list[str]]`: `complete(decode(context + addition))` minus `complete(decode(context))`.
        """
        # Special tokens decode to nothing: the window holds the last tokens that decode to text (after a
        # row's EOS, generate() pads it with special tokens that must not push its text out of the window).
        windows = [
            [token for token in context[-8 * _DECODE_WINDOW :] if token not in self.special_ids][-_DECODE_WINDOW:]
            for context in contexts
        ]
        before = [complete_text(text) for text in self.decode(windows)]
        flat = [window + addition for window, row in zip(windows, additions) for addition in row]
        after = iter(self.decode(flat))
        texts = []
        for context, row_additions, prefix in zip(contexts, additions, before):
            row_texts = []
            for addition in row_additions:
                text = complete_text(next(after))
                row_texts.append(
                    text[len(prefix) :] if text.startswith(prefix) else self._full_continuation(context, addition)
                )
            texts.append(row_texts)
        return texts

    def _full_continuation(self, context: list[int], addition: list[int]) -> str:
        # A decoder whose output for the window is not a suffix of its output for the whole row: decode it all.
        whole_before, whole_after = (complete_text(text) for text in self.decode([context, context + addition]))
        shared = 0
        while shared < min(len(whole_before), len(whole_after)) and whole_before[shared] == whole_after[shared]:
            shared += 1
        return whole_after[shared:]


class RewardTokenizer:
    """The reward model's tokenizer, with the stable-prefix rule of cross-tokenizer guidance.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The reward model's tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self._pre_tokenizer = self._backend.pre_tokenizer if self._backend is not None else None
        self.prefix_ids = self._special_prefix()
        self.eos_token_id = tokenizer.eos_token_id

    def _special_prefix(self) -> list[int]:
        """Ids the tokenizer puts before any text (e.g. a BOS token); trailing special tokens are not kept."""
        with_special = list(self.tokenizer("a")["input_ids"])
        plain = list(self.tokenizer("a", add_special_tokens=False)["input_ids"])
        for start in range(len(with_special) - len(plain) + 1):
            if with_special[start : start + len(plain)] == plain:
                return with_special[:start]
        return []

    def text_ids(self, text: str) -> list[int]:
        """The ids the reward model reads for `text`: its special prefix (e.g. a BOS), then the text's own tokens.

        The one rule for turning text into reward-model ids, shared by guidance and scoring: special tokens a
        post-processor appends after the text (a WordPiece `[SEP]`) are never read, since a response is its text
        and, when finished, the EOS token.
        """
        return self.prefix_ids + self.encode([text])[0]

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Tokenize each text without special tokens."""
        if not texts:
            return []
        if self._backend is not None:
            return [encoding.ids for encoding in self._backend.encode_batch(list(texts), add_special_tokens=False)]
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def stable_prefixes(self, pendings: list[str], force: list[bool]) -> list[tuple[int, list[int]]]:
        """Per text, the characters and ids of its longest prefix whose tokens text appended later cannot change.

        A commit point is the start of a pre-token (a word, a run of spaces, punctuation, as the tokenizer's own
        pre-tokenizer splits them) with at least two more pre-tokens after it, so that text appended later,
        which can only extend or re-split the last pre-tokens, leaves it in place; and tokenizing both sides
        apart must give the tokens of the whole (this refuses a `▁` the tokenizer would prepend to the right
        side, a split inside a byte-fallback character, a normalizer that moves characters). Without word
        boundaries (no pre-tokenizer, or one long word) a long tail falls back to token boundaries, keeping
        a few tokens pending.

        Args:
            pendings (`list[str]`): Per row, the text not yet committed to the reward model's cache.
            force (`list[bool]`): Per row, commit at least one token (a row whose cache is still empty needs a
                first token to condition on).

        Returns:
            `list[tuple[int, list[int]]]`: per row, the number of characters committed and their ids.
        """
        points = [self._commit_points(pending) if pending else [] for pending in pendings]
        # The most likely point of every row is checked in one tokenizer call; rows it fails try further back.
        first = [(row, candidates[0]) for row, candidates in enumerate(points) if candidates]
        encoded = self.encode([text for row, point in first for text in self._split(pendings[row], point)])
        results = [(0, [])] * len(pendings)
        for index, (row, point) in enumerate(first):
            left, right, whole = encoded[3 * index : 3 * index + 3]
            if left and left + right == whole:
                results[row] = (point, left)
            else:
                results[row] = self._stable_prefix(pendings[row], points[row][1:_MAX_SPLIT_TRIES])
        for row, (pending, must_commit) in enumerate(zip(pendings, force)):
            if must_commit and pending and not results[row][1]:
                results[row] = self._first_token(pending)
        return results

    @staticmethod
    def _split(pending: str, point: int) -> tuple[str, str, str]:
        return pending[:point], pending[point:], pending

    def _stable_prefix(self, pending: str, points: list[int]) -> tuple[int, list[int]]:
        for point in points:
            left, right, whole = self.encode(list(self._split(pending, point)))
            if left and left + right == whole:
                return point, left
        return 0, []

    def _commit_points(self, pending: str) -> list[int]:
        points = []
        if self._pre_tokenizer is not None:
            starts = [start for _, (start, _) in self._pre_tokenizer.pre_tokenize_str(pending)]
            points = [start for start in starts[1:-1] if start > 0]
        if len(pending) - max(points, default=0) > _LONG_PENDING_CHARS:
            # One long word (or no pre-tokenizer): token boundaries, a few tokens before the end.
            offsets = self.tokenizer(pending, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            points += [start for start, _ in offsets[1 : len(offsets) - _FALLBACK_PENDING_TOKENS + 1] if start > 0]
        return sorted(set(points), reverse=True)

    def _first_token(self, pending: str) -> tuple[int, list[int]]:
        offsets = self.tokenizer(pending, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for _, end in offsets[:-1]:
            left, right, whole = self.encode([pending[:end], pending[end:], pending])
            if left and left + right == whole:
                return end, left
        return len(pending), self.encode([pending])[0]

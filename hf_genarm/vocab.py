"""Tokenizer compatibility checks between a base model and its reward models.

GenARM adds the reward model's next-token log-probabilities to the base model's, token id by token
id, so both must speak the same tokenizer. Models of one family often pad their embedding matrices to a
multiple of 8, 64 or 128 rows, so equal tokenizers can come with different logit widths: the shared
vocabulary is the tokenizer's, and extra padded rows on either side are dropped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["describe_tokenizer_difference", "model_vocab_size", "tokenizer_fingerprint"]


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """Summarise a tokenizer so that two tokenizers can be compared without loading both.

    The fingerprint holds the number of tokens (`len(tokenizer)`, added tokens included), a SHA-256 of
    the sorted token-to-id map and the special tokens. It is stored in a reward model's sidecar metadata
    so that a later `GenARMLogitsProcessor` can refuse a base model whose tokenizer differs.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            Any Hugging Face tokenizer (slow or fast).

    Returns:
        `dict`: JSON-serialisable fingerprint with keys `vocab_size`, `vocab_sha256` and `special_tokens`.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> fingerprint = tokenizer_fingerprint(make_tiny_tokenizer())
    >>> sorted(fingerprint)
    ['special_tokens', 'vocab_sha256', 'vocab_size']
    ```
    """
    vocab = tokenizer.get_vocab()
    canonical = json.dumps(sorted(vocab.items(), key=lambda item: item[1]), ensure_ascii=False)
    special = {
        name: getattr(tokenizer, name, None)
        for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        if getattr(tokenizer, name, None) is not None
    }
    return {
        "vocab_size": len(tokenizer),
        "vocab_sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "special_tokens": {name: str(value) for name, value in special.items()},
    }


def describe_tokenizer_difference(expected: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """Say in words how two tokenizer fingerprints differ, or return `None` when they match.

    Special tokens only count as a difference when both sides name the token: a base tokenizer without
    a pad token still matches a reward model whose tokenizer was given one for training.

    Args:
        expected (`dict`): Fingerprint of the base model's tokenizer (see `tokenizer_fingerprint`).
        actual (`dict`): Fingerprint of the reward model's tokenizer.

    Returns:
        `str` or `None`: A one-sentence description of the first differences found.

    Examples:

    ```python
    >>> describe_tokenizer_difference({"vocab_size": 10, "vocab_sha256": "a"}, {"vocab_size": 12, "vocab_sha256": "b"})
    'vocabulary size 10 (base) vs 12 (reward model)'
    ```
    """
    differences = []
    if expected.get("vocab_size") != actual.get("vocab_size"):
        differences.append(
            f"vocabulary size {expected.get('vocab_size')} (base) vs {actual.get('vocab_size')} (reward model)"
        )
    elif expected.get("vocab_sha256") != actual.get("vocab_sha256"):
        differences.append("same vocabulary size but different tokens or token ids")
    expected_special = expected.get("special_tokens", {})
    actual_special = actual.get("special_tokens", {})
    for name in sorted(set(expected_special) & set(actual_special)):
        if expected_special[name] != actual_special[name]:
            differences.append(f"{name} {expected_special[name]!r} (base) vs {actual_special[name]!r} (reward model)")
    return "; ".join(differences) or None


def model_vocab_size(model: Any) -> int:
    """Number of rows of a causal LM's output embedding, i.e. the width of its logits.

    Args:
        model (`PreTrainedModel`): A causal LM, a PEFT model or an `AutoregressiveRewardModel`.

    Returns:
        `int`: The logit width; padded rows included.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> model_vocab_size(make_tiny_causal_lm(vocab_size=416))
    416
    ```
    """
    output_embeddings = model.get_output_embeddings()
    if output_embeddings is None:
        raise ValueError(f"{type(model).__name__} has no language-model head (get_output_embeddings() is None).")
    return int(output_embeddings.weight.shape[0])

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

from transformers.utils import logging

from .configuration import RewardModelMetadata

logger = logging.get_logger(__name__)

__all__ = [
    "check_reward_model_vocabularies",
    "describe_tokenizer_difference",
    "model_vocab_size",
    "tokenizer_fingerprint",
]


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


def check_reward_model_vocabularies(models: list[Any], tokenizer: Any, model_tokenizers: Any = None) -> int | None:
    """Refuse reward models that do not share the base tokenizer; return the shared vocabulary size.

    Every guided decoding path (`GenARMLogitsProcessor`, the vLLM integration) calls this one check, so a
    mismatch reads the same everywhere.

    Args:
        models (`list[PreTrainedModel]`): The reward models (`AutoregressiveRewardModel`s carry their
            tokenizer's fingerprint in their metadata; plain causal LMs need `model_tokenizers`).
        tokenizer (`PreTrainedTokenizerBase` or `None`): The base model's tokenizer.
        model_tokenizers (`list`, *optional*): One tokenizer (or `None`) per reward model.

    Returns:
        `int` or `None`: `len(tokenizer)` (or the reward models' recorded size when no base tokenizer is
        given); `None` when nothing tells the size.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> check_reward_model_vocabularies([make_tiny_causal_lm()], tokenizer, [tokenizer])
    400
    ```
    """
    if model_tokenizers is not None and len(model_tokenizers) != len(models):
        raise ValueError("`reward_model_tokenizers` needs one entry (or None) per reward model.")
    base_fingerprint = tokenizer_fingerprint(tokenizer) if tokenizer is not None else None
    shared = base_fingerprint["vocab_size"] if base_fingerprint else None
    for index, model in enumerate(models):
        width = model_vocab_size(model)
        fingerprint = None
        if model_tokenizers is not None and model_tokenizers[index] is not None:
            fingerprint = tokenizer_fingerprint(model_tokenizers[index])
        elif isinstance(getattr(model, "metadata", None), RewardModelMetadata):  # an AutoregressiveRewardModel
            fingerprint = model.metadata.tokenizer
        if base_fingerprint and not fingerprint:
            logger.warning_once(
                f"`reward_models[{index}]` ({type(model).__name__}) records no tokenizer, so it cannot be checked "
                "against the base tokenizer. Pass its tokenizer in `reward_model_tokenizers=`, or use an "
                "AutoregressiveRewardModel saved with one."
            )
        if base_fingerprint and fingerprint:
            difference = describe_tokenizer_difference(base_fingerprint, fingerprint)
            if difference:
                raise ValueError(
                    f"`reward_models[{index}]` was trained with another tokenizer than the base model's "
                    f"({difference}). GenARM adds log-probabilities token id by token id, so the reward model "
                    "must share the base model's tokenizer. To guide with it anyway, opt in to cross-tokenizer "
                    "guidance: `hf_genarm.cross_tokenizer.CrossTokenizerGenARMLogitsProcessor(reward_models, "
                    "tokenizer=base_tokenizer, reward_model_tokenizers=[...])` scores the text of the base's top "
                    "candidates under the reward model (docs: how-to/cross-tokenizer)."
                )
        if shared is None and fingerprint:
            shared = fingerprint["vocab_size"]
        if shared is not None and width < shared:
            raise ValueError(
                f"`reward_models[{index}]` has {width} output rows, fewer than the {shared} tokens of the "
                "tokenizer; it cannot score every token the base model can produce."
            )
    return shared

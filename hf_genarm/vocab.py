"""Tokenizer policy: fingerprints, the recorded tokenizer that always wins, and base/reward-model compatibility.

GenARM adds the reward model's next-token log-probabilities to the base model's, token id by token
id, so both must speak the same tokenizer. Models of one family often pad their embedding matrices to a
multiple of 8, 64 or 128 rows, so equal tokenizers can come with different logit widths: the shared
vocabulary is the tokenizer's, and extra padded rows on either side are dropped.

A reward model records its tokenizer's fingerprint, and one comparison (`_recorded_difference`) checks every
tokenizer handed over against it: one read with the model (`check_reward_model_tokenizer`), one recorded with it
or saved beside it (`checked_tokenizer_fingerprint`, `check_folder_tokenizer`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from transformers.utils import logging

from .configuration import GENARM_CONFIG_NAME, RewardModelMetadata

logger = logging.get_logger(__name__)

__all__ = [
    "check_folder_tokenizer",
    "check_reward_model_tokenizer",
    "check_reward_model_vocabularies",
    "checked_tokenizer_fingerprint",
    "describe_tokenizer_difference",
    "load_folder_tokenizer",
    "model_vocab_size",
    "recorded_tokenizer_fingerprint",
    "tokenizer_file_names",
    "tokenizer_fingerprint",
]

# How a user deliberately reads a reward model with another tokenizer than the one it records (named in errors).
_RECORDED_TOKENIZER_WINS = (
    "A reward model's recorded tokenizer always wins: pass the tokenizer saved with it "
    "(`AutoTokenizer.from_pretrained(reward_model_folder)`), or `None` to use the recorded one. To read it with "
    "another tokenizer on purpose, retrain or wrap the plain causal LM (`reward_model.model`), which records none."
)
# How a user deliberately gives a reward model another tokenizer than the one it records (named in the errors).
_RETRAIN_WITH_ANOTHER_TOKENIZER = (
    "To start afresh with another tokenizer on purpose (e.g. to retrain), wrap or train the plain causal LM "
    "(`reward_model.model`, or `AutoModelForCausalLM.from_pretrained(folder)`), which records no tokenizer."
)

# Files of which `tokenizer.save_pretrained` writes at least one: a folder without them holds no tokenizer.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
# Every file a tokenizer's `save_pretrained` may write, whatever its family (replaced together by a new tokenizer).
_TOKENIZER_FILE_NAMES = (
    *TOKENIZER_FILES, "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "spm.model", "chat_template.jinja",
    "chat_template.json",
)  # fmt: skip


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


def describe_tokenizer_difference(
    expected: dict[str, Any], actual: dict[str, Any], names: tuple[str, str] = ("base", "reward model")
) -> str | None:
    """Say in words how two tokenizer fingerprints differ, or return `None` when they match.

    Special tokens only count as a difference when both sides name the token: a base tokenizer without
    a pad token still matches a reward model whose tokenizer was given one for training.

    Args:
        expected (`dict`): Fingerprint of the base model's tokenizer (see `tokenizer_fingerprint`).
        actual (`dict`): Fingerprint of the reward model's tokenizer.
        names (`tuple[str, str]`, *optional*, defaults to `("base", "reward model")`): How the description names
            the two sides (e.g. `("given", "recorded")`).

    Returns:
        `str` or `None`: A one-sentence description of the first differences found.

    Examples:

    ```python
    >>> describe_tokenizer_difference({"vocab_size": 10, "vocab_sha256": "a"}, {"vocab_size": 12, "vocab_sha256": "b"})
    'vocabulary size 10 (base) vs 12 (reward model)'
    >>> describe_tokenizer_difference({"vocab_size": 10}, {"vocab_size": 12}, names=("given", "recorded"))
    'vocabulary size 10 (given) vs 12 (recorded)'
    ```
    """
    expected_name, actual_name = names
    differences = []
    if expected.get("vocab_size") != actual.get("vocab_size"):
        differences.append(
            f"vocabulary size {expected.get('vocab_size')} ({expected_name}) vs {actual.get('vocab_size')} "
            f"({actual_name})"
        )
    elif expected.get("vocab_sha256") != actual.get("vocab_sha256"):
        differences.append("same vocabulary size but different tokens or token ids")
    expected_special = expected.get("special_tokens", {})
    actual_special = actual.get("special_tokens", {})
    for name in sorted(set(expected_special) & set(actual_special)):
        if expected_special[name] != actual_special[name]:
            differences.append(
                f"{name} {expected_special[name]!r} ({expected_name}) vs {actual_special[name]!r} ({actual_name})"
            )
    return "; ".join(differences) or None


def recorded_tokenizer_fingerprint(model: Any) -> dict[str, Any] | None:
    """The tokenizer fingerprint a reward model records in its metadata, or `None` (a plain causal LM, or none saved).

    Args:
        model (`PreTrainedModel`): An `AutoregressiveRewardModel` or a plain causal LM.

    Returns:
        `dict` or `None`: the fingerprint (see `tokenizer_fingerprint`).

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), tokenizer=make_tiny_tokenizer())
    >>> recorded_tokenizer_fingerprint(reward_model)["vocab_size"]
    400
    >>> recorded_tokenizer_fingerprint(make_tiny_causal_lm()) is None
    True
    ```
    """
    metadata = getattr(model, "metadata", None)
    if not isinstance(metadata, RewardModelMetadata):
        return None
    return metadata.tokenizer or None


def _recorded_difference(tokenizer: Any, recorded: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """`tokenizer`'s fingerprint, and how it differs from the `recorded` one (given vs recorded), or `None`."""
    fingerprint = tokenizer_fingerprint(tokenizer)
    if recorded is None:
        return fingerprint, None
    return fingerprint, describe_tokenizer_difference(fingerprint, recorded, names=("given", "recorded"))


def check_reward_model_tokenizer(
    model: Any, tokenizer: Any, argument: str, owner: str = "the reward model", fix: str | None = None
) -> dict:
    """Refuse a tokenizer given to read a reward model when it contradicts the tokenizer the model records.

    The one rule wherever a tokenizer is handed over for a reward model (guidance, scoring, the CLI): a recorded
    fingerprint is never overridden, since feeding a reward model another vocabulary's ids scores every token
    against the wrong row without a word.

    Args:
        model (`PreTrainedModel`): The reward model (an `AutoregressiveRewardModel` or a plain causal LM).
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer given for it.
        argument (`str`): How errors name where `tokenizer` came from (e.g. "`reward_model_tokenizers[0]`").
        owner (`str`, *optional*): How errors name the model (e.g. "`reward_models[0]`").
        fix (`str`, *optional*): What the error tells the user to do; defaults to passing the recorded tokenizer
            (or `None`, where the caller then checks against the recorded fingerprint).

    Returns:
        `dict`: the fingerprint of `tokenizer` (equal to the recorded one when there is one).

    Raises:
        ValueError: naming the argument, the recorded and the given tokenizer, and the fix.

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), tokenizer=make_tiny_tokenizer())
    >>> check_reward_model_tokenizer(reward_model, make_tiny_metaspace_tokenizer(), "`tokenizer`")
    Traceback (most recent call last):
    ...
    ValueError: `tokenizer` is not the tokenizer the reward model records (vocabulary size 456 (given) vs 400 ...
    ```
    """
    fingerprint, difference = _recorded_difference(tokenizer, recorded_tokenizer_fingerprint(model))
    if difference is not None:
        raise ValueError(
            f"{argument} is not the tokenizer {owner} records ({difference}); reading the reward model with it would "
            f"feed it another vocabulary's ids. {fix or _RECORDED_TOKENIZER_WINS}"
        )
    return fingerprint


def checked_tokenizer_fingerprint(
    tokenizer: Any, recorded: dict[str, Any] | None, argument: str, owner: str, fix: str | None = None
) -> dict:
    """The fingerprint of `tokenizer`, refused when it differs from the `recorded` one.

    The rule for a tokenizer recorded with a reward model: a recorded fingerprint is never silently replaced
    (the processor relies on it to refuse base models whose tokenizer differs), whether the tokenizer comes with a
    re-wrap, a save, a push, a training run or the tokenizer files of a saved folder.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer given.
        recorded (`dict`, *optional*): The fingerprint recorded so far; `None` records `tokenizer`'s.
        argument (`str`): How errors name where `tokenizer` came from (e.g. "`processing_class`").
        owner (`str`): How errors name what records `recorded` (e.g. "the reward model").
        fix (`str`, *optional*): What the error tells the user to do; defaults to passing the reward model's own
            tokenizer, or starting afresh from the plain causal LM to use another one on purpose.

    Returns:
        `dict`: the fingerprint of `tokenizer` (see `tokenizer_fingerprint`).

    Raises:
        ValueError: Naming the difference and the fix.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> checked_tokenizer_fingerprint(tokenizer, None, "`tokenizer`", "the reward model")["vocab_size"]
    400
    ```
    """
    fingerprint, difference = _recorded_difference(tokenizer, recorded)
    if difference is not None:
        fix = fix or "Pass the reward model's own tokenizer. " + _RETRAIN_WITH_ANOTHER_TOKENIZER
        raise ValueError(
            f"{argument} differs from the tokenizer {owner} records ({difference}). A recorded tokenizer is never "
            f"replaced: guided decoding relies on it to refuse base models whose tokenizer differs. {fix}"
        )
    return fingerprint


def tokenizer_file_names(names: list[str]) -> list[str]:
    """The names among `names` that a tokenizer's `save_pretrained` writes (of any tokenizer family)."""
    return [name for name in names if name in _TOKENIZER_FILE_NAMES or name.endswith(".tiktoken")]


def check_folder_tokenizer(folder: str | os.PathLike, tokenizer: Any = None) -> Any:
    """Refuse a folder whose tokenizer files contradict the tokenizer its `genarm_config.json` records.

    The one check wherever a saved reward model's tokenizer is read from its folder (scoring, training from the
    folder, pushing it): tokenizer files written over a saved reward model (another model's tokenizer) would
    otherwise tokenize with the wrong vocabulary without a word.

    Args:
        folder (`str` or `os.PathLike`): A local folder.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): The tokenizer already loaded from `folder`; loaded here
            when omitted and the folder holds tokenizer files.

    Returns:
        The tokenizer (`None` when the folder holds none and none was given).

    Raises:
        ValueError: Naming the folder and the difference.
    """
    folder = os.fspath(folder)
    metadata_path = os.path.join(folder, GENARM_CONFIG_NAME)
    if not os.path.isdir(folder):
        return tokenizer
    if tokenizer is None:
        if not any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES):
            return None
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
    if os.path.isfile(metadata_path):
        recorded = RewardModelMetadata.from_json_file(metadata_path).tokenizer
        checked_tokenizer_fingerprint(
            tokenizer,
            recorded,
            f"The tokenizer saved in {folder}",
            metadata_path,
            fix="Other tokenizer files were likely written over the reward model's: save the reward model's own "
            "tokenizer into the folder again (`tokenizer.save_pretrained(folder)`), or re-save the reward model.",
        )
    return tokenizer


def load_folder_tokenizer(name: str | os.PathLike, **kwargs: Any) -> Any:
    """`AutoTokenizer.from_pretrained(name, **kwargs)`, checked by `check_folder_tokenizer` when `name` is a folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    return check_folder_tokenizer(name, tokenizer)


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
    # Each reward model's tokenizer: the one it records wins; a given one must agree with it.
    fingerprints = []
    for index, model in enumerate(models):
        given = model_tokenizers[index] if model_tokenizers is not None else None
        if given is not None:
            fingerprints.append(
                check_reward_model_tokenizer(
                    model, given, f"`reward_model_tokenizers[{index}]`", f"`reward_models[{index}]`"
                )
            )
        else:
            fingerprints.append(recorded_tokenizer_fingerprint(model))
    for index, (model, fingerprint) in enumerate(zip(models, fingerprints)):
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
    # Where the shared vocabulary's size comes from, decided over the whole list (so errors do not depend on its
    # order): the base tokenizer, else the tokenizers the reward models record, which must then agree.
    if base_fingerprint:
        shared, source = base_fingerprint["vocab_size"], "the base tokenizer (`tokenizer=`)"
    else:
        known = [(index, fingerprint) for index, fingerprint in enumerate(fingerprints) if fingerprint]
        for index, fingerprint in known[1:]:
            names = (f"reward_models[{known[0][0]}]", f"reward_models[{index}]")
            difference = describe_tokenizer_difference(known[0][1], fingerprint, names=names)
            if difference:
                raise ValueError(
                    f"`reward_models[{known[0][0]}]` and `reward_models[{index}]` use different tokenizers "
                    f"({difference}); GenARM adds their log-probabilities token id by token id. Guide with reward "
                    "models of one tokenizer, or pass `tokenizer=` (the base's) and use "
                    "`CrossTokenizerGenARMLogitsProcessor` for those of another."
                )
        if not known:
            return None
        shared = known[0][1]["vocab_size"]
        source = f"the tokenizer `reward_models[{known[0][0]}]` records"
    for index, (model, fingerprint) in enumerate(zip(models, fingerprints)):
        width = model_vocab_size(model)
        if width >= shared:
            continue
        if fingerprint:
            raise ValueError(
                f"`reward_models[{index}]` has {width} output rows, fewer than the {shared} tokens of its own "
                "tokenizer; it cannot score every token of its vocabulary. Pass the tokenizer it was trained with."
            )
        raise ValueError(
            f"`reward_models[{index}]` ({type(model).__name__}, recording no tokenizer) has {width} output rows, "
            f"fewer than the {shared} tokens of {source}: it cannot score every token the base model can produce, "
            "so it uses another (smaller) tokenizer. Pass each reward model's tokenizer in "
            "`reward_model_tokenizers=` and the base's as `tokenizer=`; reward models of another tokenizer than "
            "the base's guide through `CrossTokenizerGenARMLogitsProcessor`."
        )
    return shared

"""Preference data for training autoregressive reward models: TRL's formats in, tokenized pairs out.

Three dataset layouts are accepted, as TRL's `DPOTrainer` accepts them:

* explicit prompt: `{"prompt": str, "chosen": str, "rejected": str}`;
* implicit prompt: `{"chosen": str, "rejected": str}`, the prompt being the longest common prefix of the two
  tokenized texts;
* conversational: the same keys holding lists of `{"role", "content"}` messages, rendered with the tokenizer's
  chat template (the prompt with the generation prompt added; an implicit prompt is the longest common run of
  leading messages). Roles must be `system`, `user`, `assistant` or `tool`, and responses `assistant` messages;
  other rows (e.g. ShareGPT's `human` / `gpt` roles) are skipped and reported, never rendered as they are.
  A text prompt beside message responses is the user turn they answer, or, where the messages open with
  shared turns, must repeat one of their user turns (skipped and reported otherwise).

Each may come as a `datasets.Dataset`, a JSON Lines (or JSON array) file, gzip-compressed or not (`.gz`), or a
list of dicts.
`prepare_preference_dataset` turns it into rows of `prompt_ids`, `chosen_ids` and `rejected_ids`; rows that
cannot train (identical responses, empty responses, missing or non-string values, ...) are skipped, counted by
reason and logged, and over-long prompts are truncated and counted. `PreferenceCollator` pads a list of such
rows into one batch holding the chosen sequences followed by the rejected ones, for a single forward pass.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
from transformers.utils import logging

from ._cross_tokenizer_text import RewardTokenizer
from .configuration import validate_positive_length
from .scoring import common_prefix_length, split_prompt_response
from .training_options import TRUNCATION_MODES

__all__ = [
    "PREFERENCE_FILE_TYPES",
    "TRUNCATION_MODES",
    "PreferenceCollator",
    "PreferenceDataReport",
    "load_preference_source",
    "prepare_preference_dataset",
    "read_json_rows",
]

logger = logging.get_logger(__name__)

TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
_TEXT = "text"
_CONVERSATIONAL = "conversational"
_SKIP = "_skip_reason"
_PROMPT_TRUNCATED = "_prompt_truncated"
_RESPONSE_TRUNCATED = "_response_truncated"
_PROMPT_ROLES_FOR_GENERATION = ("user", "tool", "system")
# The roles chat templates know; anything else (ShareGPT's "human"/"gpt", "bot", ...) would be rendered by some
# templates as if it were one of these, or dropped, so such rows are skipped and reported instead.
_CHAT_ROLES = ("system", "user", "assistant", "tool")
_RESPONSE_ROLE = "assistant"
_EXPECTED_ROLES = f"expected {', '.join(_CHAT_ROLES[:-1])} or {_CHAT_ROLES[-1]}"


@dataclass
class PreferenceDataReport:
    """What `prepare_preference_dataset` did to a dataset: rows kept, skipped (by reason) and truncated.

    Args:
        name (`str`): Name of the dataset in messages (e.g. `"train_dataset"`).
        format (`str`): `"text"` or `"conversational"`.
        explicit_prompt (`bool`): Whether the data had a `prompt` column (otherwise the prompt was extracted).
        rows (`int`): Rows read.
        kept (`int`): Rows left for training.
        skipped (`dict[str, int]`): Number of skipped rows per reason.
        prompts_truncated (`int`): Kept rows whose prompt was cut to `max_prompt_length`.
        responses_truncated (`int`): Kept rows with a response cut so that prompt and response fit `max_length`.

    Examples:

    ```python
    >>> report = PreferenceDataReport("train_dataset", "text", True, rows=3, kept=2, skipped={"empty response": 1})
    >>> print(report.summary())
    train_dataset: kept 2 of 3 rows; skipped 1 (1 empty response)
    ```
    """

    name: str
    format: str
    explicit_prompt: bool
    rows: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    prompts_truncated: int = 0
    responses_truncated: int = 0

    @property
    def num_skipped(self) -> int:
        """Total number of skipped rows."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line describing the preparation, for logs and error messages."""
        parts = [f"{self.name}: kept {self.kept} of {self.rows} rows"]
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
            parts.append(f"skipped {self.num_skipped} ({reasons})")
        if self.prompts_truncated:
            parts.append(f"truncated {self.prompts_truncated} prompts to max_prompt_length")
        if self.responses_truncated:
            parts.append(f"truncated the responses of {self.responses_truncated} rows to fit max_length")
        return "; ".join(parts)


def check_truncation_settings(max_length: Any, max_prompt_length: Any, truncation_mode: Any) -> None:
    """Check the length limits and truncation mode of data preparation (shared by `ARMConfig`).

    Raises:
        ValueError: for an unknown `truncation_mode`, a limit that is not a positive int or `None`, or a
            `max_prompt_length` that leaves no room for the response within `max_length`.
        TypeError: for a limit that is not an int.
    """
    if truncation_mode not in TRUNCATION_MODES:
        raise ValueError(f"`truncation_mode` must be one of {TRUNCATION_MODES}, got {truncation_mode!r}.")
    validate_positive_length(max_length, "max_length")
    validate_positive_length(max_prompt_length, "max_prompt_length")
    if max_length is not None and max_prompt_length is not None and max_prompt_length >= max_length:
        raise ValueError(
            f"`max_prompt_length` ({max_prompt_length}) must be smaller than `max_length` ({max_length}) to leave "
            "room for the response."
        )


def _describe_type(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _value_format(value: Any) -> str | None:
    """`"text"` for a string, `"conversational"` for a list of role/content messages, else `None`."""
    if isinstance(value, str):
        return _TEXT
    if isinstance(value, (list, tuple)) and all(
        isinstance(message, Mapping) and "role" in message and "content" in message for message in value
    ):
        return _CONVERSATIONAL
    return None


def _row_problem(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[str | None, str | None]:
    """Check one raw row; return `(format, None)` when usable, else `(None, reason)`."""
    formats = {}
    for column in columns:
        value = row.get(column)
        if value is None:
            return None, f"missing value in '{column}'"
        value_format = _value_format(value)
        if value_format is None:
            if isinstance(value, (list, tuple)):
                return None, f"'{column}' is a list but not of {{'role', 'content'}} messages"
            return None, f"non-string value in '{column}'"
        if value_format == _CONVERSATIONAL:
            for message in value:
                if not isinstance(message["content"], str):
                    return None, f"non-string message content in '{column}'"
                if not isinstance(message["role"], str):
                    return None, f"non-string message role in '{column}'"
                if message["role"] not in _CHAT_ROLES:
                    return None, f"unknown message role {message['role']!r} in '{column}' ({_EXPECTED_ROLES})"
        formats[column] = value_format
    if formats["chosen"] != formats["rejected"]:
        return None, "'chosen' and 'rejected' mix text and messages"
    if formats.get("prompt") == _CONVERSATIONAL and formats["chosen"] == _TEXT:
        return None, "text responses after a conversational prompt"
    return formats["chosen"], None


_PAIR_ROW = "one object with 'chosen' and 'rejected' (and optionally 'prompt')"


def read_json_rows(path: str | os.PathLike, expected_row: str = _PAIR_ROW) -> list[Any]:
    r"""Rows of a JSON Lines file (one value per line) or of a JSON file holding an array, either optionally gzipped.

    The package's one reader of such files: preference data, and the prompts files of `hf-genarm generate`.

    Args:
        path (`str` or `os.PathLike`): The file; a name ending in `.gz` (any case) is read as gzip-compressed.
        expected_row (`str`, *optional*): What one row should be, for the error about a line that is not JSON
            (by default a preference pair).

    Returns:
        `list`: the decoded rows, blank lines skipped.

    Raises:
        ValueError: for a `.gz` name whose content is not gzip-compressed, or a line (or array) that is not JSON;
            the message names the file and the line.
        OSError: when the file cannot be read.

    Examples:

    ```python
    >>> import json, tempfile
    >>> path = tempfile.mkdtemp() + "/pairs.jsonl"
    >>> with open(path, "w") as handle:
    ...     _ = handle.write(json.dumps({"chosen": " yes", "rejected": " no"}) + "\n\n")
    >>> read_json_rows(path)
    [{'chosen': ' yes', 'rejected': ' no'}]
    ```
    """
    path = os.fspath(path)
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except gzip.BadGzipFile:
        raise ValueError(f"{path} ends in .gz but is not gzip-compressed; rename it or compress it.") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); pass a JSON Lines file or a JSON array.") from None
        return list(rows)
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"Line {line_number} of {path} is not valid JSON ({error.msg}); each line of this JSON Lines file "
                f"must be {expected_row}."
            ) from None
    return rows


def _missing_columns_error(name: str, found: Sequence[str]) -> ValueError:
    return ValueError(
        f"`{name}` has columns {sorted(found)}, but a preference dataset needs 'chosen' and 'rejected' (and "
        "optionally 'prompt'). Rename yours, e.g. `dataset.rename_column('response_a', 'chosen')`."
    )


def _rows_to_dataset(rows: Sequence[Any], name: str) -> Dataset:
    """Turn raw rows into an Arrow dataset, marking (not dropping) rows Arrow cannot hold as they are."""
    if not rows:
        raise ValueError(f"`{name}` is empty; pass at least one preference pair.")
    keys = set()
    for row in rows:
        if isinstance(row, Mapping):
            keys.update(row)
    if "chosen" not in keys or "rejected" not in keys:
        raise _missing_columns_error(name, sorted(keys))
    columns = ["prompt", "chosen", "rejected"] if "prompt" in keys else ["chosen", "rejected"]
    sanitized = []
    dataset_format = None
    for row in rows:
        if isinstance(row, Mapping):
            row_format, reason = _row_problem(row, columns)
        else:
            row_format, reason = None, f"row is a {_describe_type(row)}, not a dict"
        if reason is None:
            dataset_format = dataset_format or row_format
            if row_format != dataset_format:
                reason = f"{row_format} row in a {dataset_format} dataset"
        values = dict.fromkeys(columns)
        if reason is None:
            values.update({column: _copy_value(row[column]) for column in columns})
            if row_format == _CONVERSATIONAL and isinstance(values.get("prompt"), str):
                # Stored as messages so that a conversational dataset keeps one Arrow type in its 'prompt' column.
                values["prompt"], reason = _text_prompt_as_messages(
                    values["prompt"], values["chosen"], values["rejected"]
                )
        if reason is not None:
            values = dict.fromkeys(columns)
        values["_precheck"] = reason or ""
        sanitized.append(values)
    return Dataset.from_list(sanitized)


def _copy_value(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return [{key: item for key, item in message.items() if item is not None} for message in value]


def _load_preference_data(data: Any, name: str = "train_dataset") -> Dataset:
    """Read preference data given as a `datasets.Dataset`, a JSON Lines / JSON file or a list of dicts.

    Values Arrow could not store (a number where text is expected, a row that is not a dict, a row of the other
    format) are replaced by nulls and marked, so that `prepare_preference_dataset` can count them as skipped.

    Args:
        data (`datasets.Dataset`, `str`, `os.PathLike` or `list[dict]`):
            The data. A path must point to a `.jsonl` file (one JSON object per line) or a `.json` file holding
            an array of objects, either of them optionally gzip-compressed (`.jsonl.gz`, `.json.gz`).
        name (`str`, *optional*, defaults to `"train_dataset"`): Name used in error messages.

    Returns:
        `datasets.Dataset` with columns `chosen`, `rejected` and, if present, `prompt`.

    Raises:
        TypeError: for an unsupported container (e.g. a `DatasetDict`: pick a split).
        ValueError: when `chosen` or `rejected` is missing, or a file is not valid JSON.
    """
    if isinstance(data, Dataset):
        columns = set(data.column_names)
        if not ({"chosen", "rejected"} <= columns or set(TOKENIZED_COLUMNS) <= columns):
            raise _missing_columns_error(name, data.column_names)
        return data
    if isinstance(data, (DatasetDict, IterableDatasetDict)):
        raise TypeError(f"`{name}` is a {type(data).__name__}; pass one split, e.g. `dataset['train']`.")
    if isinstance(data, IterableDataset):
        raise TypeError(
            f"`{name}` is an IterableDataset, whose skipped rows cannot be counted before training; materialise it "
            "first, e.g. `Dataset.from_generator(lambda: iter(streamed))` or `Dataset.from_list(list(streamed))`."
        )
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"`{name}` is the path {path!r}, which is not a file; pass a .jsonl or .json file (optionally .gz)."
            )
        return _rows_to_dataset(read_json_rows(path), name)
    if isinstance(data, (list, tuple)):
        return _rows_to_dataset(data, name)
    raise TypeError(
        f"`{name}` must be a datasets.Dataset, a path to a .jsonl/.json file or a list of dicts, got "
        f"{type(data).__name__}."
    )


PREFERENCE_FILE_TYPES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".csv")
"""File names (any case) `load_preference_source` reads as preference data."""
_SAVED_DATASET_FILES = ("dataset_dict.json", "state.json")


def load_preference_source(
    source: str, split: str = "train", name: str = "train_dataset", split_name: str = "split"
) -> str | Dataset:
    r"""Read preference pairs named by a string, as a command line or a config file gives them, and check them.

    Args:
        source (`str`): A `.jsonl` / `.json` file (optionally `.gz`), a `.csv` file, a folder written by
            `Dataset.save_to_disk` (a `Dataset` or a `DatasetDict`), or a Hub dataset id.
        split (`str`, *optional*, defaults to `"train"`): The split of a `DatasetDict` or a Hub dataset.
        name (`str`, *optional*, defaults to `"train_dataset"`): How errors about the pairs name the source (errors
            about the source itself name its path).
        split_name (`str`, *optional*, defaults to `"split"`): How errors name the split argument.

    Returns:
        `str` or `datasets.Dataset`: what `ARMTrainer` takes, the path of a JSON file (so that the run records its
        file name) or a dataset; in both cases its pairs have been read and checked.

    Raises:
        FileNotFoundError: for a data file name that does not exist (never looked up on the Hub, although such a
            name is a valid Hub id) or a path that is neither a file, a folder nor a Hub id.
        ValueError: for a file of another type, a folder that is not a saved dataset, a missing split, or data
            without `chosen` / `rejected` (see `prepare_preference_dataset`).

    Examples:

    ```python
    >>> import json, tempfile
    >>> path = tempfile.mkdtemp() + "/pairs.jsonl"
    >>> with open(path, "w") as handle:
    ...     _ = handle.write(json.dumps({"prompt": "Q:", "chosen": " yes", "rejected": " no"}) + "\n")
    >>> load_preference_source(path) == path
    True
    ```
    """
    import datasets

    from ._hub_ids import looks_like_hub_id

    is_data_file = source.lower().endswith(PREFERENCE_FILE_TYPES)
    if os.path.isfile(source):
        if not is_data_file:
            raise ValueError(f"{source} is not a .jsonl, .json (optionally .gz) or .csv file")
        loaded = datasets.Dataset.from_csv(source) if source.lower().endswith(".csv") else source
    elif os.path.isdir(source):
        if not any(os.path.isfile(os.path.join(source, file)) for file in _SAVED_DATASET_FILES):
            raise ValueError(f"{source} is not a folder written by Dataset.save_to_disk")
        loaded = datasets.load_from_disk(source)
    elif is_data_file:
        raise FileNotFoundError(f"file not found: {source}")
    elif not looks_like_hub_id(source):
        raise FileNotFoundError(f"no such file or folder: {source}")
    else:
        loaded = datasets.load_dataset(source)
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise ValueError(f"{source} has no split {split!r}; choose one of {sorted(loaded)} with {split_name}")
        loaded = loaded[split]
    _load_preference_data(loaded, name=name)
    return loaded


def _text_prompt_as_messages(
    prompt: str, chosen: Sequence[Mapping[str, Any]], rejected: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Read a text prompt beside message-list responses: `(prompt messages, None)` or `(None, skip reason)`.

    TRL has no reading for this mixed form (its chat-template step indexes a string prompt as messages), so
    the rule is this package's, and never drops the prompt silently:

    - the message lists hold only the responses: the text is the user turn they answer;
    - the lists open with shared turns (HuggingFaceH4/ultrafeedback_binarized repeats the prompt as their
      first user turn): the text must be one of those user turns, and the shared turns are the prompt
      (returned as `None`: the implicit prompt);
    - otherwise the row is skipped with a reason.
    """
    if not prompt.strip():
        return None, None
    shared = list(chosen[: common_prefix_length(chosen, rejected)])
    if not shared:
        return [{"role": "user", "content": prompt}], None
    if any(message["role"] == "user" and message["content"].strip() == prompt.strip() for message in shared):
        return None, None
    return None, "text prompt that is none of the user turns shared by 'chosen' and 'rejected'"


def _is_empty_response(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return all(not message["content"].strip() for message in value)


def _render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    last_role = messages[-1]["role"] if messages else "user"
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=last_role in _PROMPT_ROLES_FOR_GENERATION,
        continue_final_message=last_role == "assistant",
    )


def _tokenize_rendered(tokenizer: Any, text: str) -> list[int]:
    # The chat template already wrote any BOS it wants; adding special tokens again would double it.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _split_pair(row: Mapping[str, Any], tokenizer: Any) -> tuple[list[int], list[int], list[int]] | str:
    """Tokenize one valid row into prompt, chosen and rejected ids, or return a skip reason."""
    prompt = row.get("prompt")
    chosen, rejected = row["chosen"], row["rejected"]
    conversational = _value_format(chosen) == _CONVERSATIONAL
    if isinstance(prompt, str) and conversational:
        prompt, reason = _text_prompt_as_messages(prompt, chosen, rejected)
        if reason is not None:
            return reason
    if prompt is None and conversational:
        shared = common_prefix_length(chosen, rejected)
        prompt, chosen, rejected = list(chosen[:shared]), list(chosen[shared:]), list(rejected[shared:])
    if prompt is not None and (_is_empty_response(chosen) or _is_empty_response(rejected)):
        return "empty response"
    if conversational:
        for response in (chosen, rejected):
            roles = sorted({message["role"] for message in response} - {_RESPONSE_ROLE})
            if roles:
                return f"response message with role {roles[0]!r} (responses must be '{_RESPONSE_ROLE}' messages)"
    if conversational:
        prompt_ids = _tokenize_rendered(tokenizer, _render_prompt(tokenizer, prompt)) if prompt else []
        full_chosen = _tokenize_rendered(tokenizer, tokenizer.apply_chat_template(prompt + chosen, tokenize=False))
        full_rejected = _tokenize_rendered(tokenizer, tokenizer.apply_chat_template(prompt + rejected, tokenize=False))
    else:
        # Text reads as scoring and guidance read it: a special prefix (a BOS), then the text's own tokens; special
        # tokens a post-processor appends (a WordPiece `[SEP]`) are no part of the response, which ends in EOS.
        text_ids = RewardTokenizer(tokenizer).text_ids
        if prompt is not None:
            prompt_ids = text_ids(prompt)
            full_chosen, full_rejected = text_ids(prompt + chosen), text_ids(prompt + rejected)
        else:
            prompt_ids, full_chosen, full_rejected = None, text_ids(chosen), text_ids(rejected)
    # The boundary rule scoring uses; a chat template writes its own end of turn, so only text responses get EOS.
    prompt_ids, (chosen_ids, rejected_ids) = split_prompt_response(
        prompt_ids,
        [full_chosen, full_rejected],
        eos_token_id=None if conversational else tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    if not chosen_ids or not rejected_ids:
        return "empty response"
    if not prompt_ids:
        return "empty prompt and no BOS token to condition on"
    return prompt_ids, chosen_ids, rejected_ids


def _tokenize_row(
    row: Mapping[str, Any],
    tokenizer: Any,
    columns: Sequence[str],
    max_length: int | None,
    max_prompt_length: int | None,
    truncation_mode: str,
) -> dict[str, Any]:
    output: dict[str, Any] = {
        "prompt_ids": [],
        "chosen_ids": [],
        "rejected_ids": [],
        _SKIP: "",
        _PROMPT_TRUNCATED: False,
        _RESPONSE_TRUNCATED: False,
    }
    reason = row["_precheck"] if "_precheck" in row else _row_problem(row, columns)[1]
    if reason:
        output[_SKIP] = reason
        return output
    if row["chosen"] == row["rejected"]:
        output[_SKIP] = "chosen equals rejected"
        return output
    split = _split_pair(row, tokenizer)
    if isinstance(split, str):
        output[_SKIP] = split
        return output
    prompt_ids, chosen_ids, rejected_ids = split
    if chosen_ids == rejected_ids:
        output[_SKIP] = "chosen equals rejected"
        return output
    if max_prompt_length is not None and len(prompt_ids) > max_prompt_length:
        keep = slice(-max_prompt_length, None) if truncation_mode == "keep_end" else slice(max_prompt_length)
        prompt_ids = prompt_ids[keep]
        output[_PROMPT_TRUNCATED] = True
    if max_length is not None:
        budget = max_length - len(prompt_ids)
        if budget <= 0:
            output[_SKIP] = "prompt fills max_length"
            return output
        if len(chosen_ids) > budget or len(rejected_ids) > budget:
            chosen_ids, rejected_ids = chosen_ids[:budget], rejected_ids[:budget]
            output[_RESPONSE_TRUNCATED] = True
            if chosen_ids == rejected_ids:
                output[_SKIP] = "chosen equals rejected within max_length"
                return output
    output.update(prompt_ids=prompt_ids, chosen_ids=chosen_ids, rejected_ids=rejected_ids)
    return output


def _dataset_format(dataset: Dataset) -> str:
    for row in dataset:
        if row.get("_precheck"):
            continue
        row_format, reason = _row_problem(row, ["chosen", "rejected"])
        if reason is None:
            return row_format
    return _TEXT


def _check_feature_types(dataset: Dataset, name: str) -> None:
    from datasets import Value

    for column in ("prompt", "chosen", "rejected"):
        if column not in dataset.features:
            continue
        feature = dataset.features[column]
        if isinstance(feature, Value) and feature.dtype not in ("string", "large_string", "null"):
            raise TypeError(
                f"Column '{column}' of `{name}` holds {feature.dtype} values; it must hold strings (text data) or "
                "lists of {'role', 'content'} messages (conversational data)."
            )


def prepare_preference_dataset(
    data: Any,
    tokenizer: Any,
    *,
    max_length: int | None = 1024,
    max_prompt_length: int | None = 512,
    truncation_mode: str = "keep_end",
    num_proc: int | None = None,
    name: str = "train_dataset",
) -> tuple[Dataset, PreferenceDataReport]:
    """Tokenize preference data into `prompt_ids`, `chosen_ids` and `rejected_ids`, skipping unusable rows.

    Text responses get the tokenizer's EOS appended (it is part of the response and of its reward);
    conversational rows are rendered with the chat template, whose end-of-turn token plays that role. Rows are
    skipped, counted by reason and logged, never passed on to crash the forward pass: missing or non-string
    values, identical chosen and rejected responses, empty responses, rows whose prompt leaves no room in
    `max_length`, messages with a role chat templates do not know (e.g. `human`, `bot`) and responses that are
    not `assistant` messages. A dataset that already has the three id columns is returned unchanged.

    Args:
        data (`datasets.Dataset`, `str`, `os.PathLike` or `list[dict]`):
            The pairs: a dataset, a path to a `.jsonl` file (one JSON object per line) or a `.json` file holding
            an array of objects (either optionally gzip-compressed, `.gz`), or a list of dicts.
        tokenizer (`PreTrainedTokenizerBase`): Tokenizer of the reward model. It needs an EOS token, and a chat
            template for conversational data.
        max_length (`int` or `None`, *optional*, defaults to `1024`):
            Longest prompt + response; longer responses are cut at the end. `None` disables the limit.
        max_prompt_length (`int` or `None`, *optional*, defaults to `512`):
            Longest prompt; longer prompts are cut according to `truncation_mode` and counted.
        truncation_mode (`str`, *optional*, defaults to `"keep_end"`):
            `"keep_end"` keeps the last `max_prompt_length` prompt tokens (nearest the response), `"keep_start"`
            the first ones.
        num_proc (`int`, *optional*): Processes for `datasets.Dataset.map`.
        name (`str`, *optional*, defaults to `"train_dataset"`): Name used in logs and errors.

    Returns:
        `tuple[datasets.Dataset, PreferenceDataReport]`: the tokenized rows and what was skipped or truncated.

    Raises:
        ValueError: for missing columns, conversational data with a tokenizer that has no chat template, a
            tokenizer without EOS token, bad limits, or when no row is usable.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> pairs = [
    ...     {"prompt": "Question: hi?", "chosen": " Answer: hello", "rejected": " Answer: go away"},
    ...     {"prompt": "Question: hi?", "chosen": " same", "rejected": " same"},
    ... ]
    >>> dataset, report = prepare_preference_dataset(pairs, make_tiny_tokenizer())
    >>> dataset.column_names, report.skipped
    (['prompt_ids', 'chosen_ids', 'rejected_ids'], {'chosen equals rejected': 1})
    ```
    """
    check_truncation_settings(max_length, max_prompt_length, truncation_mode)
    if tokenizer.eos_token_id is None:
        raise ValueError("The tokenizer has no EOS token; set `tokenizer.eos_token` before preparing preference data.")
    dataset = _load_preference_data(data, name)
    if all(column in dataset.column_names for column in TOKENIZED_COLUMNS):
        report = PreferenceDataReport(name, _TEXT, True, rows=len(dataset), kept=len(dataset))
        return dataset, report
    _check_feature_types(dataset, name)
    columns = ["prompt", "chosen", "rejected"] if "prompt" in dataset.column_names else ["chosen", "rejected"]
    dataset_format = _dataset_format(dataset)
    if dataset_format == _CONVERSATIONAL and getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"`{name}` is conversational (lists of messages) but the tokenizer has no chat template. Set "
            "`tokenizer.chat_template` to a Jinja template, or pass the model's chat tokenizer as `processing_class`."
        )
    tokenized = dataset.map(
        _tokenize_row,
        fn_kwargs={
            "tokenizer": tokenizer,
            "columns": columns,
            "max_length": max_length,
            "max_prompt_length": max_prompt_length,
            "truncation_mode": truncation_mode,
        },
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=f"Tokenizing {name}",
    )
    reasons = tokenized[_SKIP]
    kept_flags = [not reason for reason in reasons]
    report = PreferenceDataReport(
        name=name,
        format=dataset_format,
        explicit_prompt="prompt" in columns,
        rows=len(tokenized),
        kept=sum(kept_flags),
        skipped=dict(Counter(reason for reason in reasons if reason)),
        prompts_truncated=sum(flag and kept for flag, kept in zip(tokenized[_PROMPT_TRUNCATED], kept_flags)),
        responses_truncated=sum(flag and kept for flag, kept in zip(tokenized[_RESPONSE_TRUNCATED], kept_flags)),
    )
    if report.kept == 0:
        raise ValueError(f"No usable preference pair left: {report.summary()}.")
    if report.num_skipped or report.prompts_truncated or report.responses_truncated:
        logger.warning(report.summary())
    else:
        logger.info(report.summary())
    if report.num_skipped:
        tokenized = tokenized.select([index for index, kept in enumerate(kept_flags) if kept])
    return tokenized.remove_columns([_SKIP, _PROMPT_TRUNCATED, _RESPONSE_TRUNCATED]), report


@dataclass
class PreferenceCollator:
    """Pad tokenized preference rows into one batch: the chosen sequences, then the rejected ones.

    Each example holds `prompt_ids`, `chosen_ids` and `rejected_ids`. The batch has `2 * len(examples)` rows,
    right-padded: `input_ids`, `attention_mask`, and `completion_mask` (1 on response tokens, EOS included), the
    shape TRL's `DataCollatorForPreference` returns.

    Args:
        pad_token_id (`int`): Id used for padding.
        pad_to_multiple_of (`int`, *optional*): Round the padded length up to a multiple of this.

    Examples:

    ```python
    >>> collator = PreferenceCollator(pad_token_id=0)
    >>> batch = collator([{"prompt_ids": [5, 6], "chosen_ids": [7, 0], "rejected_ids": [8]}])
    >>> batch["input_ids"].tolist(), batch["completion_mask"].tolist()
    ([[5, 6, 7, 0], [5, 6, 8, 0]], [[0, 0, 1, 1], [0, 0, 1, 0]])
    ```
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("Cannot collate an empty list of examples.")
        missing = [column for column in TOKENIZED_COLUMNS if column not in examples[0]]
        if missing:
            raise ValueError(
                f"Examples lack {missing}; tokenize them first with `hf_genarm.prepare_preference_dataset`."
            )
        sequences, masks = [], []
        for response in ("chosen_ids", "rejected_ids"):
            for example in examples:
                prompt, completion = list(example["prompt_ids"]), list(example[response])
                sequences.append(prompt + completion)
                masks.append([0] * len(prompt) + [1] * len(completion))
        width = max(len(sequence) for sequence in sequences)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        completion_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (sequence, mask) in enumerate(zip(sequences, masks)):
            input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[row, : len(sequence)] = 1
            completion_mask[row, : len(mask)] = torch.tensor(mask, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}

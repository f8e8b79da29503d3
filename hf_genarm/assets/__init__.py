"""Small demo assets shipped inside the package, all trained offline on FreeBSD fortunes.

* `base/`: a 2.6M-parameter GPT-2 and its tokenizer (`AutoModelForCausalLM.from_pretrained` loads it);
* `reward-backbone/`: a 0.64M-parameter GPT-2 with the same tokenizer, the reward models' starting point;
* `preferences/`: preference pairs sampled from the base and ranked by VADER sentiment and by MiniLM topic
  closeness, and held-out demo prompts;
* `arm-sentiment/`, `arm-topic/`: autoregressive reward models trained with `ARMTrainer` on those pairs
  (`AutoregressiveRewardModel.from_pretrained` loads them).

The assets are produced, one stage at a time, by `python scripts/build_demo_assets.py` in a clone of the
repository (the build code is not part of the installed package); each stage writes a folder named after
itself under [`ASSETS_DIR`][hf_genarm.assets.ASSETS_DIR]. See `README.md` beside them. This module locates
and reads them and imports nothing heavy.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib

__all__ = ["ASSETS_DIR", "OBJECTIVES", "default_asset_path", "preference_pairs_path", "read_preference_pairs"]

ASSETS_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent
"""Folder holding the package's demo assets (this package's own directory)."""
OBJECTIVES = ("sentiment", "topic")
"""What the two embedded reward models prefer: positive sentiment (VADER) and text about computers (MiniLM)."""


def default_asset_path(name: str) -> pathlib.Path:
    """Path of an embedded demo asset, checked to exist.

    Args:
        name (`str`):
            Asset path relative to [`ASSETS_DIR`][hf_genarm.assets.ASSETS_DIR], such as `"base"` (the base
            language model folder) or `"base/training_info.json"`. Its first component is the build stage
            that produces it.

    Returns:
        `pathlib.Path`: the absolute path of the asset.

    Raises:
        FileNotFoundError: if the asset has not been built; the message gives the command that builds it.

    Examples:

    ```python
    >>> from hf_genarm.assets import default_asset_path
    >>> default_asset_path("base").name
    'base'
    ```
    """
    relative = pathlib.PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"`name` must be a path relative to {ASSETS_DIR}, such as 'base', got {name!r}.")
    path = ASSETS_DIR.joinpath(*relative.parts)
    if not path.exists():
        stage = relative.parts[0]
        # Most often a mistyped name: say what there is, in the deepest folder of the name that exists.
        folder = path.parent
        while not folder.is_dir():
            folder = folder.parent
        prefix = folder.relative_to(ASSETS_DIR).as_posix()
        present = sorted(
            f"{prefix}/{entry.name}" if prefix != "." else entry.name
            for entry in folder.iterdir()
            if not entry.name.startswith(("_", "."))
        )
        raise FileNotFoundError(
            f"Demo asset {name!r} is missing (looked for {path}). The assets there are: {', '.join(present)}. If "
            f"it should exist, build it with `python scripts/build_demo_assets.py --stage {stage}` in a clone of "
            "the repository."
        )
    return path


def preference_pairs_path(preferences_dir: str | os.PathLike, objective: str, split: str) -> pathlib.Path:
    """Path of the judged pairs of one objective and split in a `preferences` folder (gzip JSON Lines).

    Args:
        preferences_dir (`str` or `os.PathLike`): The folder, e.g. `ASSETS_DIR / "preferences"`.
        objective (`str`): `"sentiment"` or `"topic"`.
        split (`str`): `"train"` or `"held_out"`.

    Returns:
        `pathlib.Path`: `preferences_dir / f"{objective}_{split}.jsonl.gz"`, which `ARMTrainer`, `hf-genarm train`
        and `read_preference_pairs` read as they are.

    Examples:

    ```python
    >>> preference_pairs_path("prefs", "sentiment", "train").name
    'sentiment_train.jsonl.gz'
    ```
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")
    if split not in ("train", "held_out"):
        raise ValueError(f"`split` must be 'train' or 'held_out', got {split!r}.")
    return pathlib.Path(preferences_dir) / f"{objective}_{split}.jsonl.gz"


def read_preference_pairs(path: str | os.PathLike) -> list[dict]:
    """Rows of a pairs file written by the `preferences` stage (gzip JSON Lines, or plain JSON Lines).

    The package's one other JSON Lines reader, beside `hf_genarm.data.read_json_rows` (which reads what users
    give, with errors naming the file and line): `assets` is a foundation (layer 5 of docs/architecture.md), below
    `data` (layer 3), so it must not import `data`; and it reads only files this package wrote and checked.

    Args:
        path (`str` or `os.PathLike`): The file, e.g. from `preference_pairs_path`.

    Returns:
        `list[dict]`: one dict per pair, with `prompt`, `chosen`, `rejected`, `score_chosen` and `score_rejected`.

    Examples:

    ```python
    >>> rows = read_preference_pairs(preference_pairs_path(ASSETS_DIR / "preferences", "topic", "held_out"))
    >>> sorted(rows[0])
    ['chosen', 'prompt', 'rejected', 'score_chosen', 'score_rejected']
    ```
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]

"""Small demo assets shipped inside the package, all trained offline on FreeBSD fortunes.

* `base/`: a 2.6M-parameter GPT-2 and its tokenizer (`AutoModelForCausalLM.from_pretrained` loads it);
* `reward-backbone/`: a 0.64M-parameter GPT-2 with the same tokenizer, the reward models' starting point;
* `preferences/`: preference pairs sampled from the base and ranked by VADER sentiment and by MiniLM topic
  closeness, and held-out demo prompts;
* `arm-sentiment/`, `arm-topic/`: autoregressive reward models trained with `ARMTrainer` on those pairs
  (`AutoregressiveRewardModel.from_pretrained` loads them).

The assets are produced by `python -m hf_genarm.assets.build`, one stage at a time; each stage writes a
folder named after itself under [`ASSETS_DIR`][hf_genarm.assets.ASSETS_DIR]. See `README.md` beside them.
This module only locates them and imports nothing heavy; the build code lives in `hf_genarm.assets.build`.
"""

from __future__ import annotations

import pathlib

__all__ = ["ASSETS_DIR", "default_asset_path"]

ASSETS_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent
"""Folder holding the package's demo assets (this package's own directory)."""


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
        raise FileNotFoundError(
            f"Demo asset {name!r} is missing (looked for {path}). Build it with "
            f"`python -m hf_genarm.assets.build --stage {stage}`."
        )
    return path

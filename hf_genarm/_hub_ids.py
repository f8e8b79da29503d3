"""The package's one rule for Hub repository ids: checking one given as a destination, telling one from a path.

`huggingface_hub.utils.validate_repo_id` says what the Hub accepts; a name it accepts may still be a local path that
was meant ("models/base" beside a `models` folder, a data file "pairs.jsonl"). Every place that must tell a Hub id
from a path (loading, model cards, the command line, the vLLM settings) asks `looks_like_hub_id`; every place that
takes a repository to push to asks `check_repo_id`. This module imports nothing from the package.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

__all__ = ["check_repo_id", "looks_like_hub_id", "shadowing_folder"]


def _is_valid_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def looks_like_hub_id(name: Any, *, namespaced: bool = False) -> bool:
    """Whether `name` is meant as a Hub repository id rather than a local path.

    A name is a Hub id when the Hub accepts it, nothing exists at that path, and, for `"namespace/name"`, no local
    folder is called `namespace` (then a path under it was meant, mistyped or not yet written).

    Args:
        name (`str`): The name given (a local path or a Hub id).
        namespaced (`bool`, *optional*, defaults to `False`): Also require the `"namespace/name"` form, for settings
            where a bare `"name"` is far more likely a missing local folder than a Hub repository.

    Returns:
        `bool`

    Examples:

    ```python
    >>> looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    True
    >>> looks_like_hub_id("gpt2"), looks_like_hub_id("gpt2", namespaced=True)
    (True, False)
    >>> looks_like_hub_id("./arm"), looks_like_hub_id("")
    (False, False)
    ```
    """
    if not isinstance(name, str) or not name or os.path.exists(name) or not _is_valid_repo_id(name):
        return False
    if "/" not in name:
        return not namespaced
    return shadowing_folder(name) is None


def shadowing_folder(name: str) -> str | None:
    """The local folder that makes `"namespace/name"` a path rather than a Hub id (named in errors), or `None`.

    Examples:

    ```python
    >>> shadowing_folder("org/arm"), shadowing_folder("./arm")  # no folder `org` here; "./arm" is no Hub id
    (None, None)
    ```
    """
    namespace, slash, _ = name.partition("/")
    return namespace if slash and _is_valid_repo_id(name) and os.path.isdir(namespace) else None


def check_repo_id(repo_id: Any) -> str:
    """Check a Hub repository id to push to, with an error that says what to pass.

    Examples:

    ```python
    >>> check_repo_id("alice/tiny-arm")
    'alice/tiny-arm'
    >>> check_repo_id("")
    Traceback (most recent call last):
    ...
    ValueError: `repo_id` must be a Hub repository id such as 'your-name/my-reward-model', got ''.
    ```
    """
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise ValueError(f"`repo_id` must be a Hub repository id such as 'your-name/my-reward-model', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"`repo_id` must be a Hub repository id such as 'your-name/my-reward-model', got {repo_id!r}: {error}"
        ) from None
    return repo_id

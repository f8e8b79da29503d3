"""Share reward models on the Hugging Face Hub: push a model or a folder already saved; pull with `from_pretrained`.

A pushed reward model is what tools already read: the causal LM's own checkpoint (safetensors) or a PEFT
adapter, its tokenizer, `genarm_config.json` (beta_r, tokenizer fingerprint, data, metrics) and a `README.md`
model card (see `hf_genarm.model_card`). Both functions here end in the one upload path: `HfApi.upload_folder` of
exactly the reward model's files, in one commit that deletes nothing; a card on the Hub that hf-genarm did not
write (or that was edited since) is kept unless `overwrite_model_card=True`.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any

from huggingface_hub import CommitInfo

from ._saved_folder import check_repo_id, check_saved_reward_model, upload_reward_model_folder
from .modeling import AutoregressiveRewardModel

__all__ = ["push_reward_model", "push_saved_reward_model"]


def push_reward_model(
    model: AutoregressiveRewardModel,
    repo_id: str,
    **kwargs: Any,
) -> CommitInfo | Future[CommitInfo]:
    """Upload a reward model, its tokenizer, `genarm_config.json` and a model card to the Hub.

    The same as `model.push_to_hub(repo_id, **kwargs)`, for code that holds the model in a variable of another
    type: it refuses anything but an `AutoregressiveRewardModel`.

    Args:
        model (`AutoregressiveRewardModel`): The reward model.
        repo_id (`str`): `"namespace/name"` (or `"name"` for your own namespace); created if missing.
        kwargs: `tokenizer`, `revision`, `token`, `private`, `commit_message`, `commit_description`, `create_pr`,
            `overwrite_model_card`, `max_shard_size`, `run_as_future`, as `AutoregressiveRewardModel.push_to_hub`
            takes them. A `tokenizer` that differs from the one the model records is refused.

    Returns:
        `huggingface_hub.CommitInfo` (a `str` holding the commit URL, with `.oid` and `.repo_url`), or a
        `Future` of it when `run_as_future=True`.

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1)
    >>> push_reward_model(reward_model, "")
    Traceback (most recent call last):
    ...
    ValueError: `repo_id` must be a Hub repository id such as 'your-name/my-reward-model', got ''.
    ```
    """
    check_repo_id(repo_id)
    if not isinstance(model, AutoregressiveRewardModel):
        raise TypeError(
            f"`model` must be an AutoregressiveRewardModel, got {type(model).__name__}; wrap a causal LM with "
            "`AutoregressiveRewardModel(model, beta_r=...)`."
        )
    return model.push_to_hub(repo_id, **kwargs)


def push_saved_reward_model(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    overwrite_model_card: bool = False,
    run_as_future: bool = False,
) -> CommitInfo | Future[CommitInfo]:
    """Upload a reward model already saved in `folder`, without loading it (a 7B model need not be read again).

    The folder is checked first: a valid `genarm_config.json`, exactly one model (a full checkpoint or a PEFT
    adapter), safetensors weights only. Its top-level files go up in one commit (hidden files and trainer state
    such as `training_args.bin` stay behind; checkpoint sub-folders too). The card: a `README.md` the user wrote
    in the folder goes up as it is; otherwise the generated card is rendered for `repo_id` (the folder itself is
    not modified).

    Args:
        folder (`str` or `os.PathLike`): Folder written by `AutoregressiveRewardModel.save_pretrained` or
            `ARMTrainer.save_model`.
        repo_id (`str`): `"namespace/name"` (or `"name"` for your own namespace); created if missing.
        revision (`str`, *optional*): Branch to commit to (created if missing); defaults to `main`.
        token (`str` or `bool`, *optional*): Hub token; defaults to the saved login.
        private (`bool`, *optional*): Visibility of a newly created repository.
        commit_message (`str`, *optional*): Defaults to `"Upload GenARM reward model"`.
        commit_description (`str`, *optional*): Longer commit description.
        create_pr (`bool`, *optional*, defaults to `False`): Open a pull request instead of committing.
        overwrite_model_card (`bool`, *optional*, defaults to `False`): Replace a `README.md` on the Hub that
            hf-genarm did not write.
        run_as_future (`bool`, *optional*, defaults to `False`): Upload in the background and return a
            `concurrent.futures.Future`.

    Returns:
        `huggingface_hub.CommitInfo`, or a `Future` of it when `run_as_future=True`.

    Raises:
        ValueError: Before any network call, when the folder is not a complete, single, safetensors reward model.

    Examples:

    ```python
    >>> import tempfile
    >>> push_saved_reward_model(tempfile.mkdtemp(), "alice/tiny-arm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... has no genarm_config.json, so it was not saved as a reward model; ...
    ```
    """
    check_repo_id(repo_id)
    metadata, is_adapter = check_saved_reward_model(folder)
    return upload_reward_model_folder(
        os.fspath(folder),
        repo_id,
        metadata=metadata,
        is_adapter=is_adapter,
        token=token,
        private=private,
        revision=revision,
        commit_message=commit_message,
        commit_description=commit_description,
        create_pr=create_pr,
        overwrite_model_card=overwrite_model_card,
        run_as_future=run_as_future,
    )

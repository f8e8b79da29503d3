"""Moving reward models to and from the Hugging Face Hub: the package's one upload path and one download path.

Upload: `push_saved_reward_model` checks a saved folder (`hf_genarm._saved_folder`) and sends exactly the reward
model's files up with `HfApi.upload_folder`, in one commit that deletes nothing but an earlier push's model files;
`push_written_reward_model` first writes a model into a temporary folder (`AutoregressiveRewardModel.push_to_hub`).
Download: `CheckpointSource` resolves a local folder or a `repo_id` with its `revision`, `token` and `cache_dir` to
local files, with an error naming the repository when `HF_HUB_OFFLINE` hides it. Public names are re-exported by
`hf_genarm.hub`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

try:  # the HTTP client of huggingface_hub 1.x/2.x; its connection errors all derive from TransportError
    from httpx2 import TransportError as _TransportError
except ImportError:  # pragma: no cover - older huggingface_hub
    from httpx import TransportError as _TransportError
from huggingface_hub import CommitInfo, HfApi, hf_hub_download, try_to_load_from_cache
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from transformers.utils import logging

from ._hub_ids import check_repo_id, looks_like_hub_id
from ._saved_folder import (
    ADAPTER_FILES,
    FULL_MODEL_FILES,
    FULL_MODEL_SHARDS,
    check_saved_reward_model,
    files_to_upload,
)
from .configuration import RewardModelMetadata
from .model_card import MODEL_CARD_NAME, is_unedited_generated_card, read_remote_model_card, write_model_card

__all__ = [
    "CheckpointSource",
    "HubUnreachableError",
    "offline_error",
    "push_saved_reward_model",
    "push_written_reward_model",
    "remove_when_done",
]

logger = logging.get_logger(__name__)


def _upload_view(folder: str, names: list[str], metadata: RewardModelMetadata, repo_id: str, is_adapter: bool) -> str:
    """A temporary folder of links to `names` in `folder`, with the generated card rewritten for `repo_id`.

    The card of a saved folder points its usage snippet at the folder; on the Hub it must point at the repository.
    A card the user wrote is uploaded as it is. The saved folder itself is not touched.
    """
    view = tempfile.mkdtemp(prefix="hf-genarm-upload-")
    for name in names:
        if name == MODEL_CARD_NAME:
            continue
        source, target = os.path.abspath(os.path.join(folder, name)), os.path.join(view, name)
        try:
            os.symlink(source, target)
        except OSError:  # file systems or platforms without symbolic links
            shutil.copy2(source, target)
    write_model_card(
        view,
        metadata,
        kept_from=folder,
        warn_when_kept=False,  # a card the user wrote is what they want on the Hub
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        is_adapter=is_adapter,
    )
    return view


def remove_when_done(result: CommitInfo | Future[CommitInfo], folder: str) -> CommitInfo | Future[CommitInfo]:
    """Delete the temporary `folder` once the upload `result` is over (at once, or when its `Future` is done)."""

    def remove(*_: object) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    if isinstance(result, Future):
        result.add_done_callback(remove)
    else:
        remove()
    return result


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
    not modified). The repository (and the `revision` branch) is created if missing. The only files the commit
    deletes are model files of an earlier push that this one does not rewrite, so the repository holds one model
    (earlier revisions keep them); nothing else is touched. `AutoregressiveRewardModel.push_to_hub` ends here too.

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
            hf-genarm did not write (or that was edited since).
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
    folder = os.fspath(folder)
    view = None
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None and revision != "main" and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        view = _upload_view(folder, files_to_upload(folder), metadata, repo_id, is_adapter)
        ignore = None
        if not overwrite_model_card:
            remote_card = read_remote_model_card(repo_id, revision=revision, token=token, endpoint=api.endpoint)
            if remote_card is not None and not is_unedited_generated_card(remote_card):
                ignore = [MODEL_CARD_NAME]
                logger.warning(
                    f"Kept the {MODEL_CARD_NAME} of {repo_id}, which hf-genarm did not write (or which was edited "
                    "since); pass `overwrite_model_card=True` to replace it with the generated card."
                )
        result = api.upload_folder(
            repo_id=repo_id,
            folder_path=view,
            ignore_patterns=ignore,
            # Model files of an earlier push that this one does not rewrite (the other kind of checkpoint, stale
            # shards) would leave two models in the repository; earlier revisions keep them.
            delete_patterns=[*FULL_MODEL_FILES, FULL_MODEL_SHARDS, *ADAPTER_FILES],
            commit_message=commit_message or "Upload GenARM reward model",
            commit_description=commit_description,
            revision=revision,
            create_pr=create_pr,
            run_as_future=run_as_future,
        )
    except BaseException as error:
        if view is not None:
            shutil.rmtree(view, ignore_errors=True)
        if isinstance(error, _TransportError):
            raise HubUnreachableError(
                f"Could not reach the Hugging Face Hub at {api.endpoint} to push {folder} to {repo_id} ({error}). "
                "Check the network connection (and HTTPS_PROXY behind a proxy) and retry; the saved folder is "
                "unchanged and `push_saved_reward_model(folder, repo_id)` uploads it later without loading it. Set "
                "HF_HUB_OFFLINE=1 to work offline without trying the Hub."
            ) from error
        raise
    return remove_when_done(result, view)


def push_written_reward_model(
    write: Callable[[str], None], repo_id: str, **push_options: Any
) -> CommitInfo | Future[CommitInfo]:
    """Write a reward model into a temporary folder with `write(folder)`, then upload it with `push_saved_reward_model`.

    The temporary folder is removed once the upload is over (or has failed); `repo_id` is checked before anything
    is written.

    Args:
        write (`Callable[[str], None]`): Saves the reward model into the folder it is given (which does not exist yet).
        repo_id (`str`): `"namespace/name"` (or `"name"` for your own namespace); created if missing.
        push_options: `push_saved_reward_model`'s Hub options (`revision`, `token`, `private`, `commit_message`,
            `commit_description`, `create_pr`, `overwrite_model_card`, `run_as_future`).

    Returns:
        `huggingface_hub.CommitInfo`, or a `Future` of it when `run_as_future=True`.
    """
    check_repo_id(repo_id)
    staging = tempfile.mkdtemp(prefix="hf-genarm-push-")
    try:
        # A folder inside the temporary one: a save also writes beside the folder it replaces (lock, staging).
        folder = os.path.join(staging, "reward-model")
        write(folder)
        result = push_saved_reward_model(folder, repo_id, **push_options)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return remove_when_done(result, staging)


class HubUnreachableError(_TransportError, ConnectionError):
    """The Hub could not be reached (no network, DNS, proxy, timeout).

    Both the HTTP client's own `TransportError` (what `huggingface_hub` raises for it) and Python's
    `ConnectionError`, so code catching either still catches it.
    """


def offline_error(name: str, what: str) -> OSError:
    """The error for `what` (a file, "the model") of the Hub repository `name` when `HF_HUB_OFFLINE` hides it.

    Examples:

    ```python
    >>> print(offline_error("alice/tiny-arm", "the tokenizer"))  # doctest: +ELLIPSIS
    Cannot load the tokenizer of 'alice/tiny-arm' from the Hub: HF_HUB_OFFLINE is set and it is not in the local ...
    ```
    """
    return OSError(
        f"Cannot load {what} of {name!r} from the Hub: HF_HUB_OFFLINE is set and it is not in the local cache. "
        "Unset HF_HUB_OFFLINE (or set HF_HUB_OFFLINE=0) to download it once, or pass a local folder."
    )


class CheckpointSource:
    """A local folder or a Hub repository, read with huggingface_hub's public calls and clear offline errors."""

    def __init__(self, name: str, revision: str | None, token: str | bool | None, cache_dir: Any) -> None:
        self.is_local = os.path.isdir(name)
        # Models loaded from an absolute folder record it as their `_name_or_path`, which adapters and metadata
        # then carry: a relative one would not resolve from another directory.
        self.name = os.path.abspath(name) if self.is_local else name
        self.hub_kwargs = {"revision": revision, "token": token, "cache_dir": cache_dir}
        if not self.is_local and not looks_like_hub_id(name):
            raise ValueError(
                f"{name!r} is neither an existing folder nor a Hub repository id ('namespace/name'); check the path."
            )

    def file(self, filename: str) -> str | None:
        """Local path of `filename` (downloaded when remote), or `None` when the checkpoint has no such file."""
        if self.is_local:
            path = os.path.join(self.name, filename)
            if os.path.exists(path) and not os.path.isfile(path):
                # Falling back to defaults (beta_r=0.1) as if the file were missing would hide the damage.
                raise ValueError(
                    f"{path} is not a file (a folder or a special file); remove it or replace it with the file."
                )
            return path if os.path.isfile(path) else None
        revision, cache_dir = self.hub_kwargs["revision"], self.hub_kwargs["cache_dir"]
        try:
            return hf_hub_download(self.name, filename, **self.hub_kwargs)
        except LocalEntryNotFoundError:
            if not hf_constants.HF_HUB_OFFLINE:
                raise
            cached = try_to_load_from_cache(self.name, filename, cache_dir=cache_dir, revision=revision)
            if cached is not None and not isinstance(cached, str):  # the cache knows the file does not exist
                return None
            raise offline_error(self.name, filename) from None
        except EntryNotFoundError:
            return None

    def model_files(self, is_adapter: bool) -> list[str]:
        """The model files the checkpoint holds, as far as they matter to tell whether it holds two models.

        A Hub repository is only asked (without downloading) when it holds an adapter and the Hub can be reached.
        """
        if self.is_local:
            return sorted(os.listdir(self.name))
        if not is_adapter or hf_constants.HF_HUB_OFFLINE:
            return []
        api = HfApi(token=self.hub_kwargs["token"])
        weights = ("model.safetensors", "model.safetensors.index.json")
        found = [name for name in weights if api.file_exists(self.name, name, revision=self.hub_kwargs["revision"])]
        return [*found, ADAPTER_FILES[0]]

    def load(self, auto_class: Any, **model_kwargs: Any) -> Any:
        """`auto_class.from_pretrained` on this checkpoint, naming the repository when offline."""
        try:
            return auto_class.from_pretrained(self.name, **self.hub_kwargs, **model_kwargs)
        except OSError:
            if self.is_local or not hf_constants.HF_HUB_OFFLINE:
                raise
            raise offline_error(self.name, "the model") from None

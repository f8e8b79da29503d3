"""Share reward models on the Hugging Face Hub: push a model or a folder already saved; pull with `from_pretrained`.

A pushed reward model is what tools already read: the causal LM's own checkpoint (safetensors) or a PEFT
adapter, its tokenizer, `genarm_config.json` (beta_r, tokenizer fingerprint, data, metrics) and a `README.md`
model card (see `hf_genarm.model_card`). Every push (`push_reward_model`, `push_saved_reward_model`,
`AutoregressiveRewardModel.push_to_hub`, `ARMTrainer.push_to_hub`, `hf-genarm push`) ends in the one upload path:
`HfApi.upload_folder` of exactly the reward model's files, in one commit that deletes nothing; a card on the Hub
that hf-genarm did not write (or that was edited since) is kept unless `overwrite_model_card=True`. Every load
from the Hub (`AutoregressiveRewardModel.from_pretrained`) resolves `repo_id`, `revision` and `token` through the
one download path. When the Hub cannot be reached, a push raises `HubUnreachableError`, which names the endpoint
and what to do. Both paths live in `hf_genarm._hub_transfer`; which names are Hub ids is `looks_like_hub_id`'s call.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from huggingface_hub import CommitInfo

from ._hub_ids import check_repo_id, looks_like_hub_id
from ._hub_transfer import HubUnreachableError, push_saved_reward_model
from .modeling import AutoregressiveRewardModel

__all__ = ["HubUnreachableError", "check_repo_id", "looks_like_hub_id", "push_reward_model", "push_saved_reward_model"]


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

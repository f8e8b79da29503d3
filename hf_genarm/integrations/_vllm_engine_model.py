"""The reward models as vLLM model code inside the engine: one registered model wraps the base and the reward models.

`GenARMForCausalLM` is what the engine runs when `engine_kwargs(..., mode="in_engine")` starts it (vLLM's
`hf_overrides` name it as the served architecture; `register` makes it known to vLLM's `ModelRegistry`, in every
process through the `vllm.general_plugins` entry point). It builds the base and each reward model from vLLM's own
model classes, so their attention layers get their own layers in the engine's paged KV cache (allocated, freed,
preempted and prefix-cached with the base's blocks), their linear layers shard under tensor parallelism, and they
run vLLM's kernels, as speculative decoding's draft models do (`vllm/v1/spec_decode/draft_model.py`).

Every step all models read the same tokens at the same positions (a reward model reads the prompt the base reads).
`forward` returns their final hidden states side by side; vLLM selects the rows it samples from, and
`compute_logits` returns the base's logits while publishing each reward model's float32 next-token
log-probabilities over the shared vocabulary, rows in the same order, to the GenARM logits processor of the same
engine (`reward_channel`), which applies each request's weights with `hf_genarm.combine.combine`.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PretrainedConfig
from vllm.compilation.backends import set_model_tag
from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config
from vllm.config.utils import replace
from vllm.model_executor.model_loader.default_loader import DefaultModelLoader
from vllm.model_executor.models.registry import ModelRegistry
from vllm.model_executor.models.utils import maybe_prefix

from ..combine import shared_log_probs
from ..configuration import GENARM_CONFIG_NAME, RewardModelMetadata
from ..model_caller import innermost_transformers_model
from ..modeling import AutoregressiveRewardModel
from ..vocab import check_reward_model_vocabularies
from ._vllm_settings import _ServingSettings, adapter_backbone, check_served_vocabulary

_REWARD_MODELS = "reward_models"
# One channel per engine in this process, keyed by the engine's VllmConfig: the model runner hands the same object
# to the logits processors it builds and to the model it loads.
_CHANNELS: weakref.WeakValueDictionary[int, RewardChannel] = weakref.WeakValueDictionary()


class RewardChannel:
    """The reward models' latest next-token log-probabilities, from `compute_logits` to the logits processor.

    Args:
        names (`list[str]`): The reward models, in the order of a request's weights.
        vocab_size (`int`): Columns of the log-probabilities: the shared tokenizer's size.
    """

    def __init__(self, names: list[str], vocab_size: int) -> None:
        self.names = names
        self.vocab_size = vocab_size
        self.log_probs: list[torch.Tensor] = []


def reward_channel(vllm_config: Any) -> RewardChannel | None:
    """The channel of the in-engine model built from `vllm_config` in this process; `None` before it is built."""
    return _CHANNELS.get(id(vllm_config))


def _architectures(path: str, revision: str | None) -> list[str]:
    config, _ = PretrainedConfig.get_config_dict(path, revision=revision)
    return list(config.get("architectures") or [])


def _reward_model_config(name: str, path: str, base: ModelConfig, dtype: str | None) -> ModelConfig:
    """vLLM's configuration of one reward model, as speculative decoding configures a draft model."""
    try:
        return ModelConfig(
            model=path,
            tokenizer=base.tokenizer,
            tokenizer_mode=base.tokenizer_mode,
            tokenizer_revision=base.tokenizer_revision,
            dtype=dtype or base.dtype,
            seed=base.seed,
            max_model_len=base.max_model_len,
            enforce_eager=base.enforce_eager,
            max_logprobs=base.max_logprobs,
        )
    except Exception as error:  # vLLM's own message says what (e.g. max_model_len beyond the model's positions)
        raise ValueError(f"Reward model {name!r} ({path}) cannot run inside the engine: {error}") from error


class _RewardModelHead(SimpleNamespace):
    """What `check_reward_model_vocabularies` reads of a reward model: its metadata and its output rows."""

    def get_output_embeddings(self) -> SimpleNamespace:
        return SimpleNamespace(weight=torch.empty(self.rows, 0, device="meta"))


def _check_vocabularies(settings: _ServingSettings, configs: list[ModelConfig], base: ModelConfig) -> int:
    """The package's one tokenizer check, on the folders' metadata; returns the shared vocabulary size."""
    heads = []
    for path, config in zip(settings.reward_models.values(), configs):
        metadata_path = f"{path}/{GENARM_CONFIG_NAME}"
        try:
            metadata = RewardModelMetadata.from_json_file(metadata_path)
        except FileNotFoundError:
            metadata = None
        heads.append(_RewardModelHead(metadata=metadata, rows=config.get_vocab_size()))
    tokenizer = AutoTokenizer.from_pretrained(base.tokenizer, revision=base.tokenizer_revision)
    vocab_size = check_reward_model_vocabularies(heads, tokenizer)
    check_served_vocabulary(base.get_vocab_size(), vocab_size)
    return vocab_size


class GenARMForCausalLM(nn.Module):
    r"""The served base and its GenARM reward models as one vLLM model; the engine samples from the base's logits.

    vLLM builds it (never user code): `engine_kwargs(reward_models, mode="in_engine")` names it as the served
    architecture and the reward models in `additional_config["genarm"]`. Each reward model is built from vLLM's
    class for its architecture with its own prefix, its weights read from its own safetensors folder by vLLM's
    loader (`secondary_weights`), its configuration and dtype as vLLM configures a draft model.

    Args:
        vllm_config (`VllmConfig`): The engine configuration.
        prefix (`str`, *optional*, defaults to `""`): vLLM's layer-name prefix.

    Raises:
        `ValueError`: pipeline parallelism, a reward model whose tokenizer differs from the served model's, or one
            vLLM cannot configure (its message says why, e.g. a `max_model_len` beyond its positions).

    Examples:

    ```python
    >>> from hf_genarm.integrations._vllm_engine_model import GenARMForCausalLM
    >>> from hf_genarm.integrations._vllm_settings import ENGINE_ARCHITECTURE
    >>> GenARMForCausalLM.__name__ == ENGINE_ARCHITECTURE  # engine_kwargs(..., mode="in_engine") starts it
    True
    ```
    """

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        if vllm_config.parallel_config.pipeline_parallel_size > 1:
            raise ValueError(
                "GenARM's in-engine reward models run without pipeline parallelism; start the engine with "
                'pipeline_parallel_size=1, or engine_kwargs(..., mode="beside").'
            )
        settings = _ServingSettings.from_additional_config(vllm_config.additional_config)
        if settings.mode != "in_engine":
            # The processor would then run its own copies of the reward models beside these.
            raise ValueError(
                "The engine serves GenARMForCausalLM but its GenARM settings do not say `mode='in_engine'`; build "
                "both with `engine_kwargs(..., mode='in_engine')`."
            )
        base_config = vllm_config.model_config
        base_class, _ = ModelRegistry.resolve_model_cls(
            _architectures(base_config.model, base_config.revision), base_config
        )
        self.base = base_class(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "base"))
        self.reward_models = nn.ModuleDict()
        # vLLM's loader reads these folders after the base's, each weight's name prefixed with its module's path.
        self.secondary_weights: list[DefaultModelLoader.Source] = []
        configs = []
        self._adapters: dict[str, str] = {}  # key -> PEFT adapter folder, merged into its backbone when loading
        for index, (name, path) in enumerate(settings.reward_models.items()):
            key = f"arm_{index}"  # no bare integer in layer names: vLLM reads the one integer as the layer index
            backbone = adapter_backbone(path)
            config = _reward_model_config(name, backbone or path, base_config, settings.dtype)
            reward_vllm_config = replace(vllm_config, model_config=config, quant_config=None)
            reward_class, _ = ModelRegistry.resolve_model_cls(config.architectures, config)
            with set_current_vllm_config(reward_vllm_config), set_model_tag(f"genarm_{key}"):
                self.reward_models[key] = reward_class(
                    vllm_config=reward_vllm_config, prefix=maybe_prefix(prefix, f"{_REWARD_MODELS}.{key}")
                )
            if backbone is None:
                self.secondary_weights.append(DefaultModelLoader.Source(path, None, prefix=f"{_REWARD_MODELS}.{key}."))
            else:
                self._adapters[key] = path
            configs.append(config)
        self._widths = [base_config.get_hidden_size()] + [config.get_hidden_size() for config in configs]
        self.channel = RewardChannel(settings.names, _check_vocabularies(settings, configs, base_config))
        _CHANNELS[id(vllm_config)] = self.channel

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.base.embed_input_ids(input_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Every model over the same tokens and positions; their final hidden states side by side, base first.

        vLLM picks the rows it samples from out of this one tensor, so the reward models' rows stay aligned with
        the base's whatever the batch (chunked prefills, joins, preempted requests coming back).
        """
        hidden = [self.base(input_ids, positions, intermediate_tensors, inputs_embeds, **kwargs)]
        hidden += [model(input_ids, positions) for model in self.reward_models.values()]
        return torch.cat(hidden, dim=-1)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """The base's logits; each reward model's float32 log-probabilities go to the channel, rows alike."""
        parts = hidden_states.split(self._widths, dim=-1)
        self.channel.log_probs = [
            shared_log_probs(model.compute_logits(part), self.channel.vocab_size)
            for model, part in zip(self.reward_models.values(), parts[1:])
        ]
        return self.base.compute_logits(parts[0])

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Route the base's weights, then each reward model's (named by their `secondary_weights` prefix)."""

        def owner(item: tuple[str, torch.Tensor]) -> str:
            name = item[0]
            if name.startswith(f"{_REWARD_MODELS}."):
                return name.split(".", 2)[1]
            return ""

        loaded: set[str] = set()
        # The loader yields the base's folder, then each reward model's: each model's weights come as one run.
        for key, run in itertools.groupby(weights, key=owner):
            if not key:
                loaded |= {f"base.{name}" for name in self.base.load_weights(run)}
                continue
            start = len(f"{_REWARD_MODELS}.{key}.")
            named = ((name[start:], tensor) for name, tensor in run)
            loaded |= {f"{_REWARD_MODELS}.{key}.{name}" for name in self.reward_models[key].load_weights(named)}
        for key, path in self._adapters.items():
            # A LoRA reward model runs as its backbone with the adapter merged in: the same function, no LoRA
            # kernels per step. The merge happens once, in float32, on the CPU.
            merged = AutoregressiveRewardModel.from_pretrained(path, dtype=torch.float32).merge_adapter()
            state = innermost_transformers_model(merged).state_dict()
            loaded |= {f"{_REWARD_MODELS}.{key}.{name}" for name in self.reward_models[key].load_weights(state.items())}
        return loaded

"""How to call a reward model: the wrappers around it, its cache argument, its position limit, its device.

Every runtime that feeds a reward model (the `generate()` stream, the cross-tokenizer context, the vLLM slot runner)
subclasses `ModelCaller`; `cache_argument` is also what the ARGS baseline uses to find a classifier's cache argument.
"""

from __future__ import annotations

import inspect

import torch

from .modeling import AutoregressiveRewardModel

__all__ = ["ModelCaller", "cache_argument", "innermost_transformers_model", "position_limit"]


def innermost_transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """Unwrap `AutoregressiveRewardModel` and PEFT wrappers down to the transformers model.

    Examples:

    ```python
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> type(innermost_transformers_model(AutoregressiveRewardModel(make_tiny_causal_lm()))).__name__
    'GPT2LMHeadModel'
    ```
    """
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, AutoregressiveRewardModel):
            model = model.model
        elif callable(getattr(model, "get_base_model", None)):
            model = model.get_base_model()
    return model


def cache_argument(model: torch.nn.Module) -> str | None:
    """The name under which `model.forward` takes a KV cache (`cache` in newer transformers), or `None`.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> cache_argument(make_tiny_causal_lm()) in ("cache", "past_key_values")
    True
    ```
    """
    parameters = inspect.signature(model.forward).parameters
    # State-space models (Mamba, FalconMamba, Mamba2) called it `cache_params` until transformers 5.24, which
    # renamed it `cache`; a name missed here would land in `**kwargs`, so every step would run without its state.
    names = ("cache", "past_key_values", "cache_params")
    return next((name for name in names if name in parameters), None)


def position_limit(config) -> int | None:
    """The number of positions a model was built for (`max_position_embeddings` / `n_positions`), if it says.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> position_limit(make_tiny_causal_lm().config)
    256
    ```
    """
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class ModelCaller:
    """How to call one reward model: its cache argument, `logits_to_keep` support, config, position limit, device.

    The base of every runtime that feeds a reward model (`RewardModelStream`, the cross-tokenizer context, the vLLM
    slot runner).

    Args:
        model (`torch.nn.Module`): A causal LM, PEFT model or `AutoregressiveRewardModel`.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> ModelCaller(make_tiny_causal_lm()).position_limit
    256
    ```
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        inner = innermost_transformers_model(model)
        self._cache_argument = cache_argument(inner) or "past_key_values"
        self._supports_logits_to_keep = "logits_to_keep" in inspect.signature(inner.forward).parameters
        self._config = inner.config
        self.position_limit = position_limit(inner.config)
        self.device = next(model.parameters()).device

"""A vLLM request's GenARM arguments, read from its `SamplingParams.extra_args` alone, without importing vLLM.

vLLM validates a request's arguments in its front end (`LogitsProcessor.validate_params`), which sees the sampling
parameters and nothing of the engine. So the checks are split where the information lives:

- `request_guidance` (front end): everything the arguments say by themselves: types, finite weights, `beta > 0`,
  weights `alpha / beta` small enough for float32; a failure is an HTTP 400 naming the argument.
- `RequestGuidance.weights` (worker): what needs the engine: the number of weights against the number of reward
  models, and names against the reward models the engine serves.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..configuration import guidance_weights, validate_beta

ALPHA_ARGUMENT = "genarm_alpha"
BETA_ARGUMENT = "genarm_beta"

_ACCEPTED = (
    "a float, a list of floats (one per reward model, in the engine's order) or weights by reward-model name "
    "(a dict, or its JSON text '{\"helpful\": 1.0}', which the server's `vllm_xargs` accept)"
)


def _real(value: Any, label: str) -> float:
    """A real number as a Python float; numpy scalars are numbers too, bools are not."""
    # numpy registers its integer and floating scalars with `numbers`; `bool` is an Integral and `numpy.bool_` is
    # not a number at all, so both are refused here.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{label}` must be a float, got {type(value).__name__}.")
    return float(value)


def _weight(value: Any, label: str) -> float:
    """One finite reward-model weight as a Python float."""
    weight = _real(value, label)
    if not math.isfinite(weight):
        raise ValueError(f"`{label}` is {weight}; every reward-model weight must be a finite float.")
    return weight


@dataclass(frozen=True)
class RequestGuidance:
    """A request's checked GenARM arguments: `alpha` as given (a float, a tuple or a dict of floats), and `beta`."""

    alpha: float | tuple[float, ...] | dict[str, float]
    beta: float

    def weights(self, names: Sequence[str]) -> torch.Tensor | None:
        """Per-reward-model weights `alpha / beta` (float32, shape `(len(names),)`); `None` when all are zero.

        Raises:
            `ValueError`: a list whose length is not the number of reward models, or a name the engine does not
                serve.
        """
        if isinstance(self.alpha, dict):
            unknown = sorted(set(self.alpha) - set(names))
            if unknown:
                raise ValueError(
                    f"`{ALPHA_ARGUMENT}` names reward model(s) {unknown} that this engine does not serve; it serves "
                    f"{list(names)}."
                )
            alpha = [self.alpha.get(name, 0.0) for name in names]
        elif isinstance(self.alpha, tuple):
            if len(self.alpha) != len(names):
                raise ValueError(
                    f"`{ALPHA_ARGUMENT}` holds {len(self.alpha)} weight(s) but this engine serves {len(names)} "
                    f"reward model(s), {list(names)}: pass one weight per reward model in that order, one float for "
                    "all, or weights by name."
                )
            alpha = list(self.alpha)
        else:
            alpha = [self.alpha] * len(names)
        if not any(alpha):
            return None
        return torch.tensor(alpha, dtype=torch.float32) / self.beta


def _alpha(alpha: Any) -> float | tuple[float, ...] | dict[str, float]:
    if isinstance(alpha, str):
        try:
            alpha = json.loads(alpha)
        except json.JSONDecodeError:
            alpha = None
        if not isinstance(alpha, dict):
            raise TypeError(f"`{ALPHA_ARGUMENT}` must be {_ACCEPTED}; got a string that is not a JSON object.")
    if isinstance(alpha, Mapping):
        for name in alpha:
            if not isinstance(name, str):
                raise TypeError(f"`{ALPHA_ARGUMENT}` names reward models by string; got the key {name!r}.")
        return {name: _weight(value, f"{ALPHA_ARGUMENT}[{name!r}]") for name, value in alpha.items()}
    if isinstance(alpha, (list, tuple)):
        if not alpha:
            raise ValueError(f"`{ALPHA_ARGUMENT}` is an empty list; pass one weight per reward model.")
        return tuple(_weight(value, f"{ALPHA_ARGUMENT}[{index}]") for index, value in enumerate(alpha))
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        # One request has one weight per reward model: no per-row tensors here, unlike GenARMLogitsProcessor.
        raise TypeError(f"`{ALPHA_ARGUMENT}` must be {_ACCEPTED}; got {type(alpha).__name__}.")
    return _weight(alpha, ALPHA_ARGUMENT)


def request_guidance(extra_args: Mapping[str, Any] | None) -> RequestGuidance | None:
    """A request's GenARM arguments checked from themselves alone; `None` when the request names neither.

    Raises:
        `ValueError` naming the argument (`genarm_alpha` / `genarm_beta`) for anything but finite real weights,
        `beta <= 0`, `genarm_beta` without `genarm_alpha`, or weights `alpha / beta` that would overflow float32.
        Type errors are `ValueError`s too: vLLM answers `ValueError` with HTTP 400, and a bad type is the client's
        error as well.
    """
    if not extra_args or (ALPHA_ARGUMENT not in extra_args and BETA_ARGUMENT not in extra_args):
        return None
    if ALPHA_ARGUMENT not in extra_args:
        raise ValueError(f"`{BETA_ARGUMENT}` was given without `{ALPHA_ARGUMENT}`; pass the reward models' weights.")
    try:
        beta = validate_beta(_real(extra_args.get(BETA_ARGUMENT, 1.0), BETA_ARGUMENT), name=BETA_ARGUMENT)
        alpha = _alpha(extra_args[ALPHA_ARGUMENT])
    except TypeError as error:
        raise ValueError(str(error)) from error
    values = list(alpha.values()) if isinstance(alpha, dict) else alpha if isinstance(alpha, tuple) else [alpha]
    guidance_weights(torch.tensor(values, dtype=torch.float64), beta, ALPHA_ARGUMENT, BETA_ARGUMENT)
    return RequestGuidance(alpha, beta)


def refuse_numbers_vllm_cannot_send(extra_args: Mapping[str, Any] | None) -> None:
    """Refuse numpy scalars that are not Python numbers (`numpy.float32`, `numpy.int64`) in raw `extra_args`.

    vLLM sends a request to its engine core as msgpack, which encodes Python numbers (and `numpy.float64`, a `float`)
    but stops on other numpy scalars with an error that names neither the argument nor GenARM. `request_args`
    converts them; raw arguments are refused here, before vLLM tries.
    """
    if not extra_args:
        return
    alpha = extra_args.get(ALPHA_ARGUMENT)
    labelled = [(BETA_ARGUMENT, extra_args.get(BETA_ARGUMENT)), (ALPHA_ARGUMENT, alpha)]
    if isinstance(alpha, Mapping):
        labelled += [(f"{ALPHA_ARGUMENT}[{name!r}]", value) for name, value in alpha.items()]
    elif isinstance(alpha, (list, tuple)):
        labelled += [(f"{ALPHA_ARGUMENT}[{index}]", value) for index, value in enumerate(alpha)]
    for label, value in labelled:
        if isinstance(value, numbers.Real) and not isinstance(value, (int, float)):
            raise ValueError(
                f"`{label}` is a {type(value).__module__}.{type(value).__name__}, which vLLM cannot send to its "
                "engine; pass a Python float (`float(value)`), or build the arguments with "
                "`hf_genarm.integrations.vllm.request_args`, which converts numpy numbers."
            )

"""GenARM metadata (`genarm_config.json`) and the argument checks every entry point shares.

`RewardModelMetadata` is the sidecar saved beside a reward model's weights. The validators below are the one
place where `alpha`, `beta`, `beta_r` and length limits are checked, whether they come from Python
(`GenARMLogitsProcessor`, `ARMConfig`, `AutoregressiveRewardModel`) or from the command line. This module imports
nothing from the package, so every other module may import it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from transformers.utils import logging

__all__ = [
    "DEFAULT_BETA_R",
    "GENARM_CITATION",
    "GENARM_CONFIG_NAME",
    "GENARM_FORMAT_VERSION",
    "MAX_GUIDANCE_WEIGHT",
    "RewardModelMetadata",
    "guidance_weights",
    "refuse_remote_code",
    "validate_alpha",
    "validate_beta",
    "validate_beta_r",
    "validate_positive_length",
]

logger = logging.get_logger(__name__)

GENARM_CONFIG_NAME = "genarm_config.json"
DEFAULT_BETA_R = 0.1
# The newest layout this version reads. 1: every reward model. 2: a preference-conditioned ARM, whose
# adapter_config.json is marked so that plain PEFT refuses it (`hf_genarm.preference_lora`); an ordinary ARM's
# files did not change and still say 1, so older versions keep reading them.
GENARM_FORMAT_VERSION = 2
FIRST_FORMAT_VERSION = 1
# The largest |alpha / beta| accepted: it multiplies float32 log-probabilities (down to about -1e3), so the scores stay
# finite; GenARM's weights are usually between 0.1 and 10.
MAX_GUIDANCE_WEIGHT = 1e6
# The paper, as BibTeX: cited by generated model cards and by the `preference_accuracy` metric.
GENARM_CITATION = """@inproceedings{xu2025genarm,
    title     = {GenARM: Reward Guided Generation with Autoregressive Reward Model for Test-time Alignment},
    author    = {Yuancheng Xu and Udari Madhushani Sehwag and Alec Koppel and Sicheng Zhu and Bang An and
                 Furong Huang and Sumitra Ganesh},
    booktitle = {The Thirteenth International Conference on Learning Representations},
    year      = {2025},
    url       = {https://arxiv.org/abs/2410.08193},
}"""


def _is_real_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_positive_float(value: Any, name: str, meaning: str) -> float:
    if not _is_real_number(value):
        raise TypeError(f"`{name}` must be a positive float ({meaning}), got {type(value).__name__}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite float > 0 ({meaning}), got {value}.")
    return float(value)


def validate_beta_r(beta_r: Any, name: str = "beta_r") -> float:
    """Check a reward scale `beta_r` (finite, > 0) and return it as a float.

    Args:
        beta_r (`float`): The value to check.
        name (`str`, *optional*, defaults to `"beta_r"`): How the caller spells the argument in errors
            (e.g. `"--beta-r"`).

    Returns:
        `float`

    Raises:
        TypeError: For a non-number (or a bool).
        ValueError: For zero, a negative, NaN or infinity.

    Examples:

    ```python
    >>> validate_beta_r(1)
    1.0
    >>> validate_beta_r(0.0)
    Traceback (most recent call last):
    ...
    ValueError: `beta_r` must be a finite float > 0 (the reward scale), got 0.0.
    ```
    """
    return _finite_positive_float(beta_r, name, "the reward scale")


def validate_beta(beta: Any, name: str = "beta") -> float:
    """Check a KL strength `beta` of guided decoding (finite, > 0) and return it as a float.

    Args:
        beta (`float`): The value to check.
        name (`str`, *optional*, defaults to `"beta"`): How the caller spells the argument in errors.

    Returns:
        `float`

    Examples:

    ```python
    >>> validate_beta(0.5)
    0.5
    ```
    """
    return _finite_positive_float(beta, name, "the KL strength")


def validate_alpha(alpha: Any, num_models: int, name: str = "alpha") -> torch.Tensor:
    """Check reward-model weights and return them as a float32 tensor of shape `(rows, num_models)`.

    Args:
        alpha (`float`, `list[float]` or `torch.Tensor`): One weight for every reward model, one weight per
            reward model, or a `(batch, num_models)` tensor of per-row weights. Weights may be negative or zero
            but must be finite.
        num_models (`int`): Number of reward models the weights are for.
        name (`str`, *optional*, defaults to `"alpha"`): How the caller spells the argument in errors.

    Returns:
        `torch.Tensor` of shape `(1, num_models)` (or `(batch, num_models)` for a per-row tensor), float32, on CPU.

    Examples:

    ```python
    >>> validate_alpha([0.7, 0.3], num_models=2)
    tensor([[0.7000, 0.3000]])
    >>> validate_alpha(float("nan"), num_models=1)
    Traceback (most recent call last):
    ...
    ValueError: `alpha` must be finite, got [[nan]].
    ```
    """
    if isinstance(alpha, bool):
        raise TypeError(f"`{name}` must be a float, a list of floats or a tensor, got a bool.")
    if _is_real_number(alpha):
        weights = torch.full((1, num_models), float(alpha))
    elif isinstance(alpha, (list, tuple)):
        if not all(_is_real_number(value) for value in alpha):
            raise TypeError(f"`{name}` given as a list must hold only floats.")
        weights = torch.tensor([float(value) for value in alpha]).reshape(1, -1)
    elif isinstance(alpha, torch.Tensor):
        if alpha.dim() > 2:
            raise ValueError(f"`{name}` as a tensor must be 1-D or (batch, n_reward_models); got {alpha.dim()}-D.")
        weights = alpha.detach().float().cpu()
        weights = weights.reshape(1, -1) if weights.dim() < 2 else weights
    else:
        raise TypeError(f"`{name}` must be a float, a list of floats or a tensor, got {type(alpha).__name__}.")
    if weights.shape[1] != num_models:
        raise ValueError(
            f"`{name}` has {weights.shape[1]} weight(s) per row but there are {num_models} reward model(s); "
            "pass one weight per reward model."
        )
    if not torch.isfinite(weights).all():
        raise ValueError(f"`{name}` must be finite, got {weights.tolist()}.")
    return weights


def guidance_weights(
    alpha: torch.Tensor, beta: float, alpha_name: str = "alpha", beta_name: str = "beta"
) -> torch.Tensor:
    """The reward models' weights `alpha / beta`, refused where they would overflow the guided scores.

    `alpha` and `beta` can each be finite while `alpha / beta` is not (`beta=1e-40`), or is so large that
    `alpha / beta * log_prob` overflows float32 to infinity and the next-token distribution to NaN.

    Args:
        alpha (`torch.Tensor`): Checked weights, as `validate_alpha` returns them.
        beta (`float`): Checked KL strength, as `validate_beta` returns it.
        alpha_name (`str`, *optional*, defaults to `"alpha"`): How the caller spells `alpha` in errors.
        beta_name (`str`, *optional*, defaults to `"beta"`): How the caller spells `beta` in errors.

    Returns:
        `torch.Tensor`: `alpha / beta`, float32, the shape of `alpha`.

    Raises:
        ValueError: If any `|alpha / beta|` exceeds `MAX_GUIDANCE_WEIGHT` (1e6) or is not finite.

    Examples:

    ```python
    >>> guidance_weights(validate_alpha([1.0, 0.5], 2), validate_beta(0.5))
    tensor([[2., 1.]])
    >>> guidance_weights(validate_alpha(1.0, 1), validate_beta(1e-40))
    Traceback (most recent call last):
    ...
    ValueError: `alpha` / `beta` reaches inf; ...
    ```
    """
    weights = alpha.float() / beta
    largest = weights.abs().max().item() if weights.numel() else 0.0
    if not largest <= MAX_GUIDANCE_WEIGHT:  # also catches inf and NaN
        raise ValueError(
            f"`{alpha_name}` / `{beta_name}` reaches {largest:g}; reward-model weights beyond {MAX_GUIDANCE_WEIGHT:g} "
            "in size overflow the float32 guided scores to infinity and the next-token distribution to NaN. "
            f"GenARM's weights `{alpha_name}` / `{beta_name}` are usually between 0.1 and 10."
        )
    return weights


def validate_positive_length(value: Any, name: str, *, allow_none: bool = True) -> int | None:
    """Check a length limit (a token count such as `max_length`) and return it.

    Args:
        value (`int` or `None`): The limit; `None` means no limit when `allow_none` is true.
        name (`str`): How the caller spells the argument in errors (e.g. `"max_new_tokens"`).
        allow_none (`bool`, *optional*, defaults to `True`): Whether `None` is accepted.

    Returns:
        `int` or `None`

    Examples:

    ```python
    >>> validate_positive_length(256, "max_length")
    256
    >>> validate_positive_length(0, "max_length")
    Traceback (most recent call last):
    ...
    ValueError: `max_length` must be a positive int or None, got 0.
    ```
    """
    if value is None and allow_none:
        return None
    expected = "a positive int or None" if allow_none else "a positive int"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be {expected}, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"`{name}` must be {expected}, got {value!r}.")
    return value


def refuse_remote_code(options: dict[str, Any], name: str) -> None:
    """Apply the package's one rule for remote code: hf-genarm never runs code from a model folder or repository.

    Reward models and base models are plain causal LMs that transformers implements; a folder saved by
    hf-genarm never needs its own code. Every entry point that loads a model by name (`AutoregressiveRewardModel.
    from_pretrained`, `ARMTrainer`'s `model_init_kwargs`, the CLI) refuses `trust_remote_code=True`. To use a model
    whose code lives in its repository, load it yourself and pass the object.

    Args:
        options (`dict`): Keyword arguments about to be passed to a `from_pretrained`.
        name (`str`): Where they came from, named in the error (e.g. `"model_init_kwargs"`).

    Raises:
        ValueError: When `options` asks for `trust_remote_code`.

    Examples:

    ```python
    >>> refuse_remote_code({"dtype": "float32"}, "from_pretrained()")
    >>> refuse_remote_code({"trust_remote_code": True}, "from_pretrained()")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hf-genarm never runs code from a model repository: remove `trust_remote_code` from from_pretrained()...
    ```
    """
    if options.get("trust_remote_code"):
        raise ValueError(
            f"hf-genarm never runs code from a model repository: remove `trust_remote_code` from {name}, or load the "
            "model yourself (e.g. `AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`) and pass the "
            "object."
        )


def _check_optional_str(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"`{name}` must be a string or null, got {type(value).__name__}.")


def _check_fingerprint(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f"`tokenizer` must be a tokenizer fingerprint (an object) or null, got {type(value).__name__}.")
    size = value.get("vocab_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"`tokenizer.vocab_size` must be a positive int, got {size!r}.")
    if not isinstance(value.get("vocab_sha256"), str):
        raise ValueError(f"`tokenizer.vocab_sha256` must be a string, got {value.get('vocab_sha256')!r}.")
    special = value.get("special_tokens", {})
    if not isinstance(special, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in special.items()):
        raise ValueError(f"`tokenizer.special_tokens` must map token names to strings, got {special!r}.")


def _check_preference_fields(objectives: Any, conditioning: Any) -> None:
    if not isinstance(objectives, list) or not all(isinstance(name, str) and name for name in objectives):
        raise TypeError(f"`objectives` must be a list of non-empty strings, got {objectives!r}.")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"`objectives` must not repeat a name, got {objectives!r}.")
    if conditioning is None and not objectives:
        return
    if not objectives or not isinstance(conditioning, dict):
        raise ValueError(
            "`objectives` and `preference_conditioning` come together (a preference-conditioned ARM records both), "
            f"got objectives={objectives!r}, preference_conditioning={conditioning!r}."
        )
    if conditioning.get("method") != "pblora":
        raise ValueError(f"`preference_conditioning.method` must be 'pblora', got {conditioning.get('method')!r}.")
    rank = conditioning.get("preference_rank")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"`preference_conditioning.preference_rank` must be a positive int, got {rank!r}.")


def _check_base_model_fingerprint(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f"`base_model_fingerprint` must be an object or null, got {type(value).__name__}.")
    if not isinstance(value.get("config_sha256"), str):
        digest = value.get("config_sha256")
        raise ValueError(f"`base_model_fingerprint.config_sha256` must be a string, got {digest!r}.")
    sample = value.get("weights_sample", [])
    if not isinstance(sample, list) or not all(_is_real_number(item) for item in sample):
        raise ValueError(f"`base_model_fingerprint.weights_sample` must be a list of numbers, got {sample!r}.")


@dataclass
class RewardModelMetadata:
    """GenARM metadata stored beside a reward model's weights in `genarm_config.json`.

    Every field is checked when the metadata is built, read or written, so a damaged or foreign file fails on
    loading with one error that names the file and the field.

    Args:
        beta_r (`float`, *optional*, defaults to `0.1`):
            Scale of the reward: `r(x, y) = beta_r * sum_t log pi_r(y_t | x, y_<t)`.
        base_model (`str`, *optional*):
            Hub id or absolute folder of the causal LM the reward model was trained from.
        tokenizer (`dict`, *optional*):
            Fingerprint of its tokenizer (see `hf_genarm.vocab.tokenizer_fingerprint`), used to refuse a base
            model whose tokenizer differs.
        datasets (`list[str]`, *optional*):
            Training data names.
        metrics (`dict`, *optional*):
            Evaluation metrics of the training run (shown in the model card).
        library_version (`str`, *optional*):
            Version of hf-genarm that wrote the file.
        base_model_fingerprint (`dict`, *optional*):
            For a PEFT adapter, what identifies the base model it was trained on (configuration hash, embedding
            shape, a sample of its weights; see `hf_genarm._base_model_identity`), checked when the adapter loads.
            Adapters saved before it existed load without the check.
        format_version (`int`, *optional*, defaults to `1`):
            Version of the file's layout (`2` for a preference-conditioned ARM); files from a newer layout are
            refused rather than half read.
        objectives (`list[str]`, *optional*):
            For a preference-conditioned ARM (`hf_genarm.preference_lora`), the objectives its preference vector
            weighs, in the order of the weights; empty for an ordinary ARM.
        preference_conditioning (`dict`, *optional*):
            For a preference-conditioned ARM, how it is conditioned: `{"method": "pblora", "preference_rank": r2}`.

    Examples:

    ```python
    >>> RewardModelMetadata(beta_r=0.05).beta_r
    0.05
    ```
    """

    beta_r: float = DEFAULT_BETA_R
    base_model: str | None = None
    tokenizer: dict[str, Any] | None = None
    datasets: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    library_version: str | None = None
    format_version: int = FIRST_FORMAT_VERSION
    base_model_fingerprint: dict[str, Any] | None = None
    objectives: list[str] = field(default_factory=list)
    preference_conditioning: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise `TypeError` or `ValueError` naming the first wrong one."""
        self.beta_r = validate_beta_r(self.beta_r)
        _check_optional_str(self.base_model, "base_model")
        _check_optional_str(self.library_version, "library_version")
        _check_fingerprint(self.tokenizer)
        _check_base_model_fingerprint(self.base_model_fingerprint)
        if not isinstance(self.datasets, list) or not all(isinstance(name, str) for name in self.datasets):
            raise TypeError(f"`datasets` must be a list of strings, got {self.datasets!r}.")
        if not isinstance(self.metrics, dict) or not all(
            isinstance(name, str) and _is_real_number(value) for name, value in self.metrics.items()
        ):
            raise TypeError(f"`metrics` must map metric names to numbers, got {self.metrics!r}.")
        _check_preference_fields(self.objectives, self.preference_conditioning)
        version = self.format_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"`format_version` must be a positive int, got {version!r}.")
        if version > GENARM_FORMAT_VERSION:
            raise ValueError(
                f"`format_version` is {version}, written by a newer hf-genarm that this one (format "
                f"{GENARM_FORMAT_VERSION}) cannot read; upgrade hf-genarm (`pip install -U hf-genarm`)."
            )

    def to_dict(self) -> dict[str, Any]:
        """The metadata as the JSON object `genarm_config.json` holds."""
        self.validate()
        raw = asdict(self)
        if not self.objectives:
            # An ordinary ARM's file stays as every earlier version wrote (and reads) it.
            del raw["objectives"], raw["preference_conditioning"]
        return raw

    @classmethod
    def from_dict(cls, raw: Any, source: str = GENARM_CONFIG_NAME) -> RewardModelMetadata:
        """Build metadata from a parsed `genarm_config.json`, checking every field.

        Keys this version does not know (added by a newer version of the same format, or misspelt) are ignored
        with a warning that names them and `source`; `beta_r` and `format_version`, which every writer records,
        are required.

        Args:
            raw (`dict`): The parsed JSON object.
            source (`str`, *optional*): Where it came from, named in errors.

        Raises:
            ValueError: Naming `source` and the field, for anything that is not valid metadata.

        Examples:

        ```python
        >>> RewardModelMetadata.from_dict({"beta_r": 0.2, "format_version": 1}).beta_r
        0.2
        >>> RewardModelMetadata.from_dict([], source="arm/genarm_config.json")
        Traceback (most recent call last):
        ...
        ValueError: arm/genarm_config.json is not valid GenARM metadata: it must hold a JSON object, got list.
        ```
        """
        if not isinstance(raw, dict):
            kind = "null" if raw is None else type(raw).__name__
            raise ValueError(f"{source} is not valid GenARM metadata: it must hold a JSON object, got {kind}.")
        missing = [name for name in ("beta_r", "format_version") if name not in raw]
        if missing:
            raise ValueError(
                f"{source} is not valid GenARM metadata: field `{missing[0]}` is missing (every hf-genarm "
                "version writes it); re-save the reward model, or remove the file and pass `beta_r=` when loading."
            )
        known = {item.name: raw[item.name] for item in fields(cls) if item.name in raw}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            # Forward compatibility: a newer writer of the same format may add fields; a typo must still show.
            logger.warning(
                f"{source} has field(s) this version of hf-genarm does not know, ignored: {', '.join(unknown)} "
                "(a typo, or written by a newer hf-genarm)."
            )
        try:
            return cls(**known)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source} is not valid GenARM metadata: {error}") from None

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Write the metadata as indented JSON (after checking it)."""
        content = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content + "\n")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> RewardModelMetadata:
        """Read metadata written by `to_json_file`; a file that is not valid metadata raises one `ValueError`."""
        try:
            # utf-8-sig: a file re-saved by an editor that adds a byte-order mark is still the same JSON.
            with open(path, encoding="utf-8-sig") as handle:
                raw = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{os.fspath(path)} is not valid JSON ({error}); re-save the reward model, or remove the file and "
                "pass `beta_r=` when loading."
            ) from None
        return cls.from_dict(raw, source=os.fspath(path))

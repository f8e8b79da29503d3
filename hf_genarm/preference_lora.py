"""Preference-conditioned ARMs: one reward model for every trade-off between objectives (PARM, PBLoRA).

PARM (Lin et al., ICML 2025, https://arxiv.org/abs/2505.06274) replaces the `k` separately trained ARMs of
multi-objective GenARM with one ARM conditioned on a preference vector `p` (`k` weights on the simplex). Its
Preference-aware Bilinear LoRA (PBLoRA) adapts a linear layer `W` by

    delta_W(p) = B · C(p) · A,        C(p) = diag(C_shared, sum_j p_j C_j)

with `A` (`r x in`) and `B` (`out x r`) trained as in LoRA, and an `r x r` core `C(p)` split into a
preference-agnostic block `C_shared` (`r1 x r1`) and a preference-aware block (`r2 x r2`, `r = r1 + r2`) that is
linear in `p`: PARM's released code computes `B[:, :r1] W1 A[:r1] + B[:, r1:] W2(p) A[r1:]` with `W2(p)` the
`r2 x r2` reshape of `p @ W2`, the same function. Deliberate differences: the scaling is PEFT's `lora_alpha / r`
(PARM's is `lora_alpha / r2`), and `C_shared` starts as the identity (PARM's starts random); both start as the base
model since `B = 0`.

The conditioning is built on PEFT's own LoRA layers, without forking PEFT: `get_peft_model` adds `A` and `B`
(`lora_A`, `lora_B`, rank `r`), then each `lora_A` is swapped for `PreferenceLoraCore`, a `torch.nn.Linear` with
the same weight that applies the core after `A`. PEFT's forward (`lora_B(lora_A(dropout(x))) * scaling`) and its
`save_pretrained` (every tensor under `lora_`, the cores included) see ordinary LoRA modules; the saved
`adapter_config.json` is marked so that PEFT alone refuses to load it (`hf_genarm._pblora_config`). The preference
of each row is set on the model (`PreferenceConditionedARM.set_preference`), so one forward serves rows with
different trade-offs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional
from transformers.utils import logging

from ._hub_transfer import CheckpointSource
from ._saved_folder import ADAPTER_FILES
from .configuration import GENARM_CONFIG_NAME, RewardModelMetadata, _is_real_number
from .modeling import AutoregressiveRewardModel

__all__ = [
    "PreferenceConditionedARM",
    "PreferenceLoraCore",
    "ProcessorPreferences",
    "get_preference_lora_model",
    "validate_preference",
]

logger = logging.get_logger(__name__)

# The name recorded in `genarm_config.json` for this conditioning (the only one so far).
PBLORA_METHOD = "pblora"
# The `genarm_config.json` layout of a preference-conditioned ARM: its adapter_config.json is marked so that plain
# PEFT refuses it (`hf_genarm._pblora_config`).
PBLORA_FORMAT_VERSION = 2
# How far a preference may stray from the simplex (sum 1, non-negative) and still be taken as on it.
_SIMPLEX_TOLERANCE = 1e-4


def validate_preference(preference: Any, objectives: Sequence[str], name: str = "preference") -> torch.Tensor:
    """Check a preference vector (or one per row) over `objectives` and return it as float32 `(rows, k)` on CPU.

    A preference weighs the objectives of a preference-conditioned ARM: `k` non-negative weights summing to 1
    (the simplex PARM trains on). A dict names the weights (`{"sentiment": 0.3, "topic": 0.7}`); a list or a 1-D
    tensor gives them in the order of `objectives`; a `(rows, k)` tensor gives each row its own.

    Args:
        preference (`dict`, `list[float]` or `torch.Tensor`): The preference.
        objectives (`list[str]`): The objectives' names, in the model's order.
        name (`str`, *optional*, defaults to `"preference"`): How the caller spells the argument in errors.

    Returns:
        `torch.Tensor` of shape `(1, k)` or `(rows, k)`, float32.

    Raises:
        TypeError: For anything but the forms above.
        ValueError: For the wrong number of weights, unknown names, negative, non-finite weights or rows that do
            not sum to 1.

    Examples:

    ```python
    >>> validate_preference({"topic": 0.75, "sentiment": 0.25}, ["sentiment", "topic"])
    tensor([[0.2500, 0.7500]])
    >>> validate_preference([0.5, 0.6], ["sentiment", "topic"])
    Traceback (most recent call last):
    ...
    ValueError: `preference` must lie on the simplex (non-negative weights summing to 1 per row), got [[0.5, 0.6]].
    ```
    """
    objectives = list(objectives)
    if isinstance(preference, dict):
        unknown = sorted(set(preference) - set(objectives))
        if unknown or len(preference) != len(objectives):
            raise ValueError(
                f"`{name}` names {sorted(preference)} but the model's objectives are {objectives}; give one weight "
                "per objective."
            )
        preference = [preference[objective] for objective in objectives]
    if isinstance(preference, (list, tuple)):
        if not all(_is_real_number(value) for value in preference):
            raise TypeError(f"`{name}` given as a list must hold only floats, got {preference!r}.")
        weights = torch.tensor([float(value) for value in preference], dtype=torch.float32).reshape(1, -1)
    elif isinstance(preference, torch.Tensor):
        if preference.dim() not in (1, 2) or preference.dtype == torch.bool:
            raise ValueError(
                f"`{name}` as a tensor must be 1-D (k,) or 2-D (rows, k), got shape {tuple(preference.shape)}."
            )
        weights = preference.detach().float().cpu().reshape(-1, preference.shape[-1])
    else:
        raise TypeError(
            f"`{name}` must be a dict {{objective: weight}}, a list of floats or a tensor, "
            f"got {type(preference).__name__}."
        )
    if weights.shape[1] != len(objectives) or weights.shape[0] == 0:
        raise ValueError(
            f"`{name}` has {weights.shape[1]} weight(s) per row but the model has {len(objectives)} objectives "
            f"{objectives}; give one weight per objective, in that order."
        )
    on_simplex = (
        torch.isfinite(weights).all()
        and bool((weights >= 0).all())
        and bool(((weights.sum(-1) - 1).abs() <= _SIMPLEX_TOLERANCE).all())
    )
    if not on_simplex:
        raise ValueError(
            f"`{name}` must lie on the simplex (non-negative weights summing to 1 per row), got "
            f"{[[round(value, 6) for value in row] for row in weights.tolist()]}."
        )
    return weights


class _PreferenceState:
    """The preference rows shared by every `PreferenceLoraCore` of one model (set once, read by each layer)."""

    def __init__(self, objectives: Sequence[str]) -> None:
        self.objectives = list(objectives)
        self.preference: torch.Tensor | None = None

    def rows(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The preference of each of `batch` rows: `P` given rows serve `batch = n * P` rows in groups of `n`."""
        if self.preference is None:
            raise ValueError(
                f"This preference-conditioned reward model needs a preference over {self.objectives} before a "
                "forward pass: call `reward_model.set_preference([...])` (or give `preference=` to the logits "
                "processor)."
            )
        given = self.preference.shape[0]
        if batch % given != 0:
            raise ValueError(
                f"The preference holds {given} rows but the forward pass has {batch}; give one preference row, one "
                "per row, or one per prompt (each repeated for its num_beams / num_return_sequences copies)."
            )
        return self.preference.to(device=device, dtype=dtype).repeat_interleave(batch // given, dim=0)


class PreferenceLoraCore(torch.nn.Linear):
    r"""PEFT's `lora_A` followed by PBLoRA's preference-dependent core: `x -> C(p) · A x`.

    It is a `torch.nn.Linear` holding `A` as its `weight` (so PEFT's LoRA code, which reads `lora_A.weight`, and
    saved adapters keep their layout) plus two core tensors, saved beside `A` in the adapter file:
    `core_shared` (`r1 x r1`, starting as the identity) and `core_preference` (`k x r2 x r2`, starting random so
    that the objectives' blocks differ). With PEFT's default initialisation (`B = 0`) the untrained model is the
    base model at every preference.

    Args:
        lora_a (`torch.nn.Linear`): The `lora_A` module it replaces (its weight is taken over, not copied).
        preference_rank (`int`): `r2`, the rank of the preference-aware block (at most `r`).
        state (`_PreferenceState`): Holder of the current preference rows, shared by the model's cores.

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm.preference_lora import PreferenceLoraCore, _PreferenceState
    >>> state = _PreferenceState(["helpful", "harmless"])
    >>> core = PreferenceLoraCore(torch.nn.Linear(8, 4, bias=False), preference_rank=2, state=state)
    >>> state.preference = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    >>> core(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 4])
    ```
    """

    def __init__(self, lora_a: torch.nn.Linear, preference_rank: int, state: _PreferenceState) -> None:
        rank = lora_a.out_features
        if not 1 <= preference_rank <= rank:
            raise ValueError(f"`preference_rank` must be between 1 and the LoRA rank r={rank}, got {preference_rank}.")
        weight = lora_a.weight
        super().__init__(lora_a.in_features, rank, bias=False, device="meta")
        self.weight = weight
        shared_rank = rank - preference_rank
        self.shared_rank = shared_rank
        self.preference_rank = preference_rank
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.core_shared = torch.nn.Parameter(torch.eye(shared_rank, **factory))
        # Each objective's block starts random (as a linear map of the preference would): with equal blocks, the
        # gradients that objectives pulling in opposite directions send to `B` cancel out, and training stalls.
        core_preference = torch.empty(len(state.objectives), preference_rank, preference_rank, **factory)
        torch.nn.init.normal_(core_preference, std=preference_rank**-0.5)
        self.core_preference = torch.nn.Parameter(core_preference)
        # Trainable exactly when the LoRA weights are (PEFT freezes them when loading for inference).
        self.core_shared.requires_grad_(weight.requires_grad)
        self.core_preference.requires_grad_(weight.requires_grad)
        # A plain attribute, not a submodule: the state holds no weights and must not enter the state dict.
        self.__dict__["_state"] = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = functional.linear(x, self.weight)
        rows = projected.shape[0]
        preference = self._state.rows(rows, projected.device, self.core_preference.dtype)
        # The preference-aware block of C(p), one r2 x r2 matrix per row: sum_j p_j C_j.
        core = torch.einsum("bk,kij->bij", preference, self.core_preference).to(projected.dtype)
        aware = projected[..., self.shared_rank :].reshape(rows, -1, self.preference_rank)
        aware = torch.matmul(aware, core.transpose(1, 2)).reshape(*projected.shape[:-1], self.preference_rank)
        if self.shared_rank == 0:
            return aware
        shared = functional.linear(projected[..., : self.shared_rank], self.core_shared.to(projected.dtype))
        return torch.cat([shared, aware], dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, shared_rank={self.shared_rank}, preference_rank={self.preference_rank}"


def _cores(model: torch.nn.Module) -> list[tuple[str, PreferenceLoraCore]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, PreferenceLoraCore)]


def _inject_cores(peft_model: torch.nn.Module, objectives: Sequence[str], preference_rank: int) -> _PreferenceState:
    """Swap every `lora_A` of the active adapter of `peft_model` for a `PreferenceLoraCore`; return their state."""
    from peft.tuners.lora import LoraLayer

    from ._pblora_config import as_preference_lora_config

    adapter = peft_model.active_adapter
    state = _PreferenceState(objectives)
    layers = [module for module in peft_model.modules() if isinstance(module, LoraLayer)]
    for layer in layers:
        if adapter not in layer.lora_A:
            continue
        lora_a = layer.lora_A[adapter]
        if not isinstance(lora_a, torch.nn.Linear) or isinstance(lora_a, PreferenceLoraCore):
            raise ValueError(
                f"PBLoRA conditions linear LoRA layers only; {type(layer).__name__} holds a {type(lora_a).__name__} "
                "`lora_A`. Restrict `target_modules` to linear layers (e.g. q_proj, k_proj, v_proj)."
            )
        if adapter in getattr(layer, "lora_variant", {}):
            raise ValueError(
                "PBLoRA is built on plain LoRA; drop `use_dora` and other LoRA variants from the `LoraConfig`."
            )
        layer.lora_A[adapter] = PreferenceLoraCore(lora_a, preference_rank, state)
    if not layers:
        raise ValueError("The PEFT model holds no LoRA layer to condition; build it from a `peft.LoraConfig`.")
    # Every save (ours, Trainer checkpoints, PeftModel.save_pretrained) then writes the adapter_config.json that
    # plain PEFT refuses rather than loading B·A without the cores.
    peft_model.peft_config[adapter] = as_preference_lora_config(peft_model.peft_config[adapter])
    return state


class ProcessorPreferences:
    """The preference a logits processor hands its preference-conditioned reward models, one row per prompt.

    Built once in the processor's `__init__` (every check happens there) and applied before each step, so several
    processors may share one reward model. `P` preference rows serve `n * P` generated rows in groups of `n`
    (`num_beams` / `num_return_sequences` copies of each prompt), and beam search only moves rows within their
    group, so the rows need no reordering.

    Args:
        reward_models (`list[torch.nn.Module]`): The processor's reward models.
        preference (`dict`, `list[float]`, `torch.Tensor` or `None`): See `validate_preference`.

    Raises:
        ValueError: A preference without a preference-conditioned reward model, a preference-conditioned reward
            model without a preference, or conditioned models over different objectives.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> ProcessorPreferences([make_tiny_causal_lm()], None).prompts is None
    True
    ```
    """

    def __init__(self, reward_models: Sequence[torch.nn.Module], preference: Any) -> None:
        self._states = []
        for index, model in enumerate(reward_models):
            cores = _cores(model)
            if cores:
                self._states.append((index, cores[0][1]._state))
        self.rows: torch.Tensor | None = None
        if preference is None:
            if self._states:
                index, state = self._states[0]
                raise ValueError(
                    f"`reward_models[{index}]` is preference-conditioned over {state.objectives}: pass `preference=` "
                    f"(one weight per objective, summing to 1, e.g. {[round(1 / len(state.objectives), 2)] * 2} for "
                    "two), or a (batch, k) tensor giving each prompt its own."
                )
            return
        if not self._states:
            raise ValueError(
                "`preference` is given but no reward model is preference-conditioned (a PreferenceConditionedARM); "
                "weigh ordinary reward models with `alpha`."
            )
        objectives = self._states[0][1].objectives
        for index, state in self._states[1:]:
            if state.objectives != objectives:
                raise ValueError(
                    f"`reward_models[{index}]` is conditioned on {state.objectives} but another reward model on "
                    f"{objectives}; one `preference` serves reward models over the same objectives only."
                )
        self.rows = validate_preference(preference, objectives)

    @property
    def prompts(self) -> int | None:
        """The number of prompts the preference is given for (`None` for one preference for every row)."""
        return self.rows.shape[0] if self.rows is not None and self.rows.shape[0] > 1 else None

    def apply(self) -> None:
        """Set the preference on every preference-conditioned reward model (before each step's forward)."""
        for _, state in self._states:
            state.preference = self.rows


def _check_objectives(objectives: Any) -> list[str]:
    if isinstance(objectives, str) or not isinstance(objectives, Sequence):
        raise TypeError(f"`objectives` must be a list of names, got {type(objectives).__name__}.")
    objectives = list(objectives)
    if len(objectives) < 2 or not all(isinstance(name, str) and name for name in objectives):
        raise ValueError(f"`objectives` must name at least two objectives (non-empty strings), got {objectives!r}.")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"`objectives` must not repeat a name, got {objectives!r}.")
    return objectives


def get_preference_lora_model(
    model: torch.nn.Module, lora_config: Any, objectives: Sequence[str], preference_rank: int | None = None
) -> torch.nn.Module:
    """Add a PBLoRA adapter to a causal LM: PEFT's LoRA (`A`, `B`) with a preference-conditioned core.

    Args:
        model (`PreTrainedModel`): The causal LM (not yet a PEFT model).
        lora_config (`peft.LoraConfig`): The LoRA of `A` and `B`: `r = r1 + r2`, `lora_alpha`, `target_modules`.
        objectives (`list[str]`): The objectives' names; their order is the order of preference weights.
        preference_rank (`int`, *optional*): `r2`, the rank of the preference-aware block; defaults to `r // 2`
            (PARM's experiments split the rank evenly), at least 1. The shared block gets `r - r2`.

    Returns:
        `peft.PeftModel` whose `lora_A` modules are `PreferenceLoraCore`s.

    Examples:

    ```python
    >>> from peft import LoraConfig
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> model = get_preference_lora_model(
    ...     make_tiny_causal_lm(), LoraConfig(r=4, target_modules=["c_attn"]), ["sentiment", "topic"]
    ... )
    >>> sum(isinstance(module, PreferenceLoraCore) for module in model.modules())  # one per c_attn of 2 layers
    2
    ```
    """
    from peft import LoraConfig, get_peft_model

    objectives = _check_objectives(objectives)
    if not isinstance(lora_config, LoraConfig):
        raise TypeError(f"`lora_config` must be a peft.LoraConfig, got {type(lora_config).__name__}.")
    if hasattr(model, "peft_config"):
        raise ValueError("`model` already carries a PEFT adapter; pass the plain causal LM.")
    rank = lora_config.r
    preference_rank = max(1, rank // 2) if preference_rank is None else preference_rank
    if isinstance(preference_rank, bool) or not isinstance(preference_rank, int):
        raise TypeError(f"`preference_rank` must be an int, got {type(preference_rank).__name__}.")
    peft_model = get_peft_model(model, lora_config)
    _inject_cores(peft_model, objectives, preference_rank)
    return peft_model


class PreferenceConditionedARM(AutoregressiveRewardModel):
    r"""One autoregressive reward model for every trade-off between `k` objectives (PARM, PBLoRA).

    Its reward under a preference `p` (on the simplex) is `beta_r * sum_t log pi_r(y_t | x, y_<t; p)`, the
    log-likelihood of the causal LM whose LoRA update is `B C(p) A` (see `hf_genarm.preference_lora`). Set the
    preference with `set_preference` before reading rewards; `GenARMLogitsProcessor(..., preference=...)` sets it
    for you, per prompt, with one reward-model pass per token whatever `k`.

    Saved like every adapter ARM (`adapter_model.safetensors` holding `A`, `B` and the cores, `adapter_config.json`,
    `genarm_config.json`, a model card), with the objectives' names and order and the core's ranks in
    `genarm_config.json` (format version 2). Load it with `PreferenceConditionedARM.from_pretrained`; every other
    loader refuses the folder and names this one: `AutoregressiveRewardModel.from_pretrained`, and plain PEFT
    (`PeftModel.from_pretrained`, `AutoModelForCausalLM.from_pretrained`), whose `adapter_config.json` records a
    `peft_type` PEFT does not know, since PEFT alone would load `B A` without the cores, another model.

    Args:
        model (`PreTrainedModel` or `peft.PeftModel`): A causal LM (given a `lora_config`), a PEFT model from
            `get_preference_lora_model`, or a plain-LoRA PEFT model whose `metadata` records the conditioning.
        objectives (`list[str]`, *optional*): The objectives' names, in the order preference weights follow;
            read from `metadata` when omitted.
        lora_config (`peft.LoraConfig`, *optional*): For a plain causal LM, the LoRA of `A` and `B`.
        preference_rank (`int`, *optional*): `r2`, see `get_preference_lora_model`.
        beta_r (`float`, *optional*): Reward scale.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): As for `AutoregressiveRewardModel`.
        metadata (`RewardModelMetadata`, *optional*): As for `AutoregressiveRewardModel`.

    Examples:

    ```python
    >>> import torch
    >>> from peft import LoraConfig
    >>> from hf_genarm import PreferenceConditionedARM
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> arm = PreferenceConditionedARM(
    ...     make_tiny_causal_lm(), objectives=["sentiment", "topic"],
    ...     lora_config=LoraConfig(r=4, target_modules=["c_attn"]), tokenizer=tokenizer,
    ... )
    >>> arm.set_preference([0.3, 0.7])
    >>> batch = tokenizer(["Question: hi? Answer: hello"], return_tensors="pt")
    >>> arm.sequence_rewards(**batch, prompt_length=4).shape
    torch.Size([1])
    ```
    """

    def __init__(
        self,
        model: torch.nn.Module,
        objectives: Sequence[str] | None = None,
        lora_config: Any = None,
        preference_rank: int | None = None,
        beta_r: float | None = None,
        tokenizer: Any = None,
        metadata: RewardModelMetadata | None = None,
    ) -> None:
        if isinstance(model, AutoregressiveRewardModel):
            metadata = metadata or model.metadata
            model = model.model
        recorded = (metadata.preference_conditioning or {}) if metadata is not None else {}
        if objectives is None:
            objectives = metadata.objectives if metadata is not None and metadata.objectives else None
        cores = _cores(model) if isinstance(model, torch.nn.Module) else []
        if cores:
            state = cores[0][1]._state
            if objectives is not None and list(objectives) != state.objectives:
                raise ValueError(
                    f"`objectives` {list(objectives)} differ from those the model is conditioned on {state.objectives}."
                )
            objectives, preference_rank = state.objectives, cores[0][1].preference_rank
        elif objectives is None:
            raise ValueError(
                "`objectives` is required: name the objectives the preference vector weighs, e.g. "
                "`objectives=['helpful', 'harmless']`."
            )
        elif hasattr(model, "peft_config"):
            preference_rank = preference_rank or recorded.get("preference_rank")
            if preference_rank is None:
                raise ValueError("`preference_rank` is required to condition an existing LoRA adapter.")
            state = _inject_cores(model, _check_objectives(objectives), preference_rank)
        else:
            if lora_config is None:
                raise ValueError(
                    "A plain causal LM needs `lora_config=` (a peft.LoraConfig giving r and target_modules) to build "
                    "its PBLoRA adapter."
                )
            model = get_preference_lora_model(model, lora_config, objectives, preference_rank)
            state = _cores(model)[0][1]._state
            preference_rank = _cores(model)[0][1].preference_rank
        super().__init__(model, beta_r=beta_r, tokenizer=tokenizer, metadata=metadata)
        self.metadata.objectives = list(state.objectives)
        self.metadata.preference_conditioning = {"method": PBLORA_METHOD, "preference_rank": int(preference_rank)}
        self.metadata.format_version = PBLORA_FORMAT_VERSION
        self._preference_state = state

    @property
    def objectives(self) -> list[str]:
        """The objectives' names, in the order of the preference weights."""
        return list(self._preference_state.objectives)

    @property
    def preference(self) -> torch.Tensor | None:
        """The current preference rows `(rows, k)` (float32), or `None` before `set_preference`."""
        return self._preference_state.preference

    def set_preference(self, preference: Any) -> None:
        """Condition the model on a preference: one for every row, or one per row (or per prompt) of the next batch.

        Args:
            preference (`dict`, `list[float]` or `torch.Tensor`): See `validate_preference`. `P` rows serve a batch
                of `n * P` rows, row `i` taking preference `i // n` (the layout of `generate()`'s `num_beams` /
                `num_return_sequences` copies).
        """
        self._preference_state.preference = validate_preference(preference, self.objectives)

    def merge_adapter(self) -> AutoregressiveRewardModel:
        """Refused: the update `B C(p) A` depends on the preference, so there is no one weight to merge."""
        raise ValueError(
            "A preference-conditioned ARM cannot be merged: its LoRA update B·C(p)·A depends on the preference. "
            "Keep the adapter, and set the preference per request instead."
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> PreferenceConditionedARM:
        """Load a saved preference-conditioned ARM: the LoRA adapter, then its cores from the same file.

        Takes the arguments of `AutoregressiveRewardModel.from_pretrained` (`beta_r`, `is_trainable`,
        `base_model`, model keyword arguments).

        Raises:
            ValueError: When the folder is not a preference-conditioned ARM (its `genarm_config.json` records no
                objectives, or its adapter is of another PEFT method) or its adapter lacks core tensors.
        """
        from safetensors.torch import load_file

        source = CheckpointSource(os.fspath(pretrained_model_name_or_path), revision, token, cache_dir)
        sidecar = source.file(GENARM_CONFIG_NAME)
        metadata = RewardModelMetadata.from_json_file(sidecar) if sidecar else None
        adapter_file = source.file(ADAPTER_FILES[1])
        if metadata is None or not metadata.objectives or adapter_file is None:
            raise ValueError(
                f"{source.name} is not a preference-conditioned ARM (no adapter, or a genarm_config.json that records "
                "no objectives); load it with `AutoregressiveRewardModel.from_pretrained`."
            )
        # The LoRA adapter loads as PEFT loads it (A and B); this class's constructor then adds the cores.
        reward_model = super().from_pretrained(
            pretrained_model_name_or_path, revision=revision, token=token, cache_dir=cache_dir, **kwargs
        )
        saved = load_file(adapter_file)
        adapter = f".{reward_model.model.active_adapter}"
        for module_name, core in _cores(reward_model.model):
            prefix = module_name.replace(adapter, "")
            for tensor_name in ("core_shared", "core_preference"):
                key = f"{prefix}.{tensor_name}"
                if key not in saved:
                    raise ValueError(
                        f"{source.name}'s adapter lacks `{key}`: it was not saved by a preference-conditioned ARM "
                        "(or was re-saved by a tool that dropped its cores)."
                    )
                target = getattr(core, tensor_name)
                if saved[key].shape != target.shape:
                    raise ValueError(
                        f"{source.name}: `{key}` has shape {tuple(saved[key].shape)}, expected {tuple(target.shape)}."
                    )
                with torch.no_grad():
                    target.copy_(saved[key])
        return reward_model

    @classmethod
    def _read_adapter_config(cls, source: CheckpointSource) -> Any:
        """The LoRA configuration of `A` and `B`, from the marked `adapter_config.json` PEFT itself refuses."""
        from ._pblora_config import read_preference_lora_config

        return read_preference_lora_config(source.file(ADAPTER_FILES[0]), source.name)

"""`PreferenceARMTrainer`: train one preference-conditioned ARM (PARM) on preference pairs labelled per objective.

PARM (Lin et al., ICML 2025, https://arxiv.org/abs/2505.06274) trains one ARM `pi_r(. | p)` for every preference
`p` on the simplex by linear scalarisation: it samples preferences from a symmetric Dirichlet distribution and
minimises

    E_p [ sum_j p_j * L_j(p) ],     L_j(p) = E_{pairs of objective j} -log sigmoid(beta_r * (log pi_r(chosen | p)
                                                                                   - log pi_r(rejected | p)))

with the model conditioned on the same `p` it weighs the objectives by. PARM's released trainer draws one `p` per
batch (concentration 0.5 in its training script) and labels every pair for every objective, so each batch gives
`sum_j p_j * mean L_j`. Here a pair belongs to one objective (data come per objective) and each pair draws its own
`p`; a pair of objective `j` is weighted by `p_j / share_j` (`share_j`: objective `j`'s fraction of the training
pairs, `1 / k` for equal shares), so the batch mean is an unbiased estimate of the same objective whatever the
shares, with less variance than one draw per batch. Evaluation conditions each pair on its own objective
(`p = e_j`), so `eval_rewards/accuracies` is the pair accuracy of each objective at its own corner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset, concatenate_datasets
from transformers.utils import logging

from .data import TOKENIZED_COLUMNS
from .preference_lora import PreferenceConditionedARM, _check_objectives, get_preference_lora_model
from .trainer import ARMConfig, ARMTrainer

__all__ = ["PreferenceARMConfig", "PreferenceARMTrainer"]

logger = logging.get_logger(__name__)

OBJECTIVE_INDEX = "objective_index"


@dataclass
class PreferenceARMConfig(ARMConfig):
    r"""Configuration of `PreferenceARMTrainer`: `ARMConfig` plus how preferences are sampled and labelled.

    Parameters:
        objective_column (`str`, *optional*, defaults to `"objective"`):
            Column naming each pair's objective, for a training set given as one dataset rather than a dict
            `{objective: dataset}`.
        preference_concentration (`float`, *optional*, defaults to `0.5`):
            Concentration of the symmetric Dirichlet distribution each pair's preference is drawn from: `0.5`, as
            PARM's released training script, favours the corners a little; `1.0` is uniform on the simplex.

    Examples:

    ```python
    >>> from hf_genarm import PreferenceARMConfig
    >>> PreferenceARMConfig(output_dir="parm", preference_concentration=0.5).preference_concentration
    0.5
    ```
    """

    objective_column: str = field(
        default="objective",
        metadata={"help": "Column naming each pair's objective when the training set is one dataset."},
    )
    preference_concentration: float = field(
        default=0.5,
        metadata={"help": "Dirichlet concentration of the sampled preferences (PARM's 0.5); 1.0 is uniform."},
    )

    def __post_init__(self) -> None:
        concentration = self.preference_concentration
        if isinstance(concentration, bool) or not isinstance(concentration, (int, float)) or not concentration > 0:
            raise ValueError(f"`preference_concentration` must be a float > 0, got {concentration!r}.")
        super().__post_init__()


class _ObjectiveCollator:
    """`PreferenceCollator`'s batch plus each pair's objective index."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.collator = collator

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        batch[OBJECTIVE_INDEX] = torch.tensor([int(example[OBJECTIVE_INDEX]) for example in examples])
        return batch


class PreferenceARMTrainer(ARMTrainer):
    r"""Train one preference-conditioned ARM (PARM) on preference pairs labelled per objective.

    The model gets a PBLoRA adapter (`hf_genarm.preference_lora`) from `peft_config` (a `peft.LoraConfig`), or
    keeps training the one of a `PreferenceConditionedARM`. Each pair draws a preference `p` and is scored by the
    model conditioned on it; its GenARM loss is weighted by `p_j / share_j` for its objective `j` (PARM's linear
    scalarisation, see the module docstring). Everything else is `ARMTrainer`'s: data formats, metrics, saving
    (the folder records the objectives' names and order), `push_to_hub`.

    Args:
        model (`str`, `PreTrainedModel`, `PreferenceConditionedARM`): As for `ARMTrainer`; a plain causal LM needs
            `peft_config`.
        args (`PreferenceARMConfig`): Training configuration.
        train_dataset (`dict[str, dataset]` or dataset, *optional*): Pairs per objective, either a dict
            `{objective: dataset}` (each in a TRL format `ARMTrainer` reads) or one dataset with an
            `args.objective_column` column.
        eval_dataset (`dict[str, dataset]` or dataset, *optional*): Held-out pairs, in the same forms; a dict is
            evaluated per objective (`eval_<objective>_rewards/accuracies`).
        objectives (`list[str]`, *optional*): The objectives' names in the order preference weights follow;
            defaults to the model's, the dict's keys, or the sorted names in the objective column.
        peft_config (`peft.LoraConfig`, *optional*): The LoRA of PBLoRA's `A` and `B` (rank `r = r1 + r2`).
        preference_rank (`int`, *optional*): `r2`, the rank of the preference-aware core (default `r // 2`).
        kwargs: Passed to `ARMTrainer` (`processing_class`, `data_collator`, `callbacks`, ...).

    Examples:

    ```python
    >>> import tempfile
    >>> from peft import LoraConfig
    >>> from hf_genarm import PreferenceARMConfig, PreferenceARMTrainer
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> pairs = {
    ...     "kind": [{"prompt": "Question: hi? Answer:", "chosen": " hello", "rejected": " go away"}] * 2,
    ...     "brief": [{"prompt": "Question: hi? Answer:", "chosen": " hi", "rejected": " hello there"}] * 2,
    ... }
    >>> args = PreferenceARMConfig(
    ...     output_dir=tempfile.mkdtemp(), max_steps=1, per_device_train_batch_size=4, use_cpu=True,
    ...     save_strategy="no", report_to=[], disable_tqdm=True,
    ... )
    >>> trainer = PreferenceARMTrainer(
    ...     make_tiny_causal_lm(), args=args, train_dataset=pairs, processing_class=make_tiny_tokenizer(),
    ...     peft_config=LoraConfig(r=4, target_modules=["c_attn"]),
    ... )
    >>> _ = trainer.train()  # doctest: +ELLIPSIS
    {...}
    >>> trainer.reward_model.objectives
    ['kind', 'brief']
    ```
    """

    _tag_names = ("genarm", "hf-genarm", "reward-model", "parm")

    def __init__(
        self,
        model: Any,
        args: PreferenceARMConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        objectives: Sequence[str] | None = None,
        peft_config: Any = None,
        preference_rank: int | None = None,
        **kwargs: Any,
    ) -> None:
        if args is not None and not isinstance(args, PreferenceARMConfig):
            raise TypeError(
                f"`args` must be a PreferenceARMConfig, got {type(args).__name__}; build it with "
                "`PreferenceARMConfig(output_dir=..., ...)` (it accepts every ARMConfig field)."
            )
        if args is None:
            args = PreferenceARMConfig(
                output_dir=f"{type(model).__name__ if not isinstance(model, str) else model}-PARM"
            )
        conditioned = isinstance(model, PreferenceConditionedARM)
        if not conditioned and peft_config is None:
            raise ValueError(
                "PreferenceARMTrainer needs `peft_config` (a peft.LoraConfig, e.g. LoraConfig(r=8, "
                "target_modules=[...])) to build the PBLoRA adapter, or a `PreferenceConditionedARM` to keep training."
            )
        self._objectives = self._resolve_objectives(objectives, model, train_dataset, args.objective_column)
        self._preference_rank = preference_rank
        if conditioned and peft_config is not None:
            raise ValueError("`model` is already a PreferenceConditionedARM; drop `peft_config` to keep training it.")
        super().__init__(
            model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, peft_config=peft_config, **kwargs
        )
        self._reward_model = PreferenceConditionedARM(self._reward_model)
        self.data_collator = _ObjectiveCollator(self.data_collator)
        self._pair_weights = torch.ones(())
        self._inverse_shares = self._objective_inverse_shares()

    # ------------------------------------------------------------------------------------------------ setup
    @staticmethod
    def _resolve_objectives(objectives: Any, model: Any, data: Any, column: str) -> list[str]:
        if isinstance(model, PreferenceConditionedARM):
            if objectives is not None and list(objectives) != model.objectives:
                raise ValueError(
                    f"`objectives` {list(objectives)} differ from the model's {model.objectives} (same names, same "
                    "order)."
                )
            return model.objectives
        if objectives is not None:
            return _check_objectives(objectives)
        if isinstance(data, Mapping):
            return _check_objectives(list(data))
        if isinstance(data, Dataset) and column in data.column_names:
            return _check_objectives(sorted(set(data[column])))
        if isinstance(data, list) and all(isinstance(row, Mapping) and column in row for row in data):
            return _check_objectives(sorted({row[column] for row in data}))
        raise ValueError(
            "Cannot tell the objectives: pass `objectives=[...]`, a dict `{objective: dataset}` as `train_dataset`, "
            f"or a dataset with a `{column}` column."
        )

    def _apply_peft(self, model: torch.nn.Module, peft_config: Any, args: ARMConfig) -> torch.nn.Module:
        model = get_preference_lora_model(model, peft_config, self._objectives, self._preference_rank)
        if args.gradient_checkpointing:
            model.enable_input_require_grads()
        return model

    def _prepare(self, data: Any, tokenizer: Any, args: ARMConfig, name: str) -> Dataset:
        """Tokenize each objective's pairs (as `ARMTrainer` does) and label them with the objective's index."""
        if isinstance(data, Mapping):
            parts = list(data.items())
        else:
            rows = Dataset.from_list(list(data)) if isinstance(data, list) else data
            if not isinstance(rows, Dataset) or args.objective_column not in rows.column_names:
                raise ValueError(
                    f"`{name}` must be a dict {{objective: dataset}} or a dataset with a `{args.objective_column}` "
                    "column naming each pair's objective."
                )
            labels = rows[args.objective_column]
            parts = [
                (objective, rows.select([i for i, label in enumerate(labels) if label == objective]))
                for objective in dict.fromkeys(labels)
            ]
        unknown = sorted({objective for objective, _ in parts} - set(self._objectives))
        if unknown:
            raise ValueError(
                f"`{name}` holds pairs of {unknown}, which are not among the objectives {self._objectives}."
            )
        prepared = []
        for objective, part in parts:
            if isinstance(part, Dataset) and args.objective_column in part.column_names:
                part = part.remove_columns(args.objective_column)
            tokenized = super()._prepare(part, tokenizer, args, f"{name}[{objective!r}]")
            index = self._objectives.index(objective)
            prepared.append(tokenized.add_column(OBJECTIVE_INDEX, [index] * len(tokenized)))
        return concatenate_datasets(prepared)

    def _prepare_eval(self, data: Any, tokenizer: Any, args: ARMConfig, name: str) -> Any:
        """A dict `{objective: pairs}` is evaluated per objective; one labelled dataset as a whole."""
        if isinstance(data, Mapping):
            return {
                objective: self._prepare({objective: part}, tokenizer, args, name) for objective, part in data.items()
            }
        return self._prepare(data, tokenizer, args, name)

    def _objective_inverse_shares(self) -> torch.Tensor:
        """`1 / share_j` per objective (`k` each for equal shares) from the training pairs' objective labels."""
        count = len(self._objectives)
        if self.train_dataset is None:
            return torch.full((count,), float(count))
        pairs = torch.bincount(torch.tensor(self.train_dataset[OBJECTIVE_INDEX]), minlength=count).float()
        # An objective without training pairs never needs its weight; 0 keeps the tensor finite.
        return torch.where(pairs > 0, pairs.sum() / pairs.clamp(min=1), torch.zeros(()))

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = [*TOKENIZED_COLUMNS, OBJECTIVE_INDEX]

    # ------------------------------------------------------------------------------------------------ loss
    def _sample_preferences(self, objective_index: torch.Tensor, training: bool) -> torch.Tensor:
        """One preference per pair: drawn from the Dirichlet distribution in training, `e_j` in evaluation."""
        count = len(self._objectives)
        if not training:
            return torch.nn.functional.one_hot(objective_index.cpu(), count).float()
        concentration = torch.full((count,), float(self.args.preference_concentration))
        return torch.distributions.Dirichlet(concentration).sample((objective_index.shape[0],))

    def _pair_log_probs(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition each pair on its preference (chosen rows, then rejected rows), then `ARMTrainer`'s log-probs."""
        objective_index = inputs[OBJECTIVE_INDEX].cpu()
        preferences = self._sample_preferences(objective_index, model.training)
        self._reward_model.set_preference(torch.cat([preferences, preferences]))
        if model.training:
            own_weight = preferences.gather(1, objective_index.unsqueeze(1)).squeeze(1)
            self._pair_weights = own_weight * self._inverse_shares[objective_index]
        else:
            self._pair_weights = torch.ones(objective_index.shape[0])
        return super()._pair_log_probs(model, inputs)

    def _pair_loss_weights(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """`p_j / share_j` for each training pair of objective `j`; 1 in evaluation (where `p = e_j`)."""
        return self._pair_weights

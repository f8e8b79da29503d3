"""`ARMTrainer`: train a GenARM autoregressive reward model on preference pairs with `transformers.Trainer`.

The reward model `pi_r` is a causal LM trained so that its summed response log-likelihood ranks the chosen
response above the rejected one (Xu et al., ICLR 2025, https://arxiv.org/abs/2410.08193):

    loss = -log sigmoid(beta_r * (sum_t log pi_r(chosen_t | .) - sum_t log pi_r(rejected_t | .)))

i.e. DPO with zero reference log-probabilities: no reference model is loaded. Sums run over response tokens
only (prompt and padding masked, EOS counted), and chosen and rejected sequences share one forward pass.
Distributed training, mixed precision, checkpointing and resumption are `Trainer`'s own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from datasets import Dataset
from torch.nn import functional
from transformers import (
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy, get_last_checkpoint
from transformers.utils import logging

from ._atomic_folder import check_folder_writable
from ._base_model_identity import base_model_fingerprint
from ._saved_folder import (
    adapter_files,
    check_folder_takes_a_model,
    files_to_upload,
    full_model_files,
    write_folder_atomically,
)
from ._version import __version__
from .configuration import (
    GENARM_CONFIG_NAME,
    RewardModelMetadata,
    refuse_remote_code,
    validate_beta_r,
    validate_positive_length,
)
from .data import (
    TOKENIZED_COLUMNS,
    PreferenceCollator,
    PreferenceDataReport,
    check_truncation_settings,
    prepare_preference_dataset,
)
from .metrics import compute_preference_metrics
from .modeling import (
    AutoregressiveRewardModel,
    adapter_base_folders,
    response_log_probs,
)
from .training_options import ARMOptions
from .vocab import checked_tokenizer_fingerprint, load_folder_tokenizer, model_vocab_size, tokenizer_fingerprint

__all__ = ["ARMConfig", "ARMTrainer", "disable_dropout"]

logger = logging.get_logger(__name__)

_TIMING_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time")
_LOGGED_STATISTICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
)


@dataclass
class ARMConfig(TrainingArguments, ARMOptions):
    r"""Configuration of `ARMTrainer`: `transformers.TrainingArguments` plus what GenARM reward training needs.

    Only the GenARM-specific fields are listed; see `transformers.TrainingArguments` for the rest. Being a
    dataclass of `TrainingArguments`, it works with `transformers.HfArgumentParser` on the command line.

    Parameters:
        beta_r (`float`, *optional*, defaults to `0.1`):
            Reward scale: the reward of a response is `beta_r * sum_t log pi_r(y_t | x, y_<t)` and the loss is
            `-log sigmoid(beta_r * (sum log pi_r(chosen) - sum log pi_r(rejected)))`. It is saved in
            `genarm_config.json` with the model. The GenARM authors' released training scripts set it per
            dataset: `0.05` on HH-RLHF (LLaMA-7B SFT, LoRA), `0.5` for the helpfulness ARM and `0.01` for the
            harmlessness ARM on PKU-SafeRLHF-10K (Alpaca-7B, LoRA); `0.1` is what their DPO baseline used and
            this default.

        max_length (`int` or `None`, *optional*, defaults to `1024`):
            Longest prompt + response in tokens. Longer responses are cut at the end (counted in the data report);
            rows whose prompt alone fills `max_length` are skipped. `None` disables the limit.
        max_prompt_length (`int` or `None`, *optional*):
            Longest prompt in tokens; longer prompts are truncated according to `truncation_mode` and counted.
            Must be smaller than `max_length`. Defaults to half of `max_length` (`512` for the default `1024`);
            without `max_length` it defaults to no limit.
        truncation_mode (`str`, *optional*, defaults to `"keep_end"`):
            Which part of an over-long prompt to keep: `"keep_end"` (the tokens nearest the response) or
            `"keep_start"`.
        dataset_num_proc (`int`, *optional*):
            Number of processes used to tokenize the datasets (`datasets.Dataset.map`).

        model_init_kwargs (`dict[str, Any]`, *optional*):
            Keyword arguments for `AutoModelForCausalLM.from_pretrained` (e.g. `{"dtype": "bfloat16"}`), used when
            `model` is given to `ARMTrainer` as a name or path. `dtype` defaults to `float32`, as in TRL.
            `trust_remote_code` is refused.
        disable_dropout (`bool`, *optional*, defaults to `True`):
            Set every dropout probability of the model to 0, as TRL's preference trainers do.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Let saves replace model files in `output_dir` (and in its `checkpoint-*` folders) that hf-genarm did not
            write: another library's model, or weights in a format hf-genarm never writes. Without it, training
            refuses to start over such files. Model files of an earlier hf-genarm save (a LoRA adapter under a
            full-model run, stale shards) are always replaced, so the folder holds exactly one model; other files
            (notes, data, a model card the user wrote) are always kept.

    Examples:

    ```python
    >>> from hf_genarm import ARMConfig
    >>> args = ARMConfig(output_dir="arm-model", beta_r=0.05, max_length=256)
    >>> args.beta_r, args.max_prompt_length, args.truncation_mode
    (0.05, 128, 'keep_end')
    ```
    """

    _VALID_DICT_FIELDS: ClassVar[list[str]] = [*TrainingArguments._VALID_DICT_FIELDS, "model_init_kwargs"]

    def __post_init__(self) -> None:
        self.beta_r = validate_beta_r(self.beta_r)
        validate_positive_length(self.dataset_num_proc, "dataset_num_proc")
        if self.max_prompt_length is None and validate_positive_length(self.max_length, "max_length") is not None:
            self.max_prompt_length = max(1, self.max_length // 2)
        check_truncation_settings(self.max_length, self.max_prompt_length, self.truncation_mode)
        super().__post_init__()


# How a user of the trainer asks for `overwrite` (named in the error that refuses someone else's model files).
_OVERWRITE_OPTION = "`ARMConfig(overwrite_output_dir=True)` (`--overwrite_output_dir` for `hf-genarm train`)"


def _check_output_folders(args: ARMConfig, base_model_folders: tuple[str, ...] = ()) -> None:
    """Refuse, before any training, an `output_dir` (or `checkpoint-*` folder in it) that saving would refuse.

    `base_model_folders` are the folders of the base model of the adapter being trained: saving the adapter there
    would remove the weights it needs.
    """
    check_folder_writable(args.output_dir, "`output_dir`")
    folders = [args.output_dir]
    if args.save_strategy != "no" and os.path.isdir(args.output_dir):
        checkpoints = Path(args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        folders += sorted(os.fspath(folder) for folder in checkpoints if folder.is_dir())
    for folder in folders:
        check_folder_takes_a_model(
            folder,
            overwrite=args.overwrite_output_dir,
            overwrite_option=_OVERWRITE_OPTION,
            base_model_folders=base_model_folders,
        )


def _check_checkpoint_kind(checkpoint: str, is_adapter: bool) -> None:
    """Refuse resuming from a checkpoint of the other kind (an adapter for a full-model run, or the reverse)."""
    names = sorted(os.listdir(checkpoint))
    if adapter_files(names):
        saved = "a PEFT adapter"
    elif [name for name in full_model_files(names) if name != "config.json"]:
        saved = "a full model"
    else:
        return  # a checkpoint layout of another kind (e.g. FSDP shards): transformers checks it
    trained = "a PEFT adapter" if is_adapter else "a full model"
    if saved != trained:
        raise ValueError(
            f"`resume_from_checkpoint` ({checkpoint}) holds {saved} but this run trains {trained}; resume with the "
            f"run that wrote it ({'with' if saved == 'a PEFT adapter' else 'without'} `peft_config`, `--lora` on the "
            "command line), or start without `resume_from_checkpoint`."
        )


def _dataset_name(data: Any) -> str | None:
    if isinstance(data, (str, os.PathLike)):
        return os.path.basename(os.fspath(data))
    if isinstance(data, Dataset):
        return data.info.dataset_name or None
    return None


def disable_dropout(model: torch.nn.Module) -> None:
    """Set the probability of every `torch.nn.Dropout` in `model` to 0, as TRL's preference trainers do.

    Args:
        model (`torch.nn.Module`): The model, changed in place.

    Examples:

    ```python
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    >>> disable_dropout(model)
    >>> model[1].p
    0.0
    ```
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


class _PairStatistics:
    """Per-pair reward statistics summed since the last log, so each logged mean weighs every pair equally.

    Averaging per-batch means instead would over-weigh a smaller last batch, and `eval_rewards/accuracies`
    would then disagree with the exact `eval_preference_accuracy` on the same pairs.
    """

    def __init__(self) -> None:
        self._sums = [0.0] * len(_LOGGED_STATISTICS)
        self._pairs = 0

    def add(self, rows: torch.Tensor) -> None:
        """Add a `(pairs, len(_LOGGED_STATISTICS))` tensor of per-pair statistics."""
        self._sums = [total + value for total, value in zip(self._sums, rows.double().sum(0).tolist())]
        self._pairs += rows.shape[0]

    def pop_means(self) -> dict[str, float]:
        """The mean of each statistic over the pairs added since the last call (empty when none), then reset."""
        pairs, sums = self._pairs, self._sums
        self._sums, self._pairs = [0.0] * len(_LOGGED_STATISTICS), 0
        return {name: total / pairs for name, total in zip(_LOGGED_STATISTICS, sums)} if pairs else {}


class ARMTrainer(Trainer):
    r"""Train a GenARM autoregressive reward model (ARM) on preference pairs.

    The loss is `-log sigmoid(beta_r * (sum log pi_r(chosen) - sum log pi_r(rejected)))` with sums over response
    tokens only (prompt and padding masked, EOS counted); chosen and rejected sequences go through the model in
    one concatenated forward pass and no reference model is loaded. Logged metrics use TRL's names:
    `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins`, `logps/chosen`,
    `logps/rejected` (and `eval_...` during evaluation), plus `eval_preference_accuracy` from the
    preference-accuracy `evaluate` module shipped with hf-genarm. A reward is `beta_r` times the summed
    log-probability, as `AutoregressiveRewardModel.sequence_rewards` computes it.

    Saved checkpoints are what tools already read (the causal LM's safetensors, or only the adapter with
    `peft_config`), plus `genarm_config.json` and a model card; `AutoregressiveRewardModel.from_pretrained`
    loads them, and `push_to_hub` shares them. Saves (the final one, each `checkpoint-*` folder's model, and the
    copy into `output_dir` that `args.push_to_hub` uploads at each checkpoint) go through the same rule as
    `AutoregressiveRewardModel.save_pretrained`: the folder ends up holding exactly one model (an earlier
    hf-genarm save's adapter, full weights or shards are removed), and model files hf-genarm did not write are
    refused before training starts unless `args.overwrite_output_dir`.

    Args:
        model (`str`, `PreTrainedModel`, `peft.PeftModel` or `AutoregressiveRewardModel`):
            The reward model to train: a Hub id or folder (a causal LM or an adapter, loaded with
            `args.model_init_kwargs`), a causal LM, a PEFT model (to keep training its adapter) or an
            `AutoregressiveRewardModel`.
        args (`ARMConfig`, *optional*):
            Training configuration; defaults to `ARMConfig(output_dir="<model name>-ARM")`.
        data_collator (`Callable`, *optional*):
            Batches tokenized rows; defaults to `PreferenceCollator`.
        train_dataset (`datasets.Dataset`, `str` or `list[dict]`, *optional*):
            Preference pairs in a TRL format: explicit `prompt`/`chosen`/`rejected`, implicit `chosen`/`rejected`
            (the prompt is their longest common prefix), or conversational (lists of messages, rendered with the
            tokenizer's chat template). A `datasets.Dataset`, a path to a JSON Lines file or a list of dicts.
            Unusable rows are skipped, counted and logged (see `data_reports`). Without it the trainer can only
            `evaluate()`, as `transformers.Trainer` (e.g. to score a released reward model on a test set).
        eval_dataset (same types, or a `dict` of them, *optional*):
            Held-out pairs for `evaluate()`.
        processing_class (`PreTrainedTokenizerBase`, *optional*):
            The tokenizer; loaded from `model`'s name if omitted. Without a pad token it pads with EOS. A reward
            model that records a tokenizer (a saved ARM) is refused with another one; to retrain on another
            tokenizer on purpose, pass the plain causal LM (`AutoModelForCausalLM.from_pretrained(folder)`).
        compute_metrics (`Callable[[EvalPrediction], dict]`, *optional*):
            Receives, per pair, the rewards `[chosen, rejected]`; defaults to
            `hf_genarm.metrics.compute_preference_metrics`.
        callbacks (`list[TrainerCallback]`, *optional*): Extra `Trainer` callbacks.
        optimizers (`tuple`, *optional*): `(optimizer, scheduler)`, as for `Trainer`.
        peft_config (`peft.PeftConfig`, *optional*):
            Train a PEFT adapter (e.g. `peft.LoraConfig`) instead of the full model; saved runs then hold only the
            adapter weights and the sidecar. `args.output_dir` must not be the folder of the base model the adapter
            goes on (the save would remove it): refused before training.

    Examples:

    ```python
    >>> import tempfile
    >>> from hf_genarm import ARMConfig, ARMTrainer
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> pairs = [{"prompt": "Question: hi? Answer:", "chosen": " hello, nice day", "rejected": " go away"}] * 4
    >>> args = ARMConfig(
    ...     output_dir=tempfile.mkdtemp(), max_steps=2, per_device_train_batch_size=2, use_cpu=True,
    ...     save_strategy="no", report_to=[],
    ... )
    >>> trainer = ARMTrainer(
    ...     make_tiny_causal_lm(), args=args, train_dataset=pairs, processing_class=make_tiny_tokenizer()
    ... )
    >>> result = trainer.train()  # doctest: +ELLIPSIS
    {'train_runtime': ..., 'train_loss': ..., 'rewards/chosen': ..., 'rewards/accuracies': ..., 'logps/chosen': ...}
    >>> result.global_step
    2
    >>> trainer.reward_model.beta_r
    0.1
    ```
    """

    loss_is_scaled_for_ga = False
    _tag_names = ("genarm", "hf-genarm", "reward-model")

    def __init__(
        self,
        model: str | os.PathLike | PreTrainedModel | AutoregressiveRewardModel | torch.nn.Module,
        args: ARMConfig | None = None,
        data_collator: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config: Any = None,
    ) -> None:
        if args is None:
            name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
            args = ARMConfig(output_dir=f"{Path(name).name}-ARM")
        elif not isinstance(args, ARMConfig):
            raise TypeError(
                f"`args` must be an ARMConfig, got {type(args).__name__}; build it with `ARMConfig(output_dir=..., "
                "beta_r=..., ...)` (it accepts every TrainingArguments field)."
            )
        if train_dataset is not None:
            # Before loading the model and tokenizing: a run must not end with a save that is refused. A folder
            # given as `model` with `peft_config` is the new adapter's base (checked again once the model is loaded).
            is_base_folder = peft_config is not None and isinstance(model, (str, os.PathLike)) and os.path.isdir(model)
            _check_output_folders(args, (os.path.abspath(model),) if is_base_folder else ())
        # PEFT initialises adapters randomly: seed first so that runs are reproducible.
        set_seed(args.seed)
        reward_model = self._load_reward_model(model, args)
        model = reward_model.model
        given_tokenizer = processing_class is not None
        processing_class = self._resolve_tokenizer(processing_class, model)
        # A recorded fingerprint is never replaced: the tokenizer must be the one the reward model was saved with.
        checked_tokenizer_fingerprint(
            processing_class,
            reward_model.metadata.tokenizer,
            "`processing_class`" if given_tokenizer else f"The tokenizer of {model.config._name_or_path}",
            "the reward model",
        )
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        if len(processing_class) > model_vocab_size(model):
            raise ValueError(
                f"The tokenizer has {len(processing_class)} tokens but the model's embeddings only "
                f"{model_vocab_size(model)} rows; call `model.resize_token_embeddings(len(tokenizer))` first."
            )
        if peft_config is not None:
            model = reward_model.model = self._apply_peft(model, peft_config, args)
        if train_dataset is not None:
            _check_output_folders(args, adapter_base_folders(model))
        if args.disable_dropout:
            disable_dropout(model)

        # What data preparation kept, skipped (by reason) and truncated, per dataset name.
        self.data_reports: dict[str, PreferenceDataReport] = {}
        dataset_names = [name for name in (_dataset_name(train_dataset),) if name]
        if train_dataset is not None:
            train_dataset = self._prepare(train_dataset, processing_class, args, "train_dataset")
        if eval_dataset is not None:
            eval_dataset = self._prepare_eval(eval_dataset, processing_class, args, "eval_dataset")
        if data_collator is None:
            data_collator = PreferenceCollator(pad_token_id=processing_class.pad_token_id)
        if compute_metrics is None:
            compute_metrics = compute_preference_metrics

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        # The model being trained, wrapped once; its metadata is refreshed from `args` (beta_r), the tokenizer and
        # the latest evaluation whenever it is read or saved.
        recorded = reward_model.metadata.datasets
        new_names = [name for name in dataset_names if name not in recorded]
        reward_model.metadata = replace(reward_model.metadata, datasets=[*recorded, *new_names], metrics={})
        self._reward_model = reward_model
        self._statistics = {"train": _PairStatistics(), "eval": _PairStatistics()}
        self._eval_prefix = "eval"
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(list(self._tag_names))

    # ------------------------------------------------------------------------------------------------ setup
    @staticmethod
    def _load_reward_model(model: Any, args: ARMConfig) -> AutoregressiveRewardModel:
        """Load or wrap `model` once; `AutoregressiveRewardModel` checks that it is a causal LM."""
        if isinstance(model, (str, os.PathLike)):
            init_kwargs = dict(args.model_init_kwargs or {})
            refuse_remote_code(init_kwargs, "`model_init_kwargs`")
            init_kwargs.setdefault("dtype", torch.float32)
            return AutoregressiveRewardModel.from_pretrained(
                os.fspath(model), beta_r=args.beta_r, is_trainable=True, **init_kwargs
            )
        if args.model_init_kwargs:
            logger.warning("`model_init_kwargs` is ignored because `model` is already instantiated.")
        if not isinstance(model, AutoregressiveRewardModel):
            return AutoregressiveRewardModel(model, beta_r=args.beta_r)
        if model.beta_r != args.beta_r:
            logger.warning(
                f"The reward model was saved with beta_r={model.beta_r}; training with `args.beta_r`="
                f"{args.beta_r}, which the saved model will carry."
            )
        return model

    @staticmethod
    def _resolve_tokenizer(processing_class: Any, model: torch.nn.Module) -> PreTrainedTokenizerBase:
        if processing_class is None:
            name = getattr(model.config, "_name_or_path", None)
            if not name:
                raise ValueError(
                    "`processing_class` is required when the model was not loaded from a name or folder; pass the "
                    "tokenizer, e.g. `AutoTokenizer.from_pretrained(...)`."
                )
            processing_class = load_folder_tokenizer(name)
        if not isinstance(processing_class, PreTrainedTokenizerBase):
            raise TypeError(
                "`processing_class` must be a tokenizer (PreTrainedTokenizerBase), got "
                f"{type(processing_class).__name__}."
            )
        if processing_class.eos_token is None:
            raise ValueError("The tokenizer has no EOS token; set `tokenizer.eos_token` (responses end with it).")
        return processing_class

    @staticmethod
    def _apply_peft(model: torch.nn.Module, peft_config: Any, args: ARMConfig) -> torch.nn.Module:
        from peft import PeftConfig, get_peft_model

        if not isinstance(peft_config, PeftConfig):
            raise TypeError(
                f"`peft_config` must be a peft.PeftConfig (e.g. LoraConfig), got {type(peft_config).__name__}."
            )
        if hasattr(model, "peft_config"):
            raise ValueError(
                "`model` already carries a PEFT adapter and `peft_config` asks for another one; merge the existing "
                "adapter first (`AutoregressiveRewardModel.merge_adapter()`), or drop `peft_config` to keep "
                "training it."
            )
        model = get_peft_model(model, peft_config)
        if args.gradient_checkpointing:
            model.enable_input_require_grads()
        return model

    def _prepare(self, data: Any, tokenizer: PreTrainedTokenizerBase, args: ARMConfig, name: str) -> Dataset:
        dataset, report = prepare_preference_dataset(
            data,
            tokenizer,
            max_length=args.max_length,
            max_prompt_length=args.max_prompt_length,
            truncation_mode=args.truncation_mode,
            num_proc=args.dataset_num_proc,
            name=name,
        )
        self.data_reports[name] = report
        return dataset

    def _prepare_eval(self, data: Any, tokenizer: PreTrainedTokenizerBase, args: ARMConfig, name: str) -> Any:
        """`_prepare` for evaluation data, which may also be a `dict` of named datasets."""
        if isinstance(data, dict):
            return {key: self._prepare(value, tokenizer, args, f"eval_dataset[{key!r}]") for key, value in data.items()}
        return self._prepare(data, tokenizer, args, name)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = list(TOKENIZED_COLUMNS)

    # ------------------------------------------------------------------------------------------------ loss
    def _pair_log_probs(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed response log-probs of the chosen and rejected halves of a `PreferenceCollator` batch."""
        _, summed = response_log_probs(
            model, inputs["input_ids"], inputs["attention_mask"], response_mask=inputs["completion_mask"]
        )
        chosen_log_probs, rejected_log_probs = summed.chunk(2)
        return chosen_log_probs, rejected_log_probs

    def _pair_loss_weights(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weight of each pair's loss in the batch mean: 1 here; a subclass may weigh pairs (PARM's preferences)."""
        return torch.ones(())

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pairwise GenARM loss of a batch; also records the logged reward statistics.

        Args:
            model (`torch.nn.Module`): The (possibly wrapped) causal LM.
            inputs (`dict`): A `PreferenceCollator` batch: chosen rows, then rejected rows.
            return_outputs (`bool`, *optional*, defaults to `False`): Also return the per-pair rewards.
            num_items_in_batch: Unused; the loss is a mean over pairs (`Trainer` divides it for gradient
                accumulation).

        Returns:
            The scalar loss, or `(loss, {"chosen_rewards": ..., "rejected_rewards": ...})`.
        """
        chosen_log_probs, rejected_log_probs = self._pair_log_probs(model, inputs)
        beta_r = self.args.beta_r  # the one source of beta_r; the saved metadata reads it too
        pair_losses = -functional.logsigmoid(beta_r * (chosen_log_probs - rejected_log_probs))
        loss = (pair_losses * self._pair_loss_weights(inputs).to(pair_losses)).mean()
        chosen_rewards = beta_r * chosen_log_probs.detach()
        rejected_rewards = beta_r * rejected_log_probs.detach()
        statistics = torch.stack(
            [
                chosen_rewards,
                rejected_rewards,
                (chosen_rewards > rejected_rewards).float(),
                chosen_rewards - rejected_rewards,
                chosen_log_probs.detach(),
                rejected_log_probs.detach(),
            ],
            dim=1,
        )
        mode = "train" if model.training else "eval"
        self._statistics[mode].add(self.accelerator.gather_for_metrics(statistics))
        if return_outputs:
            return loss, {"chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}
        return loss

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Evaluation step: the loss and, per pair, the rewards `[chosen, rejected]` as predictions."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, rewards = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach()
        if prediction_loss_only:
            return loss, None, None
        predictions = torch.stack([rewards["chosen_rewards"], rewards["rejected_rewards"]], dim=1)
        labels = torch.zeros(predictions.shape[0], dtype=torch.long, device=predictions.device)
        return loss, predictions, labels

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """`Trainer.evaluate`, also accepting raw preference data (tokenized like `eval_dataset`)."""
        if eval_dataset is not None and not isinstance(eval_dataset, str):
            eval_dataset = self._prepare_eval(eval_dataset, self.processing_class, self.args, metric_key_prefix)
        self._eval_prefix = metric_key_prefix
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged reward statistics since the last log (`eval_`-prefixed in evaluation) and log."""
        mode = "train" if self.model.training else "eval"
        averaged = self._statistics[mode].pop_means()
        if mode == "eval":
            averaged = {f"{self._eval_prefix}_{name}": value for name, value in averaged.items()}
        logs.update(averaged)
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------ saving
    def _latest_eval_metrics(self) -> dict[str, float]:
        for entry in reversed(self.state.log_history):
            metrics = {
                name: float(value)
                for name, value in entry.items()
                if name.startswith("eval_")
                and not name.endswith(_TIMING_SUFFIXES)
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            }
            if metrics:
                return metrics
        return {}

    def _reward_metadata(self, datasets: list[str] | None = None) -> RewardModelMetadata:
        """The metadata to save now: `beta_r` from `args` (as the loss reads it), tokenizer, latest evaluation."""
        metadata = replace(
            self._reward_model.metadata,
            beta_r=self.args.beta_r,
            tokenizer=tokenizer_fingerprint(self.processing_class),
            metrics=self._latest_eval_metrics(),
            library_version=__version__,
        )
        if datasets is not None:
            metadata.datasets = list(datasets)
        return metadata

    @property
    def reward_model(self) -> AutoregressiveRewardModel:
        """The model being trained as an `AutoregressiveRewardModel` (the same weights), with current metadata."""
        self._reward_model.metadata = self._reward_metadata()
        return self._reward_model

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
    ) -> Any:
        """`Trainer.train`, after refusing an output folder that the run's saves could not write into.

        `args.output_dir` (and its `checkpoint-*` folders, when checkpoints are saved) must not hold model files
        hf-genarm did not write, unless `args.overwrite_output_dir`, nor be the folder of the base model of the
        adapter being trained; and `resume_from_checkpoint` must hold the kind of model this run trains (an adapter
        or a full model). Errors name the folder before the first step.
        """
        _check_output_folders(self.args, adapter_base_folders(self._reward_model.model))
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
        if isinstance(checkpoint, (str, os.PathLike)) and os.path.isdir(checkpoint):
            _check_checkpoint_kind(os.fspath(checkpoint), self._reward_model.is_peft_model)
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval
        )

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        from .model_card import write_model_card

        output_dir = os.fspath(output_dir if output_dir is not None else self.args.output_dir)
        if not self.args.should_save:
            # Writes nothing here; only joins the gathers of a model that transformers sharded at load time.
            super()._save(output_dir, state_dict=state_dict)
            return
        trained = self._reward_model.model
        is_adapter = self._reward_model.is_peft_model
        if is_adapter and not trained.peft_config[trained.active_adapter].base_model_name_or_path:
            logger.warning_once(
                "The base model was built from a config, so the saved adapter cannot name it; load the adapter with "
                "`AutoregressiveRewardModel.from_pretrained(folder, base_model=...)`, or save the base model first "
                "and train from its folder."
            )
        metadata = self._reward_metadata()
        # An adapter records the base it was trained on, checked when it loads again.
        metadata.base_model_fingerprint = base_model_fingerprint(trained) if is_adapter else None
        save_model_and_tokenizer = super()._save

        def write(staging: str) -> None:
            save_model_and_tokenizer(staging, state_dict=state_dict)
            metadata.to_json_file(os.path.join(staging, GENARM_CONFIG_NAME))
            write_model_card(
                staging,
                metadata,
                kept_from=output_dir,
                model_name=self._model_name(),
                repo_id=self._card_repo_id(output_dir),
                is_adapter=is_adapter,
            )

        write_folder_atomically(
            output_dir,
            write,
            is_adapter=is_adapter,
            overwrite=self.args.overwrite_output_dir,
            overwrite_option=_OVERWRITE_OPTION,
            base_model_folders=adapter_base_folders(trained),
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """`Trainer`'s push of a checkpoint (`push_to_hub=True`), with `output_dir` first holding its reward model.

        `Trainer` copies the checkpoint's model files into `output_dir` and uploads that folder; copied alone, they
        would sit beside an earlier run's model of the other kind and its `genarm_config.json`. The checkpoint's
        reward model (weights, metadata, card, tokenizer) is put there first, by the rule of every save.
        """
        # The conditions under which `Trainer` copies into `output_dir`: never while an earlier upload reads it.
        pushes_now = (
            self.is_world_process_zero()
            and self.args.hub_strategy != HubStrategy.END
            and (self.args.hub_always_push or self.push_in_progress is None or self.push_in_progress.is_done())
        )
        if pushes_now:
            from .model_card import MODEL_CARD_NAME, read_user_model_card

            output_dir = self.args.output_dir
            keep_card = os.path.isdir(output_dir) and read_user_model_card(output_dir) is not None
            skipped = {TRAINER_STATE_NAME, MODEL_CARD_NAME} if keep_card else {TRAINER_STATE_NAME}

            def copy_reward_model(staging: str) -> None:
                for name in files_to_upload(checkpoint_folder):
                    if name not in skipped:
                        shutil.copy2(os.path.join(checkpoint_folder, name), os.path.join(staging, name))

            write_folder_atomically(
                output_dir,
                copy_reward_model,
                is_adapter=self._reward_model.is_peft_model,
                overwrite=self.args.overwrite_output_dir,
                overwrite_option=_OVERWRITE_OPTION,
                base_model_folders=adapter_base_folders(self._reward_model.model),
            )
        super()._push_from_checkpoint(checkpoint_folder)

    def _card_repo_id(self, output_dir: str) -> str:
        """Where the card's usage snippet loads the model from: the Hub repository if there is one, else the folder."""
        return self.hub_model_id or self.args.hub_model_id or output_dir

    def _model_name(self) -> str:
        if self.args.hub_model_id:
            return self.args.hub_model_id.split("/")[-1]
        return Path(self.args.output_dir).absolute().name

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset: str | list[str] | None = None,
        overwrite_model_card: bool = False,
        **unused: Any,
    ) -> None:
        """Write the GenARM model card (see `hf_genarm.model_card.create_model_card`) to `args.output_dir/README.md`.

        A `README.md` there that hf-genarm did not write is kept unless `overwrite_model_card=True`.

        Args:
            model_name (`str`, *optional*): Card title; defaults to the hub model id or the output folder name.
            dataset (`str` or `list[str]`, *optional*): Training data names, replacing the recorded ones.
            overwrite_model_card (`bool`, *optional*, defaults to `False`): Replace a card hf-genarm did not write.
            unused: `Trainer.create_model_card` arguments without a place in the GenARM card (e.g. `language`).
        """
        from .model_card import write_model_card

        if not self.is_world_process_zero():
            return
        datasets = [dataset] if isinstance(dataset, str) else dataset
        os.makedirs(self.args.output_dir, exist_ok=True)
        write_model_card(
            self.args.output_dir,
            self._reward_metadata(datasets),
            overwrite=overwrite_model_card,
            model_name=model_name or self._model_name(),
            repo_id=self._card_repo_id(self.args.output_dir),
            is_adapter=self._reward_model.is_peft_model,
        )

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Save the model to `args.output_dir` and upload the reward model to the Hub with its model card.

        The model is saved once, by `save_model` (so `Trainer`'s own `_save` and callbacks run), and that folder is
        uploaded as it is with `hf_genarm.hub.push_saved_reward_model`: the weights (or adapter), tokenizer,
        `genarm_config.json` (with the latest evaluation metrics) and the card, in one commit that deletes
        nothing. Checkpoint folders and training state are not uploaded.

        Args:
            commit_message (`str`, *optional*, defaults to `"End of training"`): Commit message.
            blocking (`bool`, *optional*, defaults to `True`): Wait for the upload; otherwise return a `Future`.
            token (`str`, *optional*): Hub token; defaults to `args.hub_token`.
            revision (`str`, *optional*): Branch; defaults to `args.hub_revision` (or `main`).
            private (`bool`, *optional*): Visibility of a new repository; defaults to `args.hub_private_repo`.
            kwargs: `repo_id` (defaults to `args.hub_model_id`, else the output folder's name), `dataset`
                (training data names for the card and sidecar, kept for later saves), `overwrite_model_card`,
                `create_pr`.

        Returns:
            `huggingface_hub.CommitInfo`, or a `Future` of it when `blocking=False`.
        """
        from .hub import push_saved_reward_model

        repo_id = kwargs.pop("repo_id", None) or self.hub_model_id or self.args.hub_model_id or self._model_name()
        dataset = kwargs.pop("dataset", None)
        overwrite_model_card = kwargs.pop("overwrite_model_card", False)
        create_pr = kwargs.pop("create_pr", False)
        kwargs.pop("model_name", None)
        if kwargs:
            raise TypeError(f"push_to_hub() got unexpected keyword arguments {sorted(kwargs)}.")
        if dataset is not None:
            self._reward_model.metadata.datasets = [dataset] if isinstance(dataset, str) else list(dataset)
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self._finish_current_push()
        return push_saved_reward_model(
            self.args.output_dir,
            repo_id,
            revision=revision if revision is not None else self.args.hub_revision,
            token=token if token is not None else self.args.hub_token,
            private=private if private is not None else self.args.hub_private_repo,
            commit_message=commit_message or "End of training",
            create_pr=create_pr,
            overwrite_model_card=overwrite_model_card,
            run_as_future=not blocking,
        )

"""`AutoregressiveRewardModel`: a causal LM whose log-likelihood of a response is its reward.

GenARM (Xu et al., ICLR 2025, https://arxiv.org/abs/2410.08193) parametrises the reward of a response
`y` to a prompt `x` as `r(x, y) = beta_r * sum_t log pi_r(y_t | x, y_<t)`. The reward model is therefore a
plain causal LM; this wrapper adds `beta_r`, reward read-outs and a sidecar JSON with GenARM metadata,
while keeping the checkpoint on disk exactly what `AutoModelForCausalLM` (or PEFT) already loads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Literal

import torch
from huggingface_hub import CommitInfo
from torch.nn import functional
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import logging

from ._base_model_identity import base_model_difference, base_model_fingerprint
from ._hub_transfer import CheckpointSource, push_written_reward_model
from ._saved_folder import ADAPTER_FILES, check_one_model, write_folder_atomically
from ._version import __version__
from .configuration import (
    DEFAULT_BETA_R,
    GENARM_CONFIG_NAME,
    RewardModelMetadata,
    refuse_remote_code,
    validate_beta_r,
)
from .model_card import write_model_card
from .vocab import checked_tokenizer_fingerprint

__all__ = ["AutoregressiveRewardModel", "positions_from_attention_mask", "response_log_probs"]

logger = logging.get_logger(__name__)


def modules_in_training_mode(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The submodules of `model` (itself included) that are in training mode."""
    return [module for module in model.modules() if module.training]


@contextlib.contextmanager
def eval_mode(modules: list[torch.nn.Module]) -> Iterator[None]:
    """Run with `modules` in eval mode (dropout off), then put them back in training mode.

    The one rule for every forward pass that reads rewards (guided decoding, scoring): dropout is off whatever
    mode the model was left in, and the mode is restored afterwards. The training loss does not use it: the
    trainer keeps dropout as configured.

    Args:
        modules (`list[torch.nn.Module]`): Modules now in training mode (see `modules_in_training_mode`).

    Examples:

    ```python
    >>> import torch
    >>> model = torch.nn.Dropout(0.5)
    >>> with eval_mode(modules_in_training_mode(model)):
    ...     model.training
    False
    >>> model.training
    True
    ```
    """
    for module in modules:
        module.training = False
    try:
        yield
    finally:
        for module in modules:
            module.training = True


def positions_from_attention_mask(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Position ids as `generate()` derives them: count of attended tokens so far, 0 on left padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def _scored_tokens(
    input_ids: torch.LongTensor, attention_mask: torch.Tensor, response_mask: torch.Tensor | None
) -> torch.Tensor:
    """Columns whose token is scored: a real token with a real predecessor, inside the response when one is given."""
    scored = attention_mask.bool() & functional.pad(attention_mask[:, :-1].bool(), (1, 0))
    if response_mask is not None:
        if response_mask.shape != input_ids.shape:
            raise ValueError(
                f"`response_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, "
                f"got {tuple(response_mask.shape)}."
            )
        scored &= response_mask.to(scored.device).bool()
    return scored


def response_log_probs(
    model: torch.nn.Module,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    response_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-token and summed log-probabilities of responses under a causal LM, in float32 (or wider).

    The one routine for `log pi(y_t | x, y_<t)` in hf-genarm: rewards, the training loss, the demo, the
    baselines and the benchmarks all call it. Position ids follow the attention mask as `generate()` derives
    them, so left- and right-padded rows score as they would alone. Gradients flow (wrap the call in
    `torch.no_grad()` to score only).

    Args:
        model (`torch.nn.Module`): A causal LM (or PEFT model) called as `model(input_ids=..., attention_mask=...,
            position_ids=..., use_cache=False)` and returning `.logits`.
        input_ids (`torch.LongTensor` of shape `(batch, length)`): Prompt and response tokens, padded either side.
        attention_mask (`torch.Tensor`, *optional*): 1 for real tokens, 0 for padding; defaults to all ones.
        response_mask (`torch.Tensor`, *optional*): 1 on the response tokens to score (EOS included). Without it
            every real token that has a real predecessor is scored.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `per_token` of shape `(batch, length)`, where column `t` holds
        `log pi(token_t | tokens_<t)` and unscored columns (prompt, padding, the first token) hold 0; and
        `summed` of shape `(batch,)`, the sum of each row's scored columns.

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm.testing import make_tiny_causal_lm
    >>> model = make_tiny_causal_lm()
    >>> input_ids = torch.tensor([[5, 6, 7, 8]])
    >>> per_token, summed = response_log_probs(model, input_ids, response_mask=torch.tensor([[0, 0, 1, 1]]))
    >>> per_token.dtype, per_token[0, :2].tolist(), torch.allclose(summed, per_token.sum(-1))
    (torch.float32, [0.0, 0.0], True)
    ```
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = attention_mask.to(input_ids.device)
    scored = _scored_tokens(input_ids, attention_mask, response_mask)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions_from_attention_mask(attention_mask),
        use_cache=False,
    ).logits
    # Targets shifted left and padded at the end instead of slicing the logits (which would copy them), and the
    # log-softmax in float32 at least, as the plain causal-LM loss computes it.
    targets = functional.pad(input_ids[:, 1:].masked_fill(~scored[:, 1:], -100), (0, 1), value=-100)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    predicted = -functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none"
    ).view(targets.shape)
    per_token = functional.pad(predicted[:, :-1], (1, 0)).masked_fill(~scored, 0.0)
    return per_token, per_token.sum(-1)


def adapter_base_folders(model: torch.nn.Module) -> tuple[str, ...]:
    """The local folders of the base model a PEFT model's adapter needs: the one each adapter records and the one
    the adapter was put on (they differ after `from_pretrained(..., base_model=...)`); empty without an adapter."""
    if not hasattr(model, "peft_config"):
        return ()
    names = [adapter_config.base_model_name_or_path for adapter_config in model.peft_config.values()]
    get_base_model = getattr(model, "get_base_model", None)
    if callable(get_base_model):
        names.append(getattr(get_base_model().config, "_name_or_path", None))
    return tuple(dict.fromkeys(os.path.abspath(name) for name in names if name and os.path.isdir(name)))


def _response_mask_from_prompt_length(
    input_ids: torch.LongTensor, prompt_length: int | torch.Tensor | None, response_mask: torch.Tensor | None
) -> torch.Tensor | None:
    if response_mask is not None or prompt_length is None:
        return response_mask
    columns = torch.arange(input_ids.shape[1], device=input_ids.device)
    starts = torch.as_tensor(prompt_length, device=input_ids.device).reshape(-1, 1)
    if starts.shape[0] not in (1, input_ids.shape[0]):
        raise ValueError(
            f"`prompt_length` must be an int or hold one start per row ({input_ids.shape[0]}), got {starts.shape[0]}."
        )
    return (columns.unsqueeze(0) >= starts).expand(input_ids.shape)


class AutoregressiveRewardModel(PreTrainedModel):
    r"""A GenARM autoregressive reward model: a causal LM plus `beta_r`.

    The reward of a response is `beta_r` times the sum of its tokens' log-probabilities under the wrapped
    causal LM, with the prompt and padding masked and EOS counted. The wrapped model may be any Hugging Face
    causal LM or a PEFT model around one. Saving writes the wrapped model's own checkpoint (safetensors, or
    a PEFT adapter) and a small `genarm_config.json`, so `AutoModelForCausalLM.from_pretrained` loads the
    folder without this package and without `trust_remote_code`.

    The wrapper is in the mode of `model` (eval after `from_pretrained`, as in transformers). Scoring
    (`token_rewards`, `sequence_rewards`, `next_token_log_probs`) and guided decoding always run their forward
    passes with dropout off and leave the mode as it was.

    Args:
        model (`PreTrainedModel`):
            The causal LM (or `peft.PeftModel`) whose log-likelihood defines the reward.
        beta_r (`float`, *optional*, defaults to `0.1`):
            Reward scale; the paper trains with `beta_r = 0.1`.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Tokenizer of the model. Its fingerprint goes into the metadata so that mismatched base models can be
            refused at decoding time. A recorded fingerprint (of `model` when it is an `AutoregressiveRewardModel`,
            or in `metadata`) is never replaced: a tokenizer that differs from it is refused. To give the causal LM
            another tokenizer on purpose, wrap the plain causal LM (`reward_model.model`) instead.
        metadata (`RewardModelMetadata`, *optional*):
            Full metadata; `beta_r`, when given, overrides its field.

    Examples:

    ```python
    >>> import torch
    >>> from hf_genarm import AutoregressiveRewardModel
    >>> from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1, tokenizer=tokenizer)
    >>> batch = tokenizer(["Question: hi? Answer: hello"], return_tensors="pt")
    >>> reward_model.sequence_rewards(**batch, prompt_length=4).shape
    torch.Size([1])
    ```
    """

    base_model_prefix = "model"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(
        self,
        model: PreTrainedModel,
        beta_r: float | None = None,
        tokenizer: Any = None,
        metadata: RewardModelMetadata | None = None,
    ) -> None:
        if isinstance(model, AutoregressiveRewardModel):
            metadata = metadata or model.metadata
            model = model.model
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
            raise TypeError(f"`model` must be a transformers causal LM or a PEFT model, got {type(model).__name__}.")
        if model.get_output_embeddings() is None:
            raise ValueError(
                f"`model` ({type(model).__name__}) has no language-model head; pass an *ForCausalLM model, "
                "e.g. loaded with AutoModelForCausalLM."
            )
        super().__init__(model.config)
        self.model = model
        metadata = replace(metadata) if metadata is not None else RewardModelMetadata()
        if beta_r is not None:
            metadata.beta_r = beta_r
        metadata.beta_r = validate_beta_r(metadata.beta_r)
        if tokenizer is not None:
            metadata.tokenizer = checked_tokenizer_fingerprint(
                tokenizer, metadata.tokenizer, "`tokenizer`", "the reward model"
            )
        # A relative folder the model was loaded from (`--model ./base`) would not resolve from another directory:
        # record it absolute. A name given in `metadata` is the caller's and stays as given.
        if metadata.base_model is None:
            metadata.base_model = _resolvable_path(getattr(model.config, "_name_or_path", None) or None)
        for adapter_config in getattr(model, "peft_config", {}).values():
            adapter_config.base_model_name_or_path = _resolvable_path(adapter_config.base_model_name_or_path)
        self.metadata = metadata
        # Only the wrapper's own flag: `PreTrainedModel.__init__` leaves it in training mode whatever the wrapped
        # model's mode, and readers (the processor's dropout warning) look at the wrapper.
        self.training = model.training

    @property
    def beta_r(self) -> float:
        """Reward scale `beta_r`."""
        return self.metadata.beta_r

    @property
    def is_peft_model(self) -> bool:
        """Whether the wrapped model is a PEFT model (its checkpoint is an adapter)."""
        return hasattr(self.model, "peft_config")

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def get_output_embeddings(self) -> torch.nn.Module | None:
        return self.model.get_output_embeddings()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped causal LM; arguments and outputs are its own."""
        return self.model(*args, **kwargs)

    def token_rewards(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        prompt_length: int | torch.Tensor | None = None,
        response_mask: torch.Tensor | None = None,
        **unused: Any,
    ) -> torch.Tensor:
        """Per-token rewards `beta_r * log pi_r(y_t | x, y_<t)`, zero on the prompt and on padding.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length)`): Prompt and response tokens.
            attention_mask (`torch.Tensor`, *optional*): 1 for real tokens, 0 for padding (left or right).
            prompt_length (`int` or `torch.Tensor` of shape `(batch,)`, *optional*):
                Column at which each row's response starts; earlier columns are the prompt. Without it (and
                without `response_mask`) every token that has a real predecessor is scored.
            response_mask (`torch.Tensor`, *optional*): 1 on response tokens; overrides `prompt_length`.

        Returns:
            `torch.Tensor` of shape `(batch, length)`, float32: the reward of each token (column `t` scores token
            `t` given tokens `< t`).
        """
        response_mask = _response_mask_from_prompt_length(input_ids, prompt_length, response_mask)
        with eval_mode(modules_in_training_mode(self)):
            per_token, _ = response_log_probs(self.model, input_ids, attention_mask, response_mask)
        return self.beta_r * per_token

    def sequence_rewards(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        prompt_length: int | torch.Tensor | None = None,
        response_mask: torch.Tensor | None = None,
        normalize: Literal["sum", "mean"] = "sum",
        **unused: Any,
    ) -> torch.Tensor:
        """Response rewards `r(x, y) = beta_r * sum_t log pi_r(y_t | x, y_<t)`.

        Every token's log-probability is negative, so the paper's summed reward is lower for longer responses:
        comparing responses of different lengths by it favours short ones. `normalize="mean"` divides each
        row's reward by its number of scored tokens (a length-normalised score, for ranking responses of
        different lengths); guided decoding and training always use the sum, which is what the ARM learns.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length)`): Prompt and response tokens.
            attention_mask (`torch.Tensor`, *optional*): 1 for real tokens, 0 for padding (left or right).
            prompt_length (`int` or `torch.Tensor` of shape `(batch,)`, *optional*): Column at which each row's
                response starts, as in `token_rewards`.
            response_mask (`torch.Tensor`, *optional*): 1 on response tokens; overrides `prompt_length`.
            normalize (`str`, *optional*, defaults to `"sum"`): `"sum"` (the paper's reward) or `"mean"` (per
                scored token; a row without scored tokens gets 0).

        Returns:
            `torch.Tensor` of shape `(batch,)`, float32.
        """
        if normalize not in ("sum", "mean"):
            raise ValueError(f"`normalize` must be 'sum' (the paper's reward) or 'mean', got {normalize!r}.")
        response_mask = _response_mask_from_prompt_length(input_ids, prompt_length, response_mask)
        with eval_mode(modules_in_training_mode(self)):
            _, summed = response_log_probs(self.model, input_ids, attention_mask, response_mask)
        rewards = self.beta_r * summed
        if normalize == "mean":
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            scored = _scored_tokens(input_ids, attention_mask.to(input_ids.device), response_mask)
            rewards = rewards / scored.sum(-1).clamp_min(1)
        return rewards

    @torch.no_grad()
    def next_token_log_probs(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Log-probabilities of the next token after each (left-padded) row, in float32.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length)`): Left-padded prefixes.
            attention_mask (`torch.Tensor`, *optional*): 1 for real tokens, 0 for padding.

        Returns:
            `torch.Tensor` of shape `(batch, vocab)`: `log_softmax` of the last position's logits.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        with eval_mode(modules_in_training_mode(self)):
            outputs = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions_from_attention_mask(attention_mask),
                use_cache=False,
            )
        return torch.log_softmax(outputs.logits[:, -1].float(), dim=-1)

    def merge_adapter(self) -> AutoregressiveRewardModel:
        """Merge a LoRA adapter into the backbone and return a reward model around the plain causal LM."""
        if not self.is_peft_model:
            raise ValueError("This reward model has no PEFT adapter to merge.")
        return AutoregressiveRewardModel(self.model.merge_and_unload(), metadata=self.metadata)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        tokenizer: Any = None,
        *,
        overwrite_model_card: bool = False,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> None:
        """Save the wrapped model's checkpoint (safetensors), `genarm_config.json`, a model card and the tokenizer.

        The folder stays loadable by `AutoModelForCausalLM.from_pretrained` (or PEFT for an adapter) and holds
        exactly one model afterwards: model files of an earlier hf-genarm save that this one does not rewrite (an
        adapter when saving a full model and vice versa, stale shards or shard index) are removed. Model files
        hf-genarm did not write (no `genarm_config.json` beside them, or weights in another format) are refused
        unless `overwrite=True`. An adapter is never saved into the folder holding its own base model (that would
        remove the weights it needs). Other files, and a `README.md` hf-genarm did not write, are kept as they were.

        Args:
            save_directory (`str` or `os.PathLike`): Folder to write into (created if missing).
            tokenizer (`PreTrainedTokenizerBase`, *optional*): Saved beside the model. Its fingerprint is recorded
                when the model records none; a tokenizer that differs from the recorded one is refused.
            overwrite_model_card (`bool`, *optional*, defaults to `False`): Replace a `README.md` that hf-genarm
                did not write with the generated card.
            overwrite (`bool`, *optional*, defaults to `False`): Replace model files in the folder that hf-genarm
                did not write.
            kwargs: Passed to the wrapped model's `save_pretrained` (e.g. `max_shard_size`). `push_to_hub=True`
                (with `repo_id`, `token`, `private`, `revision`, `commit_message`, `create_pr`) then uploads the
                reward model with `push_to_hub`.
        """
        push_to_hub = kwargs.pop("push_to_hub", False)
        hub_kwargs = {
            name: kwargs.pop(name)
            for name in ("token", "private", "revision", "commit_message", "create_pr")
            if name in kwargs
        }
        folder = os.fspath(save_directory)
        repo_id = kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(folder))
        kwargs.pop("safe_serialization", None)
        if os.path.isfile(folder):
            raise ValueError(f"`save_directory` ({folder}) is a file; pass a folder.")
        if not kwargs.get("is_main_process", True):
            return
        if tokenizer is not None:
            self.metadata.tokenizer = checked_tokenizer_fingerprint(
                tokenizer, self.metadata.tokenizer, "`tokenizer`", "this reward model"
            )
        self.metadata.library_version = __version__
        # An adapter records the base it is on now, checked when it loads again; a full model needs no base.
        self.metadata.base_model_fingerprint = base_model_fingerprint(self.model) if self.is_peft_model else None

        def write(staging: str) -> None:
            self.model.save_pretrained(staging, **kwargs)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
            self.metadata.to_json_file(os.path.join(staging, GENARM_CONFIG_NAME))
            write_model_card(
                staging, self.metadata, kept_from=folder, overwrite=overwrite_model_card, is_adapter=self.is_peft_model
            )

        write_folder_atomically(
            folder,
            write,
            is_adapter=self.is_peft_model,
            overwrite=overwrite,
            base_model_folders=adapter_base_folders(self.model),
            writes_tokenizer=tokenizer is not None,
            recorded_tokenizer=self.metadata.tokenizer,
        )
        if push_to_hub:
            self.push_to_hub(repo_id, tokenizer=tokenizer, overwrite_model_card=overwrite_model_card, **hub_kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        tokenizer: Any = None,
        revision: str | None = None,
        token: str | bool | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        create_pr: bool = False,
        overwrite_model_card: bool = False,
        max_shard_size: int | str = "5GB",
        run_as_future: bool = False,
    ) -> CommitInfo | Future[CommitInfo]:
        """Upload the reward model, its tokenizer, `genarm_config.json` and a model card to the Hub in one commit.

        The model is saved into a temporary folder exactly as `save_pretrained` writes it and uploaded with
        `HfApi.upload_folder`: nothing else in the repository is deleted or touched, and an existing `README.md`
        that hf-genarm did not generate is kept unless `overwrite_model_card=True`. Without network access this
        raises the Hub client's own errors (e.g. `huggingface_hub.errors.OfflineModeIsEnabled` when
        `HF_HUB_OFFLINE=1`). The saved folder goes up with `hf_genarm.hub.push_saved_reward_model`, whose Hub
        options this method takes and documents there: `revision`, `token`, `private`, `commit_message`,
        `commit_description`, `create_pr`, `overwrite_model_card` and `run_as_future`.

        Args:
            repo_id (`str`): `"namespace/name"` (or `"name"` for your own namespace); created if missing.
            tokenizer (`PreTrainedTokenizerBase`, *optional*): Uploaded beside the model (refused when it differs
                from the tokenizer the model records, as in `save_pretrained`).
            max_shard_size (`int` or `str`, *optional*, defaults to `"5GB"`): Largest safetensors shard.

        Returns:
            `huggingface_hub.CommitInfo` (a `str` holding the commit URL, with `.oid` and `.repo_url`), or a
            `Future` of it when `run_as_future=True`.
        """
        return push_written_reward_model(
            lambda folder: self.save_pretrained(folder, tokenizer=tokenizer, max_shard_size=max_shard_size),
            repo_id,
            revision=revision,
            token=token,
            private=private,
            commit_message=commit_message,
            commit_description=commit_description,
            create_pr=create_pr,
            overwrite_model_card=overwrite_model_card,
            run_as_future=run_as_future,
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        beta_r: float | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        is_trainable: bool = False,
        base_model: str | os.PathLike | PreTrainedModel | None = None,
        **model_kwargs: Any,
    ) -> AutoregressiveRewardModel:
        """Load a reward model from a local folder or a Hub repository.

        The folder may hold a full causal-LM checkpoint or a PEFT adapter (not both: such a folder is refused),
        with or without `genarm_config.json` (released GenARM checkpoints are plain causal LMs: pass their
        `beta_r`). An adapter is put on the base model its `adapter_config.json` records, or on `base_model` when
        given. Code from the folder is never run: `trust_remote_code=True` is refused (see
        `hf_genarm.configuration.refuse_remote_code`).

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): Hub repo id or local folder.
            beta_r (`float`, *optional*): Overrides the saved `beta_r`; required in spirit for plain
                checkpoints without metadata, which otherwise get `0.1` with a warning.
            revision (`str`, *optional*): Branch, tag or commit on the Hub.
            token (`str` or `bool`, *optional*): Hub token.
            cache_dir (`str`, *optional*): Hub cache folder.
            is_trainable (`bool`, *optional*, defaults to `False`): For adapters, keep the LoRA weights trainable.
            base_model (`str`, `os.PathLike` or `PreTrainedModel`, *optional*): For adapters, the causal LM (or
                its name or folder) to put the adapter on, instead of the one recorded in `adapter_config.json`;
                needed when the adapter was trained on a model built from a config (which records none) or when
                the recorded folder has moved.
            model_kwargs: Passed to `AutoModelForCausalLM.from_pretrained` (e.g. `dtype`, `device_map`).

        Raises:
            ValueError: For a damaged `genarm_config.json`, a folder holding two models, `trust_remote_code`,
                or an adapter whose base model cannot be found.
            OSError: Naming the repository, when it must come from the Hub while `HF_HUB_OFFLINE` is set.
        """
        refuse_remote_code(model_kwargs, "AutoregressiveRewardModel.from_pretrained()")
        model_kwargs.pop("trust_remote_code", None)
        source = CheckpointSource(os.fspath(pretrained_model_name_or_path), revision, token, cache_dir)
        sidecar = source.file(GENARM_CONFIG_NAME)
        metadata = RewardModelMetadata.from_json_file(sidecar) if sidecar else None
        if metadata is not None and metadata.objectives and cls is AutoregressiveRewardModel:
            # Its LoRA adapter alone, without the preference cores beside it, would be another model.
            raise ValueError(
                f"{source.name} holds a preference-conditioned ARM over {metadata.objectives}: load it with "
                f"`hf_genarm.PreferenceConditionedARM.from_pretrained({source.name!r})`, which adds its preference "
                "cores."
            )
        if metadata is None and beta_r is None:
            logger.warning(
                f"{source.name} has no {GENARM_CONFIG_NAME}; using beta_r={DEFAULT_BETA_R}. Pass `beta_r=` to set it."
            )
        is_adapter = source.file(ADAPTER_FILES[0]) is not None
        check_one_model(source.name, source.model_files(is_adapter))
        if is_adapter:
            from peft import PeftModel

            adapter_config = cls._read_adapter_config(source)
            explicit_base = base_model is not None
            base_name = _base_name(base_model, adapter_config)
            if not isinstance(base_model, torch.nn.Module):
                base_model = _load_adapter_base(source.name, base_model, adapter_config, token, cache_dir, model_kwargs)
            recorded_base = metadata.base_model_fingerprint if metadata is not None else None
            if recorded_base is not None:
                _check_adapter_base(source.name, base_name, base_model, recorded_base, explicit_base)
            try:
                model = PeftModel.from_pretrained(
                    base_model, source.name, is_trainable=is_trainable, config=adapter_config, **source.hub_kwargs
                )
            except RuntimeError as error:
                if "size mismatch" not in str(error):
                    raise
                # Adapters saved before the base record: PEFT's own error names neither folder nor the fix.
                raise ValueError(
                    f"The adapter at {source.name} does not fit its base model {base_name} (its weights have other "
                    f"shapes: the base is not the model the adapter was trained on). {_base_model_fix(source.name)}"
                ) from error
        else:
            model = source.load(AutoModelForCausalLM, **model_kwargs)
        if not is_trainable:
            model.eval()
        return cls(model, beta_r=beta_r, metadata=metadata)

    @classmethod
    def _read_adapter_config(cls, source: CheckpointSource) -> Any:
        """The adapter's `peft.PeftConfig`, read as PEFT reads `adapter_config.json` (a subclass whose adapters PEFT
        alone must not load marks that file and reads it here)."""
        from peft import PeftConfig

        return PeftConfig.from_pretrained(source.name, **source.hub_kwargs)


def _base_model_fix(adapter: str) -> str:
    return (
        f"Pass the base model it was trained on: AutoregressiveRewardModel.from_pretrained({adapter!r}, "
        "base_model=<its folder, Hub id or loaded model>)."
    )


def _base_name(base_model: Any, adapter_config: Any) -> str:
    """How errors name the base model an adapter is being put on."""
    if isinstance(base_model, torch.nn.Module):
        name = getattr(base_model.config, "_name_or_path", "") or type(base_model).__name__
        return f"(the model given as `base_model=`, {name})"
    name = os.fspath(base_model) if base_model is not None else adapter_config.base_model_name_or_path
    return repr(name)


def _check_adapter_base(
    adapter: str, base_name: str, base_model: torch.nn.Module, recorded: dict[str, Any], explicit: bool
) -> None:
    """Refuse (or, for a base the caller chose with `base_model=`, warn about) a base that is not the recorded one.

    A base of other shapes is always refused (PEFT would fail with "size mismatch"); a base with another
    configuration or other weights scores differently without any error, so the recorded base path is refused
    and a base given on purpose gets a warning.
    """
    difference, shapes_differ = base_model_difference(recorded, base_model)
    if difference is None:
        return
    message = f"The base model {base_name} is not the one the adapter at {adapter} was trained on ({difference})"
    if shapes_differ:
        raise ValueError(f"{message}; the adapter cannot load on it. {_base_model_fix(adapter)}")
    if not explicit:
        raise ValueError(
            f"{message}; the adapter would score differently on it. {_base_model_fix(adapter)} To put the adapter "
            "on this base on purpose, pass it as `base_model=` (a warning remains)."
        )
    logger.warning(f"{message}; it will score differently from the trained reward model.")


def _load_adapter_base(
    adapter: str,
    base_model: str | os.PathLike | None,
    adapter_config: Any,
    token: str | bool | None,
    cache_dir: Any,
    model_kwargs: dict[str, Any],
) -> PreTrainedModel:
    """Load the causal LM an adapter goes on: `base_model` when given, else the one the adapter records."""
    how = (
        f"pass `base_model=` with the base causal LM or its folder: "
        f"AutoregressiveRewardModel.from_pretrained({adapter!r}, base_model=...)."
    )
    if base_model is None:
        base_model = adapter_config.base_model_name_or_path
        if not base_model:
            raise ValueError(
                f"The adapter at {adapter} does not record its base model (it was trained on a model built from a "
                f"config); {how}"
            )
        revision = adapter_config.revision
    else:
        revision = None
    name = os.fspath(base_model)
    try:
        source = CheckpointSource(name, revision, token, cache_dir)
    except ValueError:
        raise ValueError(
            f"The base model of the adapter at {adapter}, {name!r}, is neither a folder here nor a Hub repository "
            f"id (a relative path recorded elsewhere, or a folder that moved); {how}"
        ) from None
    try:
        return source.load(AutoModelForCausalLM, **model_kwargs)
    except OSError as error:
        raise OSError(f"Could not load {name!r}, the base model of the adapter at {adapter}: {error}; {how}") from error


def _resolvable_path(name: str | None) -> str | None:
    """An existing relative folder as an absolute path, so that it still resolves from another directory."""
    if name and not os.path.isabs(name) and os.path.isdir(name):
        return os.path.abspath(name)
    return name

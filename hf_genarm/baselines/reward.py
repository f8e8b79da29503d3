"""Sequence-level reward functions from `*ForSequenceClassification` reward models (`num_labels=1`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ..vocab import check_reward_model_tokenizer

__all__ = ["SequenceClassifierReward", "check_classifier_tokenizer"]


def check_classifier_tokenizer(model: torch.nn.Module, tokenizer: Any, argument: str) -> None:
    """Refuse a tokenizer given to read a sequence-classifier reward model that cannot be the model's own.

    The recorded-tokenizer rule of every reward model (`hf_genarm.vocab.check_reward_model_tokenizer`: a tokenizer
    fingerprint the model records always wins), then what a classifier itself tells: a tokenizer with more tokens
    than the model embeds would feed it ids it has no row for.

    Args:
        model (`torch.nn.Module`): The sequence classifier.
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer given for it.
        argument (`str`): How errors name the argument, e.g. "`reward_tokenizer`".

    Raises:
        ValueError: naming the argument and asking for the tokenizer saved with the reward model.

    Examples:

    ```python
    >>> from transformers import GPT2Config, GPT2ForSequenceClassification
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> classifier = GPT2ForSequenceClassification(GPT2Config(vocab_size=300, n_embd=8, n_layer=1, n_head=2))
    >>> check_classifier_tokenizer(classifier, make_tiny_tokenizer(), "`tokenizer`")
    Traceback (most recent call last):
    ...
    ValueError: `tokenizer` has 400 tokens but the reward model embeds 300: it is not the reward model's ...
    ```
    """
    fix = "Pass the tokenizer saved with the reward model (`AutoTokenizer.from_pretrained(reward_model_folder)`)."
    check_reward_model_tokenizer(model, tokenizer, argument, fix=fix)
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and len(tokenizer) > rows:
        raise ValueError(
            f"{argument} has {len(tokenizer)} tokens but the reward model embeds {rows}: it is not the reward "
            f"model's tokenizer, and its ids past {rows - 1} have no row. {fix}"
        )


class SequenceClassifierReward:
    r"""A sequence-level reward function around a classic reward model: a sequence classifier with one label.

    Classic reward models (TRL's `RewardTrainer`, OpenAssistant's, ARGS's) are `*ForSequenceClassification`
    models with `num_labels=1` whose single logit at the pooled position is the reward of the whole text. Calling
    this object scores either texts (tokenized with the reward model's own tokenizer) or token ids that already
    are in the reward model's vocabulary (e.g. a base model's prefixes when both share the tokenizer), in
    batches, without gradients, and returns float32 rewards.

    Ids are re-packed with right padding before the forward pass, so the model pools exactly as it does on the
    right-padded batches it was trained on (decoder classifiers pool at the last token that is not the pad
    token; encoders at the first token), and left-padded prefixes from `generate()` score the same as unpadded
    ones.

    Args:
        model (`PreTrainedModel`):
            A sequence classifier with `config.num_labels == 1`, e.g. `GPT2ForSequenceClassification`, or any
            module returning an output with `.logits` of shape `(batch, 1)`.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The reward model's tokenizer; needed to score texts. Refused when it cannot be the model's own (see
            `check_classifier_tokenizer`).
        batch_size (`int`, *optional*):
            Largest number of sequences per forward pass; all at once when `None`.
        max_length (`int`, *optional*):
            Truncate texts to this many tokens.

    Examples:

    ```python
    >>> from transformers import GPT2Config, GPT2ForSequenceClassification
    >>> from hf_genarm.baselines import SequenceClassifierReward
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> tokenizer = make_tiny_tokenizer()
    >>> config = GPT2Config(
    ...     vocab_size=400, n_embd=32, n_layer=1, n_head=4, num_labels=1, pad_token_id=0, bos_token_id=0, eos_token_id=0
    ... )
    >>> reward_fn = SequenceClassifierReward(GPT2ForSequenceClassification(config).eval(), tokenizer)
    >>> reward_fn(["Life is short.", "The cat sat on the mat."]).shape
    torch.Size([2])
    ```
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        batch_size: int | None = None,
        max_length: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a sequence-classification model, got {type(model).__name__}.")
        num_labels = getattr(getattr(model, "config", None), "num_labels", 1)
        if num_labels != 1:
            raise ValueError(
                f"`model` has num_labels={num_labels}; a reward model outputs one score per sequence. Load it with "
                "`AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)`."
            )
        for name, value in (("batch_size", batch_size), ("max_length", max_length)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive int or None, got {value!r}.")
        if tokenizer is not None:
            check_classifier_tokenizer(model, tokenizer, "`tokenizer`")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, batch_size: int | None = None, **model_kwargs: Any
    ) -> SequenceClassifierReward:
        """Load a sequence-classifier reward model and its tokenizer from a folder or the Hub.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): Folder or Hub repository id.
            batch_size (`int`, *optional*): See the class.
            model_kwargs: Passed to `AutoModelForSequenceClassification.from_pretrained` (e.g. `dtype`).

        Returns:
            `SequenceClassifierReward`: the reward function, model in eval mode.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(pretrained_model_name_or_path, **model_kwargs)
        return cls(model.eval(), tokenizer, batch_size=batch_size)

    @property
    def _pad_token_id(self) -> int | None:
        pad = getattr(getattr(self.model, "config", None), "pad_token_id", None)
        if pad is None and self.tokenizer is not None:
            pad = self.tokenizer.pad_token_id
        return pad

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(
        self, texts_or_ids: Sequence[str] | torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Score a batch.

        Args:
            texts_or_ids (`list[str]` or `torch.LongTensor` of shape `(batch, length)`):
                Texts (tokenized with the reward model's tokenizer) or token ids in its vocabulary.
            attention_mask (`torch.Tensor`, *optional*):
                With ids: 1 for real tokens, 0 for padding (left or right).

        Returns:
            `torch.Tensor` of shape `(batch,)`, float32, on the CPU.
        """
        if isinstance(texts_or_ids, torch.Tensor):
            rows = self._rows_from_ids(texts_or_ids, attention_mask)
        elif isinstance(texts_or_ids, str):
            raise TypeError("Pass a list of texts, not a single string (wrap it: `[text]`).")
        elif isinstance(texts_or_ids, Sequence) and all(isinstance(text, str) for text in texts_or_ids):
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to token ids only; texts are tokenized here.")
            if self.tokenizer is None:
                raise ValueError("Scoring texts needs the reward model's tokenizer; pass `tokenizer=` when building.")
            encoded = self.tokenizer(
                list(texts_or_ids), truncation=self.max_length is not None, max_length=self.max_length
            )
            rows = [list(ids) for ids in encoded["input_ids"]]
        else:
            raise TypeError(
                "`texts_or_ids` must be a list of strings or a 2-D tensor of token ids, got "
                f"{type(texts_or_ids).__name__}."
            )
        if not rows:
            return torch.zeros(0)
        if any(len(row) == 0 for row in rows):
            raise ValueError("Cannot score an empty sequence; every row needs at least one token.")
        pad = self._pad_token_id
        # Without a pad token the classifier cannot find the last token of a padded row: score rows one by one.
        chunk = 1 if pad is None else (self.batch_size or len(rows))
        return torch.cat([self._score_rows(rows[start : start + chunk], pad) for start in range(0, len(rows), chunk)])

    @staticmethod
    def _rows_from_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[list[int]]:
        if input_ids.dim() != 2:
            raise ValueError(f"Token ids must have shape (batch, length), got {tuple(input_ids.shape)}.")
        if attention_mask is None:
            return input_ids.tolist()
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)} but the ids {tuple(input_ids.shape)}."
            )
        keep = attention_mask.bool().cpu()
        return [row[mask].tolist() for row, mask in zip(input_ids.cpu(), keep)]

    def _score_rows(self, rows: list[list[int]], pad: int | None) -> torch.Tensor:
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [pad or 0] * (width - len(row)) for row in rows])
        attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        device = self._device()
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        if logits.dim() != 2 or logits.shape[-1] != 1:
            raise ValueError(f"The reward model returned logits of shape {tuple(logits.shape)}; expected (batch, 1).")
        return logits[:, 0].float().cpu()

"""The prompt's padding as the reward models must see it: checked, or inferred from leading pad ids.

`generate()` hands logits processors the prompt ids but not their attention mask. `GenARMLogitsProcessor`
therefore either takes the mask from the user and checks it against the prompt, or infers it from the
prompt's leading pad ids. One rule covers both, and anything it cannot tell apart is refused:

- Padding is on the left: in a mask, no zero follows a one, and every row holds at least one token.
- Padded columns hold the pad id: where the pad id is known, a mask zero over another token means the mask
  belongs to other prompts.
- A pad id under a mask one, before a row's first other token, is text only where the pad token is also a
  token a text holds. As the tokenizer's BOS only, it opens a row once, and every row alike; as its EOS or
  unknown token (GPT-2's pad is its EOS), it may open any row's text (a document that starts with EOS), at
  most once more. More leading pad ids under mask ones, or (BOS only) a count that differs between rows,
  mean the mask belongs to other (longer) prompts, as when a processor is reused across batches padded to
  one fixed length (`padding="max_length"`, `pad_to_multiple_of`). A pad token of its own never opens text.
- Without a mask, the leading pad ids of each row are its padding, but only when the pad token is a token of
  its own: a pad token that is also the tokenizer's BOS, EOS or unknown token, or a pad id given without its
  tokenizer, may open a row's text, so a row opening with it may be padded or may open with that token. Such
  a row is refused, as `generate()` itself declines to infer a mask when the pad token is the EOS token.
  Also refused: a pad id after a row's text (right padding, or a pad/EOS token inside the prompt), and a row
  of pad ids only (no token, as a mask of zeros is refused).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = [
    "PadTokenRoles",
    "check_left_padded",
    "check_mask_matches_prompt",
    "infer_left_padding_mask",
    "mask_of_unmasked_prompt",
    "pad_token_roles",
]

_PASS_THE_MASK = "pass the prompt's `attention_mask=` to GenARMLogitsProcessor (the one given to generate())"


class PadTokenRoles(NamedTuple):
    """Which tokens of a text the pad id also is: what a mask may count as text, and whether padding can be inferred.

    Attributes:
        bos (`bool`): The pad token is (or may be) the BOS token: it may open each row's text once, every row alike.
        text (`bool`): The pad token is (or may be) the EOS or unknown token: it may open any row's text.
    """

    bos: bool
    text: bool

    @property
    def own_token(self) -> bool:
        """Whether the pad id is padding only, so that a row's leading pad ids are its padding."""
        return not (self.bos or self.text)


# A pad id given without its tokenizer may be any of its special tokens.
UNKNOWN_PAD_ROLES = PadTokenRoles(bos=True, text=True)


def pad_token_roles(tokenizer: Any, pad_token_id: int | None) -> PadTokenRoles:
    """The one rule for what a pad id may also be in a text: the tokenizer's BOS, EOS or unknown token.

    Args:
        tokenizer (`PreTrainedTokenizerBase` or `None`): The prompt's tokenizer; without it, the pad id may be any
            of them.
        pad_token_id (`int` or `None`): The pad id.

    Returns:
        `PadTokenRoles`: the roles of the pad id.

    Examples:

    ```python
    >>> from hf_genarm.testing import make_tiny_tokenizer
    >>> pad_token_roles(make_tiny_tokenizer(), 0)  # GPT-2's way: pad = BOS = EOS
    PadTokenRoles(bos=True, text=True)
    >>> pad_token_roles(make_tiny_tokenizer(), 5).own_token
    True
    ```
    """
    if tokenizer is None:
        return UNKNOWN_PAD_ROLES
    text_ids = {getattr(tokenizer, name, None) for name in ("eos_token_id", "unk_token_id")}
    return PadTokenRoles(
        bos=pad_token_id == getattr(tokenizer, "bos_token_id", None), text=pad_token_id in text_ids - {None}
    )


def check_left_padded(mask: torch.Tensor, name: str) -> None:
    """Refuse a mask with right padding (a zero after a one) or a row without any token.

    Args:
        mask (`torch.Tensor` of shape `(batch, length)`): A prompt attention mask of zeros and ones.
        name (`str`): How the error names the argument, e.g. "`attention_mask`".

    Examples:

    ```python
    >>> import torch
    >>> check_left_padded(torch.tensor([[0, 1, 1], [1, 1, 1]]), "`attention_mask`")
    >>> check_left_padded(torch.tensor([[1, 1, 0]]), "`attention_mask`")
    Traceback (most recent call last):
    ...
    ValueError: `attention_mask` row 0 has padding after its text (right padding) ...
    ```
    """
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name} must hold only zeros (padding) and ones (tokens).")
    mask = mask.bool()
    if ((~mask[:, 1:]) & mask[:, :-1]).any(-1).any():
        row = int(((~mask[:, 1:]) & mask[:, :-1]).any(-1).nonzero()[0])
        raise ValueError(
            f"{name} row {row} has padding after its text (right padding) and the reward models would read a pad "
            "column as the last prompt token. Pad decoder-only prompts on the left: "
            "`tokenizer.padding_side = 'left'`."
        )
    if mask.shape[1] and not mask.any(-1).all():
        row = int((~mask.any(-1)).nonzero()[0])
        raise ValueError(f"{name} row {row} masks every column; each prompt needs at least one token.")


def check_mask_matches_prompt(
    mask: torch.Tensor,
    input_ids: torch.LongTensor,
    pad_token_id: int,
    pad_roles: PadTokenRoles = UNKNOWN_PAD_ROLES,
) -> None:
    """Refuse a (left-padding) mask that does not describe the padding of `input_ids`.

    Args:
        mask (`torch.Tensor` of shape `(batch, length)`): The prompt mask, one row per row of `input_ids`.
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt as `generate()` passes it.
        pad_token_id (`int`): The tokenizer's pad id.
        pad_roles (`PadTokenRoles`, *optional*): What the pad id also is (`pad_token_roles`); by default it may be
            the BOS, EOS or unknown token (a pad id without its tokenizer).

    Examples:

    ```python
    >>> import torch
    >>> ids = torch.tensor([[0, 0, 0, 5], [4, 6, 7, 5]])
    >>> check_mask_matches_prompt(torch.tensor([[0, 0, 0, 1], [1, 1, 1, 1]]), ids, pad_token_id=0)
    >>> check_mask_matches_prompt(torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1]]), ids, pad_token_id=0)
    Traceback (most recent call last):
    ...
    ValueError: `attention_mask` does not describe this prompt: row 0 opens with 3 pad id(s) 0 ...
    ```
    """
    mask = mask.to(input_ids.device).bool()
    is_pad = input_ids == pad_token_id
    foreign = ~mask & ~is_pad
    if foreign.any():
        row, column = (int(index) for index in foreign.nonzero()[0])
        raise ValueError(
            f"`attention_mask` does not describe this prompt: row {row} is masked at column {column}, which holds "
            f"token {int(input_ids[row, column])}, not the pad id {pad_token_id}. The mask belongs to other prompts; "
            "pass the mask of this generate() call (or `reset(attention_mask=...)` before reusing the processor)."
        )
    # Pad ids the mask counts as text, before each row's first other token. A BOS equal to the pad token explains
    # one in every row; an EOS or unknown token equal to it, one more in any row. More (or, BOS only, a count that
    # differs between rows) is padding of a shorter prompt read through the mask of a longer one.
    opening_pads = (is_pad | ~mask).long().cumprod(-1).bool() & mask
    counts = opening_pads.sum(-1)
    allowed = int(pad_roles.bos) + int(pad_roles.text)
    bad_rows = counts > allowed
    if pad_roles.bos and not pad_roles.text:
        bad_rows |= counts != counts[0]
    if bad_rows.any():
        row = int(bad_rows.nonzero()[0])
        if pad_roles.own_token:
            explained = "this tokenizer's pad token is none of its BOS, EOS or unknown tokens, so no text opens with it"
        elif pad_roles.text:
            explained = f"a text opens with at most {allowed} of its BOS, EOS or unknown tokens equal to the pad token"
        else:
            explained = "a BOS token equal to the pad token opens a row once, and every row alike"
        raise ValueError(
            f"`attention_mask` does not describe this prompt: row {row} opens with {int(counts[row])} pad id(s) "
            f"{pad_token_id} where the mask says its text begins (rows open with {counts.tolist()}), but "
            f"{explained}. The mask belongs to other prompts, e.g. a reused processor on a batch padded to the same "
            "length; pass the mask of this generate() call (or `reset(attention_mask=...)` before reusing the "
            "processor)."
        )


def infer_left_padding_mask(
    input_ids: torch.LongTensor,
    pad_token_id: int,
    pad_roles: PadTokenRoles = UNKNOWN_PAD_ROLES,
    mask_argument: str = _PASS_THE_MASK,
) -> torch.LongTensor:
    """The attention mask of a left-padded prompt: zero on each row's leading pad ids, one elsewhere.

    Only a pad token of its own can be told from text this way (see the module docstring).

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt as `generate()` passes it.
        pad_token_id (`int`): The tokenizer's pad id.
        pad_roles (`PadTokenRoles`, *optional*): What the pad id also is (`pad_token_roles`); by default it may be
            the BOS, EOS or unknown token (a pad id without its tokenizer), and a row opening with it is refused.
        mask_argument (`str`, *optional*): What the errors ask for instead (the mask to pass, and where).

    Returns:
        `torch.LongTensor`: the mask, of the shape of `input_ids`.

    Raises:
        ValueError: where the padding cannot be told from the text (see the module docstring).

    Examples:

    ```python
    >>> import torch
    >>> own_pad = PadTokenRoles(bos=False, text=False)
    >>> infer_left_padding_mask(torch.tensor([[0, 0, 5], [4, 6, 5]]), pad_token_id=0, pad_roles=own_pad).tolist()
    [[0, 0, 1], [1, 1, 1]]
    ```
    """
    is_pad = input_ids == pad_token_id
    leading = is_pad.long().cumprod(-1).bool()
    if not pad_roles.own_token and leading[:, 0].any():
        row = int(leading[:, 0].nonzero()[0])
        raise ValueError(
            f"Cannot tell the prompt's padding from its text: row {row} starts with the pad id {pad_token_id}, which "
            "is also (or, given without its tokenizer, may be) the tokenizer's BOS, EOS or unknown token: both "
            "padding and text, so the row may be padded or may open with that token (a document that starts with "
            f"EOS). {mask_argument[0].upper()}{mask_argument[1:]}, or use a tokenizer whose pad token is a token of "
            "its own (`tokenizer=`)."
        )
    inner = is_pad & ~leading
    if inner.any():
        row, column = (int(index) for index in inner.nonzero()[0])
        raise ValueError(
            f"Cannot tell the prompt's padding from its text: row {row} holds the pad id {pad_token_id} at column "
            f"{column}, after its text (right padding, or a pad/EOS token inside the prompt). Pad on the left and "
            f"{mask_argument}."
        )
    mask = (~leading).long()
    # The rule a given mask follows: a row of padding only (no token) is refused the same way.
    check_left_padded(mask, f"The mask inferred from the pad id {pad_token_id}")
    return mask


def mask_of_unmasked_prompt(
    input_ids: torch.LongTensor,
    pad_token_id: int | None,
    name: str,
    mask_argument: str,
    pad_roles: PadTokenRoles = UNKNOWN_PAD_ROLES,
) -> torch.LongTensor:
    """The mask of a prompt given without one: inferred from the pad id, or all ones for a single prompt.

    Every path that takes a prompt without its mask comes here, so padding is inferred by one rule.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt.
        pad_token_id (`int` or `None`): The tokenizer's pad id, if known.
        name (`str`): How the error names the prompt, e.g. "The prompt generate() passes".
        mask_argument (`str`): Where the error asks for the mask, e.g. "`attention_mask=`".
        pad_roles (`PadTokenRoles`, *optional*): See `infer_left_padding_mask`.

    Returns:
        `torch.LongTensor`: the mask, of the shape of `input_ids`.

    Raises:
        ValueError: where the padding cannot be told (several different rows and no pad id, or see
        `infer_left_padding_mask`).

    Examples:

    ```python
    >>> import torch
    >>> mask_of_unmasked_prompt(torch.tensor([[4, 6], [4, 6]]), None, "The prompt", "`attention_mask=`").tolist()
    [[1, 1], [1, 1]]
    ```
    """
    if pad_token_id is not None:
        return infer_left_padding_mask(input_ids, pad_token_id, pad_roles, f"pass {mask_argument}")
    if torch.unique(input_ids, dim=0).shape[0] > 1:
        raise ValueError(
            f"{name} holds several different prompts, and without a pad id their padding cannot be told from their "
            f"text. Pass {mask_argument}, or `tokenizer=` whose pad token is a token of its own (none of its BOS, "
            "EOS or unknown tokens), so that each row's leading pad ids are taken as its padding."
        )
    return torch.ones_like(input_ids)

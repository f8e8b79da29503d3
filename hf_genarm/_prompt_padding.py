"""The prompt's padding as the reward models must see it: checked, or inferred from leading pad ids.

`generate()` hands logits processors the prompt ids but not their attention mask. `GenARMLogitsProcessor`
therefore either takes the mask from the user and checks it against the prompt, or infers it from the
prompt's leading pad ids. One rule covers both, and anything it cannot tell apart is refused:

- Padding is on the left: in a mask, no zero follows a one, and every row holds at least one token.
- Padded columns hold the pad id: where the pad id is known, a mask zero over another token means the mask
  belongs to other prompts.
- The pad id may open the real text of a row only as a BOS token equal to the pad token: once, and in
  every row alike. More leading pad ids under mask ones, or a count that differs between rows, mean the
  mask belongs to other (longer) prompts, as when a processor is reused across batches padded to one
  fixed length (`padding="max_length"`, `pad_to_multiple_of`). Where the tokenizer is known and its BOS
  differs from its pad token, no pad id may open a row's text.
- Without a mask, the leading pad ids of each row are its padding. That is refused where it is ambiguous:
  when the pad id also opens every row and may be a BOS token (a tokenizer whose BOS differs from its pad
  token settles it), or appears after a row's text (right padding, or a pad/EOS token inside the prompt). A
  row of pad ids only holds no token and is refused, as a mask of zeros is.
"""

from __future__ import annotations

import torch

__all__ = ["check_left_padded", "check_mask_matches_prompt", "infer_left_padding_mask", "mask_of_unmasked_prompt"]

_PASS_THE_MASK = "pass the prompt's `attention_mask=` to GenARMLogitsProcessor (the one given to generate())"


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
    mask: torch.Tensor, input_ids: torch.LongTensor, pad_token_id: int, pad_may_open_text: bool = True
) -> None:
    """Refuse a (left-padding) mask that does not describe the padding of `input_ids`.

    Args:
        mask (`torch.Tensor` of shape `(batch, length)`): The prompt mask, one row per row of `input_ids`.
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt as `generate()` passes it.
        pad_token_id (`int`): The tokenizer's pad id.
        pad_may_open_text (`bool`, *optional*, defaults to `True`): Whether the pad id can be a real first token
            (a BOS token equal to the pad token). `False` when the tokenizer's BOS is known to differ.

    Examples:

    ```python
    >>> import torch
    >>> ids = torch.tensor([[0, 0, 5], [4, 6, 5]])
    >>> check_mask_matches_prompt(torch.tensor([[0, 0, 1], [1, 1, 1]]), ids, pad_token_id=0)
    >>> check_mask_matches_prompt(torch.tensor([[1, 1, 1], [1, 1, 1]]), ids, pad_token_id=0)
    Traceback (most recent call last):
    ...
    ValueError: `attention_mask` does not describe this prompt: row 0 opens with 2 pad id(s) 0 ...
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
    # Pad ids the mask counts as text, before each row's first other token. Only a BOS equal to the pad token
    # explains one, and it opens every row; more (or a count that differs between rows) is padding of a shorter
    # prompt read through the mask of a longer one.
    opening_pads = (is_pad | ~mask).long().cumprod(-1).bool() & mask
    counts = opening_pads.sum(-1)
    allowed = 1 if pad_may_open_text else 0
    bad_rows = (counts > allowed) | (counts != counts[0])
    if bad_rows.any():
        row = int(bad_rows.nonzero()[0])
        explained = (
            "a BOS token equal to the pad token opens a row once, and every row alike"
            if pad_may_open_text
            else "this tokenizer's BOS differs from its pad token, so no row's text opens with the pad id"
        )
        raise ValueError(
            f"`attention_mask` does not describe this prompt: row {row} opens with {int(counts[row])} pad id(s) "
            f"{pad_token_id} where the mask says its text begins (rows open with {counts.tolist()}), but "
            f"{explained}. The mask belongs to other prompts, e.g. a reused processor on a batch padded to the same "
            "length; pass the mask of this generate() call (or `reset(attention_mask=...)` before reusing the "
            "processor)."
        )


def infer_left_padding_mask(
    input_ids: torch.LongTensor, pad_token_id: int, pad_may_open_text: bool = True
) -> torch.LongTensor:
    """The attention mask of a left-padded prompt: zero on each row's leading pad ids, one elsewhere.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt as `generate()` passes it.
        pad_token_id (`int`): The tokenizer's pad id.
        pad_may_open_text (`bool`, *optional*, defaults to `True`): Whether the pad id can be a real first token
            (a BOS token equal to the pad token). When it cannot, rows that all open with it are plain padding.

    Returns:
        `torch.LongTensor`: the mask, of the shape of `input_ids`.

    Raises:
        ValueError: where the padding cannot be told from the text (see the module docstring).

    Examples:

    ```python
    >>> import torch
    >>> infer_left_padding_mask(torch.tensor([[0, 0, 5], [4, 6, 5]]), pad_token_id=0).tolist()
    [[0, 0, 1], [1, 1, 1]]
    ```
    """
    is_pad = input_ids == pad_token_id
    leading = is_pad.long().cumprod(-1).bool()
    if pad_may_open_text and leading[:, 0].all():
        raise ValueError(
            f"Cannot tell the prompt's padding from its text: every row starts with the pad id {pad_token_id} (a BOS "
            f"token equal to the pad token looks like padding). Either {_PASS_THE_MASK}, or use a tokenizer whose "
            "pad token differs from the BOS token."
        )
    inner = is_pad & ~leading
    if inner.any():
        row, column = (int(index) for index in inner.nonzero()[0])
        raise ValueError(
            f"Cannot tell the prompt's padding from its text: row {row} holds the pad id {pad_token_id} at column "
            f"{column}, after its text (right padding, or a pad/EOS token inside the prompt). Pad on the left and "
            f"{_PASS_THE_MASK}."
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
    pad_may_open_text: bool = True,
) -> torch.LongTensor:
    """The mask of a prompt given without one: inferred from the pad id, or all ones for a single prompt.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`): The prompt.
        pad_token_id (`int` or `None`): The tokenizer's pad id, if known.
        name (`str`): How the error names the prompt, e.g. "The prompt generate() passes".
        mask_argument (`str`): Where the error asks for the mask, e.g. "`attention_mask=`".
        pad_may_open_text (`bool`, *optional*, defaults to `True`): See `infer_left_padding_mask`.

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
        return infer_left_padding_mask(input_ids, pad_token_id, pad_may_open_text)
    if torch.unique(input_ids, dim=0).shape[0] > 1:
        raise ValueError(
            f"{name} holds several different prompts, and without a pad id their padding cannot be told from their "
            f"text. Pass {mask_argument}, or `tokenizer=` / `pad_token_id=` so that each row's leading pad ids are "
            "taken as its padding."
        )
    return torch.ones_like(input_ids)

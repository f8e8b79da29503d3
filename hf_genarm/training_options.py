"""GenARM's own training options, apart from `transformers.TrainingArguments` (imports nothing heavy).

`ARMConfig` is `TrainingArguments` plus these fields. Keeping them in a dataclass of their own lets
`hf-genarm train --help` list them in a fraction of a second, without importing torch and the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRUNCATION_MODES", "ARMOptions"]

TRUNCATION_MODES = ("keep_end", "keep_start")
"""Which part of an over-long prompt is kept: the tokens nearest the response, or the first ones."""


@dataclass
class ARMOptions:
    """The fields `ARMConfig` adds to `transformers.TrainingArguments`; see `ARMConfig` for their documentation.

    Examples:

    ```python
    >>> from hf_genarm.training_options import ARMOptions
    >>> ARMOptions().beta_r
    0.1
    ```
    """

    # The literal (equal to configuration.DEFAULT_BETA_R, which a test checks) so that the API reference, which
    # reads the source, shows the value rather than a constant's name.
    beta_r: float = field(
        default=0.1,
        metadata={
            "help": "Reward scale: reward = beta_r * sum of response-token log-probs; the loss is "
            "-log sigmoid(beta_r * (sum logp(chosen) - sum logp(rejected))). GenARM's released scripts use 0.05 "
            "on HH-RLHF, 0.5 (helpfulness) and 0.01 (harmlessness) on PKU-SafeRLHF."
        },
    )
    max_length: int | None = field(
        default=1024,
        metadata={
            "help": "Longest prompt + response in tokens; longer responses are cut at the end, rows whose prompt "
            "fills it are skipped. None disables the limit."
        },
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={
            "help": "Longest prompt in tokens; longer prompts are truncated according to `truncation_mode` and "
            "counted. Must be smaller than `max_length`; defaults to half of `max_length` (512 for 1024)."
        },
    )
    truncation_mode: str = field(
        default="keep_end",
        metadata={
            "help": "Part of an over-long prompt to keep: 'keep_end' (nearest the response) or 'keep_start'.",
            "choices": list(TRUNCATION_MODES),
        },
    )
    dataset_num_proc: int | None = field(
        default=None,
        metadata={"help": "Number of processes used to tokenize the datasets."},
    )
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for `AutoModelForCausalLM.from_pretrained` when `model` is a name or path. "
            "`dtype` defaults to float32; `trust_remote_code` is refused."
        },
    )
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Set every dropout probability of the model to 0."},
    )
    # transformers 5 dropped this TrainingArguments field; the name is the one users of transformers 4 know.
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Let saves replace model files in output_dir (and its checkpoint-* folders) that hf-genarm did "
            "not write; without it, training refuses to start over them. Earlier hf-genarm saves are always replaced "
            "so the folder holds one model; other files are kept."
        },
    )

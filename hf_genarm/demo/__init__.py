"""`hf-genarm demo`: GenARM guidance on the embedded fortune-cookie models, offline, in well under a minute.

The demo loads the models that ship with the package (see `hf_genarm/assets/README.md`): a 2.6M-parameter
GPT-2 trained on FreeBSD fortunes, and two autoregressive reward models of a quarter of its size, one
trained to prefer positive sentiment (VADER) and one to prefer text about computers (MiniLM similarity).
For each held-out prompt it samples a continuation from the base alone and under GenARM guidance by each
reward model (and both together), all with the same seed, prints them side by side with the two judges'
scores, then a summary table of mean scores per method.

Every method samples among the base model's `DEMO_BASE_TOP_K` most likely next tokens, which GenARM
reweights by `sum_i (alpha_i / beta) * log pi_r_i`, then applies top-p. The restriction matters for these
tiny reward models: trained on preference pairs alone, they leave much of their probability on byte tokens
that never occur in the fortunes, and the unrestricted product would pick those.

The judges (`hf_genarm.demo.judges`) are the ones whose preferences the reward models were trained on, so the
table shows whether guidance at decoding time moves the outputs the way training asked, and at what cost in
base-model perplexity (how unlikely the base finds the guided text) and repetition (distinct bigrams).

This module holds the demo's settings and imports nothing heavy, so the CLI reads its defaults from here; the
models, torch and the judges load only when `main` runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TextIO

__all__ = ["DEMO_BASE_TOP_K", "DEMO_DEFAULTS", "DEMO_METHODS", "DEMO_TOP_P", "DemoMethod", "DemoOptions", "main"]

DEMO_BASE_TOP_K = 40
"""Every method samples among the base model's 40 most likely next tokens; GenARM reweights those."""
DEMO_TOP_P = 0.9
"""Top-p of the demo's sampling, applied last (after the GenARM combination)."""


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """Options of `hf-genarm demo`.

    Args:
        prompts (`int`, *optional*, defaults to `4`): Number of held-out fortune openings to continue.
        max_new_tokens (`int`, *optional*, defaults to `48`): Tokens generated per prompt and method.
        beta (`float`, *optional*, defaults to `1.0`):
            KL strength; each reward model's weight is `alpha / beta`, so a smaller beta guides harder.
        seed (`int`, *optional*, defaults to `0`): Random seed, shared by every method.

    Examples:

    ```python
    >>> DemoOptions(prompts=2).max_new_tokens
    48
    ```
    """

    prompts: int = dataclasses.field(default=4, metadata={"help": "Number of held-out fortune openings to continue."})
    max_new_tokens: int = dataclasses.field(default=48, metadata={"help": "Tokens generated per prompt and method."})
    beta: float = dataclasses.field(
        default=1.0, metadata={"help": "KL strength: each reward model's weight is alpha / beta."}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "Random seed, shared by every method."})


DEMO_DEFAULTS = DemoOptions()
"""The demo's defaults, shared by `main` and the `hf-genarm demo` command line."""


@dataclasses.dataclass(frozen=True)
class DemoMethod:
    """One decoding method of the demo: the base alone, or GenARM with some reward models.

    Args:
        name (`str`): Row label.
        alphas (`dict[str, float]`): Weight `alpha` of each reward model, by objective (`"sentiment"`,
            `"topic"`); the processor multiplies each reward model's log-probabilities by `alpha / beta`.
            Empty for the base model alone.

    Examples:

    ```python
    >>> DemoMethod("GenARM sentiment", {"sentiment": 1.0}).describe(beta=0.5)
    'sentiment x2'
    ```
    """

    name: str
    alphas: dict[str, float] = dataclasses.field(default_factory=dict)

    def describe(self, beta: float) -> str:
        """The reward-model weights `alpha / beta` as text, `-` for the base alone."""
        if not self.alphas:
            return "-"
        return " + ".join(f"{objective} x{alpha / beta:g}" for objective, alpha in self.alphas.items())


DEMO_METHODS = (
    DemoMethod("base"),
    DemoMethod("GenARM sentiment", {"sentiment": 1.0}),
    DemoMethod("GenARM topic", {"topic": 1.0}),
    DemoMethod("GenARM both", {"sentiment": 1.0, "topic": 1.0}),
)
"""Methods the demo compares, with the `alpha` of each reward model (the weight is `alpha / beta`)."""


def main(args: Any = None, stream: TextIO | None = None) -> int:
    """Run the offline demo: base vs GenARM-guided samples on held-out fortune prompts, judged and summarised.

    Args:
        args (`DemoOptions` or `argparse.Namespace`, *optional*):
            Options of `hf-genarm demo` (the fields of `DemoOptions`); missing or `None` attributes take the values
            of `DEMO_DEFAULTS`.
        stream (`TextIO`, *optional*): Where to print; defaults to `sys.stdout`.

    Returns:
        `int`: the exit status, `0`.

    Examples:

    ```python
    >>> main(DemoOptions(prompts=1, max_new_tokens=4))  # doctest: +ELLIPSIS
    Loading ...
    Summary (...)
    ...
    0
    ```
    """
    from ._runner import run_demo

    given = {field.name: getattr(args, field.name, None) for field in dataclasses.fields(DemoOptions)}
    options = dataclasses.replace(DEMO_DEFAULTS, **{name: value for name, value in given.items() if value is not None})
    return run_demo(options, stream)

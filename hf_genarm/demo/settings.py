"""The demo's settings: its defaults, sampling limits and the methods it compares (imports nothing heavy)."""

from __future__ import annotations

import dataclasses

__all__ = ["DEMO_BASE_TOP_K", "DEMO_DEFAULTS", "DEMO_METHODS", "DEMO_TOP_P", "DemoMethod", "DemoOptions"]

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
        threads (`int`, *optional*, defaults to `1`):
            CPU threads torch uses while the demo runs. The models are tiny: one thread is fastest, and several
            threads on a busy machine made the demo 14 times slower (51 s against 3.7 s).

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
    threads: int = dataclasses.field(
        default=1,
        metadata={"help": "CPU threads for torch; the models are tiny, so more threads rarely help and can be slower."},
    )


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

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

The settings (`hf_genarm.demo.settings`) import nothing heavy, so the CLI reads its defaults from here; the
models, torch and the judges (`hf_genarm.demo.judges`) load only when `main` runs (`hf_genarm.demo._runner`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TextIO

from .settings import DEMO_BASE_TOP_K, DEMO_DEFAULTS, DEMO_METHODS, DEMO_TOP_P, DemoMethod, DemoOptions

__all__ = ["DEMO_BASE_TOP_K", "DEMO_DEFAULTS", "DEMO_METHODS", "DEMO_TOP_P", "DemoMethod", "DemoOptions", "main"]


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

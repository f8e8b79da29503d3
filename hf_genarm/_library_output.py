"""Keep the libraries' loading bars, info logs and deprecation warnings out of a command's output.

`hf-genarm` prints results people quote; transformers' "Loading weights" bars, huggingface_hub's download bars,
datasets' `map` bars and transformers/PEFT `FutureWarning`s around them are noise to a user who did not ask for
them. `quiet_library_output` silences them for one command and gives the caller's settings back afterwards,
because `hf_genarm.cli.main` also runs inside other programs and tests. Settings a user chose through the
libraries' own environment variables (`TRANSFORMERS_VERBOSITY`, `HF_HUB_DISABLE_PROGRESS_BARS=0`,
`HF_DATASETS_DISABLE_PROGRESS_BARS=0`) are left as they are. The `Trainer`'s own progress bar is not touched: it is
the run's progress, drawn with `tqdm` directly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

# Warnings attributed to these packages' own code; GenARM's warnings, and any a user's own code raises, stay.
_QUIETED_WARNING_MODULES = r"(transformers|peft)(\..*)?$"


@contextlib.contextmanager
def quiet_library_output() -> Iterator[None]:
    """Silence transformers/PEFT/Hub/datasets chatter for the duration of the block, then restore it.

    transformers' logging is set to errors only and its progress bars (which also switch huggingface_hub's) are
    turned off; datasets' progress bars too when datasets is already imported (importing it would slow commands
    that never use it); `UserWarning` and `FutureWarning` raised by transformers or PEFT code are ignored.

    Examples:

    ```python
    >>> from transformers.utils import logging
    >>> from hf_genarm._library_output import quiet_library_output
    >>> before = logging.get_verbosity()
    >>> with quiet_library_output():
    ...     logging.is_progress_bar_enabled()
    False
    >>> logging.get_verbosity() == before
    True
    ```
    """
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    transformers_bars = logging.is_progress_bar_enabled()
    hub_bars_disabled = hub_utils.are_progress_bars_disabled()
    # `HF_*_DISABLE_PROGRESS_BARS=0` means the user wants the bars: asking the library to hide them only warns.
    bars_wanted = hub_constants.HF_HUB_DISABLE_PROGRESS_BARS is False
    datasets_utils = _datasets_progress_bar_switch()
    datasets_bars_disabled = datasets_utils.are_progress_bars_disabled() if datasets_utils is not None else None
    with warnings.catch_warnings():
        for category in (UserWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=_QUIETED_WARNING_MODULES)
        if "TRANSFORMERS_VERBOSITY" not in os.environ:
            logging.set_verbosity_error()
        if not bars_wanted:
            logging.disable_progress_bar()
        if datasets_utils is not None:
            datasets_utils.disable_progress_bars()
        try:
            yield
        finally:
            logging.set_verbosity(verbosity)
            if not bars_wanted:
                # transformers' switch also flips huggingface_hub's, so put transformers' back first.
                if transformers_bars:
                    logging.enable_progress_bar()
                if hub_bars_disabled:
                    hub_utils.disable_progress_bars()
                elif not transformers_bars:
                    hub_utils.enable_progress_bars()
            if datasets_utils is not None and not datasets_bars_disabled:
                datasets_utils.enable_progress_bars()


def _datasets_progress_bar_switch() -> ModuleType | None:
    """`datasets.utils` when datasets is imported and lets code switch its bars (no env var forcing them on)."""
    if "datasets" not in sys.modules:
        return None
    from datasets import config as datasets_config
    from datasets import utils as datasets_utils

    if datasets_config.HF_DATASETS_DISABLE_PROGRESS_BARS is False:
        return None
    return datasets_utils

"""Repository-wide pytest set-up: offline Hub, the asset build script importable, and Markdown-fenced doctests.

`scripts/` is not a package (it stays out of the wheel); putting it on `sys.path` lets the tests import
`build_demo_assets` by the same name under which pytest collects the script's doctests.

Docstrings follow the transformers convention of wrapping `>>>` examples in ```python fences. The standard
doctest parser would read the closing fence as expected output, so the example pattern below stops the
expected output at a fence line, as transformers' own doctest parser does.
"""

import doctest
import importlib.util
import os
import pathlib
import re
import sys

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = pathlib.Path(__file__).resolve().parent
SCRIPTS_DIR = ROOT / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

# The vLLM integration subclasses vLLM's classes: its public module and every module that imports vLLM at the top
# are collected (doctests) only where vLLM is installed (.ci/vllm).
VLLM_MODULES = [ROOT / "hf_genarm" / "integrations" / "vllm.py"] + [
    path
    for path in sorted((ROOT / "hf_genarm" / "integrations").glob("*.py"))
    if re.search(r"^(from|import) vllm\b", path.read_text(encoding="utf-8"), re.MULTILINE)
]
collect_ignore = [] if importlib.util.find_spec("vllm") else [str(path) for path in VLLM_MODULES]

# Tiny test models run fastest on one thread, and one thread per process keeps concurrent jobs from
# oversubscribing the cores (torch's thread pool spins while it waits).
torch.set_num_threads(1)

doctest.DocTestParser._EXAMPLE_RE = re.compile(
    r"""
    (?P<source>
        (?:^(?P<indent> [ ]*) >>>    .*)    # first line of the source
        (?:\n           [ ]*  \.\.\. .*)*)  # continuation lines
    \n?
    (?P<want> (?:(?![ ]*$)      # expected output: not a blank line,
                 (?![ ]*>>>)    # not a new example,
                 (?![ ]*```)    # not a closing code fence
                 .+$\n?
              )*)
    """,
    re.MULTILINE | re.VERBOSE,
)


# Markers by place, for tests that cannot carry a decorator (doctests) or that share one requirement (tests/test_vllm).
_MARKED_PATHS = {
    "vllm": [ROOT / "tests" / "test_vllm", *VLLM_MODULES],
    # The asset builder's doctests train tiny models (about 7 s together).
    "slow": [SCRIPTS_DIR / "build_demo_assets.py"],
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, paths in _MARKED_PATHS.items():
            if any(item.path == path or path in item.path.parents for path in paths):
                item.add_marker(marker)

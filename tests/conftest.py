import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from hf_genarm.testing import make_tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def quick_assets(tmp_path_factory):
    """Every asset stage, from scratch, with the quick configs, into one output root: `(root, build results)`."""
    from build_demo_assets import build_stages

    root = tmp_path_factory.mktemp("all-assets")
    return root, build_stages("all", root, quick=True)

"""The example scripts run their offline `--tiny` recipes in-process: train, evaluate, guided decoding."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each example trains and decodes (2 to 6 s each)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    # As `python examples/<name>.py` would, with the examples' folder (and its shared `_recipe.py`) importable.
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["hh_rlhf_llama", "ultrafeedback"])
def test_single_objective_example_runs_tiny(name, tmp_path, capsys):
    results = _load(name).main(["--tiny", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(results) == {"base", "genarm"}
    assert "----- GenARM (alpha=1.0, beta=1.0) -----" in out
    for texts in results.values():
        assert len(texts) == 2
        for text in texts:
            assert text.strip()
            assert text in out
    assert (tmp_path / "genarm_config.json").is_file()
    assert (tmp_path / "adapter_model.safetensors").is_file()
    if name == "ultrafeedback":  # the real-model tutorial's script reports its evaluation before decoding
        assert "Evaluation on 3 pairs: preference accuracy " in out


def test_two_objectives_example_runs_tiny(tmp_path, capsys):
    results = _load("pku_saferlhf_two_objectives").main(["--tiny", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert sorted(results) == [0.0, 0.5, 1.0]
    assert "alpha_helpful=1.00, alpha_harmless=1.00" in out
    for texts in results.values():
        assert len(texts) == 2
        for text in texts:
            assert text.strip()
            assert text in out
    for objective in ("helpful", "harmless"):
        assert (tmp_path / objective / "genarm_config.json").is_file()
    # The slider is the point of the example: each weighting of the two ARMs gives its own greedy text.
    assert len({tuple(texts) for texts in results.values()}) == len(results)

"""The wheel ships the demo assets and the code that loads them, not the code that builds them, and its demo runs."""

import os
import pathlib
import shutil
import sys
import zipfile

import pytest
from process_group import run_killing_group

pytestmark = pytest.mark.slow  # builds and installs a wheel (about 8 s)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    # Build from a copy: an in-tree build would write build/ and egg-info into the working tree.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("hf_genarm", "scripts"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=ignore)
    output = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", str(source)]
    run_killing_group([*command, "-w", str(output)], timeout=600, check=True)
    (wheel_path,) = output.glob("hf_genarm-*.whl")
    return wheel_path


def test_wheel_holds_the_assets_and_their_loading_code_but_no_build_code(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "hf_genarm/assets/__init__.py",
        "hf_genarm/assets/base/model.safetensors",
        "hf_genarm/assets/base/tokenizer.json",
        "hf_genarm/assets/arm-sentiment/genarm_config.json",
        "hf_genarm/assets/arm-topic/model.safetensors",
        "hf_genarm/assets/preferences/demo_prompts.json",
        "hf_genarm/assets/preferences/sentiment_held_out.jsonl.gz",
        "hf_genarm/demo/__init__.py",
        "hf_genarm/demo/_runner.py",
        "hf_genarm/demo/judges.py",
        "hf_genarm/testing.py",
    ):
        assert required in names, required
    assert "hf_genarm/assets/build.py" not in names
    assert [name for name in names if name.startswith("scripts/") or "build_demo_assets" in name] == []
    with zipfile.ZipFile(wheel) as archive:
        build_entry_points = [
            name for name in names if name.endswith(".py") and b"def build_stages" in archive.read(name)
        ]
    assert build_entry_points == []


def test_the_installed_wheel_runs_the_demo(wheel, tmp_path):
    target = tmp_path / "site"
    run_killing_group(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        timeout=600,
        check=True,
    )
    # The wheel's copy comes first on the path, ahead of the editable install of the working tree.
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    code = (
        "import hf_genarm, sys; from hf_genarm.cli import main; "
        "print('loaded from', hf_genarm.__file__); sys.exit(main(['demo', '--prompts', '1', '--max-new-tokens', '4']))"
    )
    result = run_killing_group([sys.executable, "-c", code], timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"loaded from {target / 'hf_genarm' / '__init__.py'}" in result.stdout
    assert "Summary (1 prompts, 4 new tokens" in result.stdout

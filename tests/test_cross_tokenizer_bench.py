"""Smoke test of the cross-tokenizer quality tools: the second-tokenizer ARM build and its benchmark, quick sizes."""

from __future__ import annotations

import pathlib

import pytest

pytestmark = pytest.mark.slow  # builds a second-tokenizer ARM and benchmarks it (about 15 s)

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def tools(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_cross_tokenizer
    import build_cross_tokenizer_arm

    return build_cross_tokenizer_arm, bench_cross_tokenizer


def test_quick_build_and_benchmark_report_every_target(tmp_path, capsys, tools):
    build, bench = tools
    build.main(["--output-dir", str(tmp_path), "--quick"])
    from transformers import AutoTokenizer

    from hf_genarm.assets import default_asset_path

    arm_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "arm-sentiment")
    base_tokenizer = AutoTokenizer.from_pretrained(default_asset_path("base"))
    assert arm_tokenizer.get_vocab() != base_tokenizer.get_vocab()
    assert arm_tokenizer.convert_ids_to_tokens(arm_tokenizer("<|endoftext|>A cat")["input_ids"])[0] == "<|endoftext|>"
    capsys.readouterr()
    bench.main(["--cross-arm", str(tmp_path / "arm-sentiment"), "--quick"])
    out = capsys.readouterr().out
    assert "cross-tokenizer (top-16)" in out and "cross / same" in out
    assert sum(line.startswith(("- holds:", "- does not hold:")) for line in out.splitlines()) == 4

"""The quality benchmark runs end to end on the quick assets, its claim checks read the right numbers, and its
docs template writes the committed page."""

import difflib
import importlib.util
import logging
import math
import pathlib
import re
import sys
import warnings

import datasets
import pytest
import torch
import transformers

BENCH_PATH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_median_ratio_pairs_each_repetition(bench):
    repetitions = [{"a": 10.0, "b": 2.0}, {"a": 3.0, "b": 1.0}, {"a": 8.0, "b": 1.0}]
    assert bench.median_ratio(repetitions, "a", "b") == 5.0  # ratios 5, 3, 8; not median(a) / median(b) = 8


def test_args_claim_takes_args_best_weight_and_needs_the_speed_ratio(bench):
    settings = bench.Settings()
    args_runs = {1.0: {"win": 0.55, "seconds": 1.0}, 4.0: {"win": 0.70, "seconds": 1.0}}
    genarm_runs = {2.0: {"win": 0.65, "seconds": 0.2}, 1.0: {"win": 0.90, "seconds": 0.2}}
    holds, evidence = bench.args_line(args_runs, genarm_runs, 5.2, settings)
    assert holds and "best win rate 70.0% at w=4 (w=1 55.0%, w=4 70.0%)" in evidence
    assert "GenARM ahead at β=1;" in evidence and "5.20x" in evidence
    assert not bench.args_line(args_runs, genarm_runs, 4.9, settings)[0]
    behind = {beta: {**value, "win": 0.6} for beta, value in genarm_runs.items()}
    holds, evidence = bench.args_line(args_runs, behind, 9.0, settings)
    assert not holds and "ahead at β=none" in evidence


def test_choice_bullets_quote_the_runs_numbers(bench):
    settings = bench.Settings(betas=(2.0, 1.0), best_of=(4, 16), args_weights=(1.0, 4.0))

    def row(win, mean=0.0, perplexity=50.0):
        return {"win": win, "mean": mean, "perplexity": perplexity, "seconds": 0.1}

    summary = {("base (sampling)", "-"): row(0.5, perplexity=90.0)}
    summary[("GenARM β=2", "ARM 0.64M")] = row(0.80, mean=0.6, perplexity=40.0)
    summary[("GenARM β=1", "ARM 0.64M")] = row(0.95, mean=0.7, perplexity=60.0)
    summary[("GenARM equal-size β=2", "base-size ARM 2.62M")] = row(0.90, mean=0.8)
    summary[("GenARM equal-size β=1", "base-size ARM 2.62M")] = row(0.70, mean=0.5)
    for n, arm_win, classifier_win in ((4, 0.53, 0.64), (16, 0.50, 0.85)):
        summary[(f"best-of-{n}", "ARM 0.64M")] = row(arm_win)
        summary[(f"best-of-{n}", bench.SMALL_CLASSIFIER_LABEL)] = row(classifier_win)
    for label, wins in ((bench.SMALL_CLASSIFIER_LABEL, (0.75, 0.82)), (bench.BIG_CLASSIFIER_LABEL, (0.51, 0.61))):
        for weight, win in zip(settings.args_weights, wins, strict=True):
            summary[(bench.args_label(settings, weight), label)] = row(win)
    summary[("DPO policy (sampling)", "- (fine-tuned base)")] = row(0.79)
    text = bench.choice_bullets(summary, settings, {"base": 5.51, "quarter": 1.53}, "TRL DPOTrainer, 3 steps in 1s")
    assert "GenARM won 80-95% of the comparisons (β=2 to 1) and best-of-N reranked by the same ARM 50-53%" in text
    assert "it won 50.0% against base sampling, best-of-16 by the classifier 85.0%" in text
    assert "GenARM's best win rate was 90.0% against ARGS's 61.0%" in text and "took 5.5 times" in text
    assert "a quarter of the base's size, 95.0% against 82.0%, and 1.5 times" in text
    assert "GenARM's best win rate here was 90.0%, DPO's 79.0%." in text
    assert "peaked at β=1 with the quarter-size ARM and at β=2 with the base-size one" in text
    assert "went from 40.0 at β=2 to 60.0 at β=1 (base sampling: 90.0)" in text
    assert len(text.splitlines()) == 5


def brute_force_log_prob(model, prompt, response):
    """sum log p(response | prompt) of one unpadded row, from a full forward pass."""
    ids = prompt + response
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(log_probs[t - 1, ids[t]].item() for t in range(len(prompt), len(ids)))


def test_perplexity_and_arm_rewards_equal_each_row_scored_alone(bench, tokenizer):
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.testing import make_tiny_causal_lm

    model = make_tiny_causal_lm(seed=4)
    prompts, completions = ["The cat sat", "Life", "Good friends"], [" on the mat.", " is short; eat", " make"]
    examples = bench.split_prompt(tokenizer, prompts, completions)
    log_probs = [brute_force_log_prob(model, prompt, response) for prompt, response in examples]
    tokens = sum(len(response) for _, response in examples)
    perplexity = bench.perplexity_under(model, tokenizer, prompts, completions)
    assert perplexity == pytest.approx(math.exp(-sum(log_probs) / tokens), rel=1e-5)
    reward_model = AutoregressiveRewardModel(model, beta_r=0.5)
    rewards = bench.arm_rewards(reward_model, examples, tokenizer.pad_token_id)
    assert rewards.tolist() == pytest.approx([0.5 * value for value in log_probs], abs=1e-5)


@pytest.fixture
def restore_global_settings():
    """The benchmark sets torch's threads and quiets the libraries for its run; undo that for the other tests."""
    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    trl_level = logging.getLogger("trl").level
    with warnings.catch_warnings():
        yield
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity(verbosity)
    transformers.logging.enable_progress_bar()
    datasets.enable_progress_bars()
    logging.getLogger("trl").setLevel(trl_level)


VERDICTS = (": holds", ": does not hold", ": not measured")


def page_skeleton(page: str) -> str:
    """The page's prose with every number masked.

    Left out: what records the run rather than the template (tables, the command, the machine and its versions,
    the run's timings, example outputs) and the claims' verdicts.
    """
    lines = []
    for line in page.split("### Example outputs")[0].splitlines():
        if line.startswith(("|", "python benchmarks/", "- Machine: ", "- Run: ")):
            continue
        for verdict in VERDICTS:
            line = line.split(verdict)[0]
        lines.append(line)
    text = re.sub(r"[+-]?\d+(\.\d+)?", "#", " ".join(lines))
    return re.sub(r"\s+", " ", re.sub(r"#(, #)+", "#", text))


# TRL (the `bench` extra) is not a test dependency, so the test run skips DPO: its two sentences that quote DPO's
# numbers then read as follows, and stand for the committed page's (compared with their numbers masked).
WITHOUT_DPO = {
    "This run has no DPO numbers (skipped with --skip-dpo).": "With an ARM of the base's size GenARM's best win rate "
    "here was #%, DPO's #%.",
    "**DPO**: skipped with --skip-dpo (": "**DPO**: TRL DPOTrainer, # steps in #s (",
}


@pytest.mark.slow
def test_quick_run_writes_the_docs_page_from_its_template(
    bench, quick_assets, capsys, restore_global_settings, tmp_path
):
    """The committed page is what `--write-docs` writes, up to the numbers: a template change shows up here."""
    root, _ = quick_assets
    bench.main(["--quick", "--assets-dir", str(root), "--skip-dpo", "--write-docs", "--docs-dir", str(tmp_path)])
    out = capsys.readouterr().out
    claims_heading = "### The paper's claims, checked in its settings"
    for heading in (
        "### Held-out pair accuracy",
        "### Speed: 8 new tokens per row",
        claims_heading,
        "### Also measured, in other settings than the paper's",
    ):
        assert heading in out
    claims = out.split(claims_heading)[1].split("###")[0]
    lines = [line for line in claims.splitlines() if line.startswith("- ")]
    assert len(lines) == 5
    assert all(any(verdict in line for verdict in VERDICTS) for line in lines)
    assert "DPO's win rate, or better: not measured (no DPO run)" in claims
    assert "ARGS time / GenARM time at 8 tokens per row" in claims
    assert (tmp_path / "assets" / "quality_front.png").stat().st_size > 0
    written = (tmp_path / "benchmarks_quality.md").read_text(encoding="utf-8").replace(str(root), "hf_genarm/assets")
    committed = (BENCH_PATH.parent.parent / "docs" / "benchmarks_quality.md").read_text(encoding="utf-8")
    for page in (written, committed):
        assert not re.search(r"\bMET\b|MISSED|the issue", page)
    written_skeleton = page_skeleton(written)
    for without, with_dpo in WITHOUT_DPO.items():
        assert without in written_skeleton
        written_skeleton = written_skeleton.replace(without, with_dpo)
    if written_skeleton != page_skeleton(committed):
        differences = difflib.unified_diff(
            re.split(r"(?<=[.:;]) ", page_skeleton(committed)),
            re.split(r"(?<=[.:;]) ", written_skeleton),
            "docs/benchmarks_quality.md",
            "bench_quality.py --write-docs",
            lineterm="",
        )
        pytest.fail("The docs page and the benchmark's template differ:\n" + "\n".join(differences))

import argparse
import io
import math
import re

import pytest
import torch

from hf_genarm import cli, demo
from hf_genarm.demo import DEMO_DEFAULTS, DEMO_METHODS, DemoMethod, DemoOptions

_SCORES = r"VADER [+-]\d\.\d\d  topic [+-]\d\.\d\d  \.\.\."
_SUMMARY_ROW = r"[+-]\d\.\d{3}\s+[+-]\d\.\d{3}\s+\d+\.\d\s+[01]\.\d\d\s+\d+\.\d\d$"


@pytest.fixture(scope="module")
def demo_output():
    stream = io.StringIO()
    status = demo.main(argparse.Namespace(prompts=2, max_new_tokens=12, beta=1.0, seed=0), stream=stream)
    return status, stream.getvalue()


def test_demo_exits_with_status_zero(demo_output):
    status, output = demo_output
    assert status == 0
    assert output.startswith("Loading")


def test_demo_prints_every_method_with_numeric_scores_for_each_prompt(demo_output):
    _, output = demo_output
    blocks = re.findall(r"^\[(\d)/2\] ", output, flags=re.MULTILINE)
    assert blocks == ["1", "2"]
    for method in DEMO_METHODS:
        rows = re.findall(rf"^  {re.escape(method.name)}\s+{_SCORES}", output, flags=re.MULTILINE)
        assert len(rows) == 2, method.name


def test_demo_summary_has_a_row_of_numbers_per_method_and_the_wall_time(demo_output):
    _, output = demo_output
    summary = output[output.index("Summary (") :]
    assert "2 prompts, 12 new tokens" in summary
    for method in DEMO_METHODS:
        row = re.search(rf"^  {re.escape(method.name)}  .*$", summary, flags=re.MULTILINE)
        assert row is not None, method.name
        assert re.search(_SUMMARY_ROW, row.group(0)), row.group(0)
    assert re.search(r"Wall time \d+\.\d s", summary)


def test_demo_is_reproducible_with_the_same_seed(demo_output):
    _, output = demo_output
    stream = io.StringIO()
    demo.main(argparse.Namespace(prompts=2, max_new_tokens=12, beta=1.0, seed=0), stream=stream)
    without_timings = re.compile(r"\s+\d+\.\d\d$|Wall time.*", flags=re.MULTILINE)
    assert without_timings.sub("", stream.getvalue()) == without_timings.sub("", output)


def test_demo_runs_from_the_command_line(capsys):
    assert cli.main(["demo", "--prompts", "1", "--max-new-tokens", "6", "--beta", "2"]) == 0
    output = capsys.readouterr().out
    assert "1 prompts, 6 new tokens" in output
    assert "beta 2" in output
    for method in DEMO_METHODS:
        assert f"  {method.describe(beta=2.0)}  " in output


def test_demo_refuses_more_prompts_than_it_ships():
    with pytest.raises(ValueError, match="prompts"):
        demo.main(argparse.Namespace(prompts=10_000), stream=io.StringIO())


def test_demo_method_describes_its_weights():
    assert DemoMethod("base").describe(beta=1.0) == "-"
    assert DemoMethod("both", {"sentiment": 1.0, "topic": 0.5}).describe(beta=0.5) == "sentiment x2 + topic x1"
    assert DEMO_METHODS[0].alphas == {}
    assert {objective for method in DEMO_METHODS for objective in method.alphas} == {"sentiment", "topic"}


def test_the_command_line_and_the_library_share_the_demo_defaults():
    options, _ = cli.build_parser("demo").parse_args_into_dataclasses([], look_for_args_file=False)
    assert options == DEMO_DEFAULTS


def test_demo_options_fill_missing_values_from_the_defaults(monkeypatch):
    seen = []
    monkeypatch.setattr("hf_genarm.demo._runner.run_demo", lambda options, stream: seen.append(options) or 0)
    assert demo.main(argparse.Namespace(prompts=3, beta=None)) == 0
    assert seen == [DemoOptions(prompts=3, max_new_tokens=DEMO_DEFAULTS.max_new_tokens)]


def test_continuation_perplexity_equals_each_row_scored_alone(tokenizer):
    from hf_genarm.demo._runner import _continuation_perplexity
    from hf_genarm.testing import make_tiny_causal_lm

    base = make_tiny_causal_lm(seed=2)
    eos = tokenizer.eos_token_id
    inputs = tokenizer(["The cat sat", "Life"], return_tensors="pt", padding=True)
    # Row 0 ends with EOS and padding (which must not count), row 1 runs to the last column.
    generated = torch.tensor([[11, 12, eos, eos, eos], [13, 14, 15, 16, 17]])
    sequences = torch.cat([inputs["input_ids"], generated], dim=1)
    total_log_prob, count = 0.0, 0
    for prompt_ids, prompt_mask, new_tokens in zip(inputs["input_ids"], inputs["attention_mask"], generated.tolist()):
        kept = new_tokens[: new_tokens.index(eos) + 1] if eos in new_tokens else new_tokens
        ids = prompt_ids[prompt_mask.bool()].tolist() + kept
        with torch.no_grad():
            log_probs = torch.log_softmax(base(torch.tensor([ids])).logits[0].float(), dim=-1)
        start = len(ids) - len(kept)
        total_log_prob += sum(log_probs[t - 1, ids[t]].item() for t in range(start, len(ids)))
        count += len(kept)
    expected = math.exp(-total_log_prob / count)
    assert _continuation_perplexity(base, sequences, inputs["attention_mask"], eos) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("threads", [None, 2], ids=["default", "two"])
def test_demo_runs_on_the_threads_asked_for_and_gives_the_callers_back(monkeypatch, threads):
    seen = []

    def record_threads(options, stream):
        seen.append(torch.get_num_threads())
        return 0

    monkeypatch.setattr("hf_genarm.demo._runner._run", record_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert demo.main(argparse.Namespace(threads=threads), stream=io.StringIO()) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    # Tiny models: one thread by default, however many cores the machine (or the caller) has.
    assert seen == [1 if threads is None else threads]


def test_demo_summary_names_its_threads(demo_output):
    _, output = demo_output
    assert "torch threads 1)" in output


def test_demo_threads_option_is_checked_before_loading(capsys, monkeypatch):
    monkeypatch.setattr("hf_genarm.demo.main", lambda options: pytest.fail("the demo must not start"))
    assert cli.main(["demo", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("arm-sentiments", "arm-sentiment, arm-topic, base, preferences"),
        ("preferences/sentiment_train.jsonl", "preferences/sentiment_train.jsonl.gz"),
    ],
    ids=["mistyped-folder", "mistyped-file"],
)
def test_a_mistyped_asset_name_lists_the_assets_there(name, listed):
    from hf_genarm.assets import default_asset_path

    with pytest.raises(FileNotFoundError, match="The assets there are: ") as error:
        default_asset_path(name)
    assert listed in str(error.value) and "__init__" not in str(error.value)

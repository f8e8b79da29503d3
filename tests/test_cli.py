"""The `hf-genarm` command, run in-process on tiny models saved to a temporary folder."""

import gzip
import json
import shlex
import sys
import types

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import hf_genarm
from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.cli import _load_dataset, build_parser, main
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

PROMPTS = ["The cat sat on", "Life", "Good friends and good food make"]
COMMANDS = ("demo", "train", "generate", "score", "push")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # Tiny models on a shared CPU: one intra-op thread avoids oversubscription that makes these tests 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A base model and reward models saved with their tokenizer, as users have them on disk."""
    folder = tmp_path_factory.mktemp("models")
    tokenizer = make_tiny_tokenizer()
    make_tiny_causal_lm(seed=0, hidden_size=48).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    for name, seed, beta_r in (("arm", 1, 0.1), ("arm2", 2, 0.5)):
        reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=seed), beta_r=beta_r, tokenizer=tokenizer)
        reward_model.save_pretrained(folder / name, tokenizer=tokenizer)
    other = make_tiny_tokenizer(vocab_size=380)
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=3), tokenizer=other).save_pretrained(folder / "foreign")
    return folder


def cli(capsys, command_line, **paths):
    """Run `hf-genarm <command_line>` in-process; `{name}` fields are filled with (quoted) paths."""
    argv = shlex.split(command_line.format(**{name: shlex.quote(str(path)) for name, path in paths.items()}))
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(err, message=""):
    # Loading progress bars may precede it; the error itself is the last line, without a traceback.
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("hf-genarm: error: ") and message in last, err


def reference_completions(saved, prompts, reward_models, alpha, beta, **generate_kwargs):
    tokenizer = AutoTokenizer.from_pretrained(saved / "base", padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(saved / "base")
    models = [AutoregressiveRewardModel.from_pretrained(saved / name) for name in reward_models]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    processor = GenARMLogitsProcessor(
        models, alpha=alpha, beta=beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    output = base.generate(
        **inputs, logits_processor=[processor], pad_token_id=tokenizer.pad_token_id, do_sample=False, **generate_kwargs
    )
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------ help
def test_main_help_lists_every_command_with_examples(capsys):
    status, out, _ = cli(capsys, "--help")
    assert status == 0
    for command in COMMANDS:
        assert f"hf-genarm {command}" in out
    assert "examples:" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_is_complete(capsys, command):
    status, out, _ = cli(capsys, f"{command} --help")
    assert status == 0
    assert "examples:" in out and f"hf-genarm {command}" in out
    subparser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in subparser._actions:
        for option in action.option_strings:
            assert option in out
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"


def test_version_and_missing_command(capsys):
    status, out, _ = cli(capsys, "--version")
    assert status == 0 and out.strip() == f"hf-genarm {hf_genarm.__version__}"
    status, _, err = cli(capsys, "")
    assert status == 2 and err.startswith("hf-genarm: error: choose a command")


# ------------------------------------------------------------------------------------------ bad arguments
@pytest.fixture()
def no_model_loading(monkeypatch):
    """Bad arguments must be refused before any model is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(AutoregressiveRewardModel, "from_pretrained", refuse)


GENERATE = "generate --base {saved}/base "
TRAIN = "train --model {saved}/base --output-dir {tmp}/out "
BAD_ARGUMENTS = {
    "missing base folder": ("generate --base {tmp}/missing Hi", "--base: no such folder"),
    "base is a file": ("generate --base {tmp}/prompts.txt Hi", "is a file"),
    "folder without a model": ("generate --base {tmp} Hi", "not a saved model folder"),
    "missing reward model": (GENERATE + "--reward-model {tmp}/nope Hi", "--reward-model: no such folder"),
    "alpha count mismatch": (
        GENERATE + "--reward-model {saved}/arm --alpha 1 --alpha 2 Hi",
        "--alpha: got 2 values for 1 reward models",
    ),
    "alpha without reward model": (GENERATE + "--alpha 1 Hi", "--alpha needs at least one --reward-model"),
    "alpha not finite": (GENERATE + "--reward-model {saved}/arm --alpha inf Hi", "finite number"),
    "beta zero": (GENERATE + "--beta 0 Hi", "argument --beta: expected a number > 0, got '0'"),
    "beta negative": (GENERATE + "--beta=-1 Hi", "argument --beta: expected a number > 0"),
    "unknown dtype": (GENERATE + "--dtype float8 Hi", "invalid choice: 'float8'"),
    "bad device": (GENERATE + "--device gpu7 Hi", "--device"),
    "no prompt": (GENERATE, "no prompt given"),
    "missing prompts file": (GENERATE + "--prompts-file {tmp}/none.txt", "--prompts-file: no such file"),
    "bad jsonl prompts": (GENERATE + "--prompts-file {tmp}/bad.jsonl", "line 2 of"),
    "temperature with greedy": (GENERATE + "--greedy --temperature 0.7 Hi", "--temperature only apply when sampling"),
    "sample and greedy": (GENERATE + "--greedy --do-sample Hi", "not allowed with argument"),
    "too many beams returned": (
        GENERATE + "--greedy --num-beams 2 --num-return-sequences 3 Hi",
        "cannot exceed --num-beams",
    ),
    "zero new tokens": (GENERATE + "--max-new-tokens 0 Hi", "integer >= 1"),
    "score missing reward model": ("score --reward-model {tmp}/nope --prompt Q --response A", "no such folder"),
    "score html in missing folder": (
        "score --reward-model {saved}/arm --prompt Q --response A --html {tmp}/no/x.html",
        "--html: the folder",
    ),
    "score empty response": ("score --reward-model {saved}/arm --prompt Q --response ' '", "must not be empty"),
    "push missing folder": ("push --reward-model {tmp}/nope --repo-id me/arm", "no such folder"),
    "push bad repo id": ("push --reward-model {saved}/arm --repo-id 'bad id!'", "--repo-id: Repo id must use"),
    "push without repo": ("push --reward-model {saved}/arm", "required: --repo-id"),
    "train missing dataset": (TRAIN + "--dataset {tmp}/pairs.jsonl", "--dataset: no such file or folder"),
    "train unsupported data file": (
        TRAIN + "--dataset {tmp}/prompts.txt",
        "not a .jsonl, .json (optionally .gz) or .csv file",
    ),
    "train folder not a dataset": (TRAIN + "--dataset {saved}/arm", "not a folder written by Dataset.save_to_disk"),
    "train lora options without lora": (
        TRAIN + "--dataset {tmp}/bad.jsonl --lora-r 4 --lora-target-modules c_attn",
        "--lora-r, --lora-target-modules only apply with --lora",
    ),
    "train prompt not shorter": (
        TRAIN + "--dataset {tmp}/bad.jsonl --max-length 8 --max-prompt-length 8",
        "--max-prompt-length (8) must be smaller than --max-length (8)",
    ),
    "train beta_r zero": (TRAIN + "--dataset {tmp}/bad.jsonl --beta-r 0", "--beta-r"),
    "demo zero prompts": ("demo --prompts 0", "--prompts: expected an integer >= 1"),
    "unknown option": ("score --reward-model {saved}/arm --prompt Q --response A --bogus", "unrecognized arguments"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_one_line_errors_with_status_2(capsys, saved, tmp_path, no_model_loading, case):
    (tmp_path / "prompts.txt").write_text("Hello\n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    command_line, message = BAD_ARGUMENTS[case]
    status, out, err = cli(capsys, command_line, saved=saved, tmp=tmp_path)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hf-genarm: error: "), err
    assert message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_refused_before_loading(capsys, saved, no_model_loading):
    status, _, err = cli(capsys, GENERATE + "--device cuda Hi", saved=saved)
    assert status == 2 and "CUDA is not available" in err


# ------------------------------------------------------------------------------------------ generate
def test_generate_single_prompt_streams_the_guided_completion(capsys, saved):
    status, out, _ = cli(
        capsys,
        GENERATE + "--reward-model {saved}/arm --alpha 2 --beta 0.5 --greedy --max-new-tokens 8 --device cpu {prompt}",
        saved=saved,
        prompt=PROMPTS[0],
    )
    assert status == 0
    expected = reference_completions(saved, PROMPTS[:1], ["arm"], 2.0, 0.5, max_new_tokens=8)[0]
    assert out == PROMPTS[0] + expected + "\n"


def test_generate_batch_with_two_reward_models_from_a_jsonl_file(capsys, saved, tmp_path):
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": prompt}) + "\n" for prompt in PROMPTS[1:]))
    status, out, _ = cli(
        capsys,
        GENERATE + "--reward-model {saved}/arm --reward-model {saved}/arm2 --alpha 0.7 --alpha 0.3 --beta 0.5 "
        "--greedy --max-new-tokens 6 --jsonl --prompts-file {file} {prompt}",
        saved=saved,
        file=prompts_file,
        prompt=PROMPTS[0],
    )
    assert status == 0
    records = [json.loads(line) for line in out.splitlines()]
    expected = reference_completions(saved, PROMPTS, ["arm", "arm2"], [0.7, 0.3], 0.5, max_new_tokens=6)
    assert records == [{"prompt": prompt, "completion": text} for prompt, text in zip(PROMPTS, expected)]
    unguided = reference_completions(saved, PROMPTS, ["arm"], 0.0, 1.0, max_new_tokens=6)
    assert expected != unguided, "guidance should change the greedy output, or this test shows nothing"


def test_generate_seeded_sampling_with_text_output(capsys, saved, tmp_path):
    (tmp_path / "prompts.txt").write_text("The cat sat on\n\nLife\n")
    command_line = GENERATE + (
        "--reward-model {saved}/arm --prompts-file {tmp}/prompts.txt --seed 3 --top-k 20 --top-p 0.9 "
        "--temperature 0.8 --num-return-sequences 2 --max-new-tokens 5"
    )
    status, out, _ = cli(capsys, command_line, saved=saved, tmp=tmp_path)
    assert status == 0
    assert out.startswith("=== 1.1 ===\nThe cat sat on") and "\n=== 2.2 ===\nLife" in out
    assert cli(capsys, command_line, saved=saved, tmp=tmp_path)[1] == out, "a seed makes sampling reproducible"


def test_generate_beam_search_and_the_base_alone(capsys, saved):
    status, out, _ = cli(
        capsys, GENERATE + "--reward-model {saved}/arm --greedy --num-beams 3 --max-new-tokens 4 Life", saved=saved
    )
    assert status == 0 and out.startswith("=== 1 ===\nLife")
    status, out, _ = cli(capsys, GENERATE + "--greedy --max-new-tokens 4 --jsonl Life", saved=saved)
    assert status == 0
    base_alone = reference_completions(saved, ["Life"], ["arm"], 0.0, 1.0, max_new_tokens=4)[0]
    assert json.loads(out) == {"prompt": "Life", "completion": base_alone}


def test_library_errors_are_one_line_with_status_1_and_debug_shows_them(capsys, saved):
    command_line = GENERATE + "--reward-model {saved}/foreign --greedy Hi"
    status, out, err = cli(capsys, command_line, saved=saved)
    assert status == 1 and out == ""
    assert_one_line_error(err, "`reward_models[0]` was trained with another tokenizer")
    for debug_line in (command_line + " --debug", "--debug " + command_line):
        with pytest.raises(ValueError, match="another tokenizer"):
            cli(capsys, debug_line, saved=saved)


def test_a_model_that_does_not_load_names_its_option(capsys, saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(capsys, "generate --base no-such-user/no-such-model Hi")
    assert status == 1
    assert_one_line_error(err, "--base no-such-user/no-such-model: cannot load this Hub id")


# ------------------------------------------------------------------------------------------ score
def test_score_prints_token_rewards_and_writes_heatmaps(capsys, saved, tmp_path):
    prompt, response = "Question: how do I bake bread? Answer:", " mix flour and wait."
    status, out, err = cli(
        capsys,
        "score --reward-model {saved}/arm --prompt {prompt} --response {response} --html {tmp}/r.html "
        "--png {tmp}/r.png",
        saved=saved,
        tmp=tmp_path,
        prompt=prompt,
        response=response,
    )
    assert status == 0
    reward_model = AutoregressiveRewardModel.from_pretrained(saved / "arm")
    tokenizer = AutoTokenizer.from_pretrained(saved / "arm")
    tokens, rewards = hf_genarm.score_text(reward_model, tokenizer, prompt, response)
    lines = out.splitlines()
    assert lines[0].split() == ["#", "token", "reward"]
    assert len(lines) == len(tokens) + 2
    for line, token, reward in zip(lines[1:], tokens, rewards):
        assert repr(token) in line and line.endswith(f"{reward:.4f}")
    assert lines[-1].startswith(f"total: {sum(rewards):.4f}") and "beta_r=0.1" in lines[-1]
    html_text = (tmp_path / "r.html").read_text()
    assert html_text.startswith("<!DOCTYPE html>") and html_text.count('title="reward') == len(tokens)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "r.html" in err and "r.png" in err


def test_score_json_output(capsys, saved):
    status, out, _ = cli(
        capsys, "score --reward-model {saved}/arm2 --prompt Life --response ' is short' --json --no-eos", saved=saved
    )
    assert status == 0
    result = json.loads(out)
    assert "".join(result["tokens"]) == " is short"
    assert result["total"] == pytest.approx(sum(result["rewards"])) and result["beta_r"] == 0.5


# ------------------------------------------------------------------------------------------ push and demo
def test_push_offline_fails_with_the_hub_error_on_one_line(capsys, saved, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    status, out, err = cli(capsys, "push --reward-model {saved}/arm --repo-id me/arm --private", saved=saved)
    assert status == 1 and out == ""
    assert_one_line_error(err, "offline mode is enabled")


def test_push_passes_hub_options_and_the_tokenizer(capsys, saved, monkeypatch):
    calls = []

    def fake_push(self, repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(AutoregressiveRewardModel, "push_to_hub", fake_push)
    status, out, _ = cli(
        capsys,
        "push --reward-model {saved}/arm --repo-id me/arm --private --revision v1 --token hf_x --commit-message first",
        saved=saved,
    )
    assert status == 0 and "https://huggingface.co/me/arm/commit/abc" in out
    [(repo_id, kwargs)] = calls
    assert repo_id == "me/arm"
    options = {name: kwargs[name] for name in ("private", "revision", "token", "commit_message")}
    assert options == {"private": True, "revision": "v1", "token": "hf_x", "commit_message": "first"}
    assert len(kwargs["tokenizer"]) == 400


def test_demo_hands_its_options_to_hf_genarm_demo(capsys, monkeypatch):
    received = []
    fake_demo = types.ModuleType("hf_genarm.demo")
    fake_demo.main = received.append
    monkeypatch.setitem(sys.modules, "hf_genarm.demo", fake_demo)
    monkeypatch.setattr(hf_genarm, "demo", fake_demo, raising=False)
    status, _, _ = cli(capsys, "demo --prompts 2 --max-new-tokens 5 --beta 0.5 --seed 7")
    assert status == 0
    [args] = received
    assert (args.prompts, args.max_new_tokens, args.beta, args.seed) == (2, 5, 0.5, 7)


# ------------------------------------------------------------------------------------------ train
def test_training_data_sources(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"prompt": "Q:", "chosen": " yes", "rejected": " no"}] * 3
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert _load_dataset(str(tmp_path / "pairs.jsonl"), "train") == str(tmp_path / "pairs.jsonl")
    Dataset.from_list(rows).to_csv(tmp_path / "pairs.csv")
    assert _load_dataset(str(tmp_path / "pairs.csv"), "train").to_list() == rows
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])}).save_to_disk(tmp_path / "d")
    assert _load_dataset(str(tmp_path / "d"), "test").num_rows == 1
    with pytest.raises(Exception, match="no split 'valid'"):
        _load_dataset(str(tmp_path / "d"), "valid")


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_saves_a_reward_model(capsys, saved, tmp_path, lora):
    pytest.importorskip("hf_genarm.trainer")
    pairs = [
        {"prompt": "Question: how are you? Answer:", "chosen": " Good, thank you!", "rejected": " I hate it."},
        {"prompt": "Question: the weather? Answer:", "chosen": " Lovely and sunny.", "rejected": " The worst."},
    ] * 2
    # The LoRA run reads the same pairs gzip-compressed, as the embedded assets ship them.
    data_file = tmp_path / ("pairs.jsonl.gz" if lora else "pairs.jsonl")
    text = "".join(json.dumps(pair) + "\n" for pair in pairs)
    data_file.write_bytes(gzip.compress(text.encode("utf-8")) if lora else text.encode("utf-8"))
    command_line = (
        "train --model {saved}/base --dataset {tmp}/" + data_file.name + " --output-dir {tmp}/arm --beta-r 0.2 "
        "--max-steps 2 --batch-size 2 --learning-rate 1e-3 --max-length 64"
    )
    if lora:
        command_line += " --lora --lora-r 4 --lora-alpha 8 --lora-target-modules c_attn"
    status, out, err = cli(capsys, command_line, saved=saved, tmp=tmp_path)
    assert status == 0, err
    output_dir = tmp_path / "arm"
    assert f"saved the reward model to {output_dir}" in out
    assert json.loads((output_dir / "genarm_config.json").read_text())["beta_r"] == 0.2
    assert (output_dir / ("adapter_config.json" if lora else "model.safetensors")).is_file()
    assert AutoregressiveRewardModel.from_pretrained(output_dir).beta_r == 0.2

"""The `hf-genarm` command, run in-process on tiny models saved to a temporary folder."""

import dataclasses
import gzip
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
import torch
from process_group import run_killing_group, started_in_own_group
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

import hf_genarm
from hf_genarm import ARMConfig, AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.cli import COMMANDS, TrainScriptArguments, build_parser, main
from hf_genarm.demo import DEMO_DEFAULTS, DemoOptions
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

PROMPTS = ["The cat sat on", "Life", "Good friends and good food make"]
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"
PAIRS = [
    {"prompt": "Question: how are you? Answer:", "chosen": " Good, thank you!", "rejected": " I hate it."},
    {"prompt": "Question: the weather? Answer:", "chosen": " Lovely and sunny.", "rejected": " The worst."},
    {"prompt": "Question: a good book? Answer:", "chosen": " Any by Le Guin.", "rejected": " Books bore me."},
    {"prompt": "Question: coffee or tea? Answer:", "chosen": " Both are lovely.", "rejected": " Neither, ugh."},
]


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
    # A chat base as Llama-style tokenizers ship: a chat template and no pad token.
    shutil.copytree(folder / "base", folder / "chat")
    chat_tokenizer = make_tiny_tokenizer()
    chat_tokenizer.pad_token = None
    chat_tokenizer.chat_template = CHAT_TEMPLATE
    chat_tokenizer.save_pretrained(folder / "chat")
    return folder


def write_pairs(path, pairs=PAIRS, repeat=1):
    text = "".join(json.dumps(pair) + "\n" for pair in pairs * repeat)
    path.write_bytes(gzip.compress(text.encode()) if path.name.lower().endswith(".gz") else text.encode())
    return path


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
    for command, description in COMMANDS.items():
        assert f"hf-genarm {command}" in out and description in out
    assert "examples:" in out


def _options_with_help(parser):
    return [(option, action.help) for action in parser._actions for option in action.option_strings]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_help_is_complete(capsys, command):
    # `train --help` shows GenARM's options; `train --help-all` every TrainingArguments field as well.
    status, out, _ = cli(capsys, f"{command} {'--help-all' if command == 'train' else '--help'}")
    assert status == 0
    assert "examples:" in out and f"hf-genarm {command}" in out
    for option, help_text in _options_with_help(build_parser(command)):
        assert option in out
        assert help_text, f"{command} {option} has no help"


def test_train_help_lists_every_training_arguments_field_with_its_help(capsys):
    status, out, _ = cli(capsys, "train --help-all")
    assert status == 0
    flat = " ".join(out.split())
    fields = [field for field in dataclasses.fields(ARMConfig) if field.init]
    assert {field.name for field in dataclasses.fields(TrainingArguments) if field.init} <= {f.name for f in fields}
    for field in [*fields, *dataclasses.fields(TrainScriptArguments)]:
        assert f"--{field.name}" in out
        help_text = field.metadata.get("help")
        if help_text:
            assert " ".join(help_text.split())[:40] in flat, field.name
    beta_r_help = flat.split("--beta-r BETA_R ")[1].split(" --")[0]
    assert beta_r_help.startswith("Reward scale") and beta_r_help.endswith("(default: 0.1)")


def test_train_help_is_short_fast_and_shows_genarm_options_first():
    # In a fresh interpreter: the short help must not import torch or the trainer (11 s on a loaded machine).
    script = (
        "import sys; from hf_genarm.cli import main; status = main(['train', '--help']); "
        "print('IMPORTED', sorted({'torch', 'hf_genarm.trainer'} & set(sys.modules))); sys.exit(status)"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = run_killing_group([sys.executable, "-c", script], timeout=120, env=environment)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.rstrip().endswith("IMPORTED []"), out[-200:]
    lines = out.splitlines()
    assert len(lines) < 150
    position = next(number for number, line in enumerate(lines) if line.startswith("  --beta_r BETA_R"))
    assert position < 60
    assert "--help-all" in out and "--output_dir OUTPUT_DIR" in out and "--per_device_train_batch_size" in out
    flat = " ".join(out.split())
    assert "--no_disable_dropout, --no-disable-dropout Turn --disable_dropout off (its default is on)." in flat
    assert "--learning_rate LEARNING_RATE" not in out, "TrainingArguments' options are listed by --help-all only"


def test_train_defaults_save_checkpoints_that_keep_work(capsys):
    _, config = build_parser("train").parse_args_into_dataclasses(
        ["--model", "m", "--dataset", "d.jsonl", "--output_dir", "o"], look_for_args_file=False
    )
    assert (config.save_strategy, config.save_steps, config.save_total_limit) == ("steps", 0.1, 2)
    out = cli(capsys, "train --help-all")[1]
    flat = " ".join(out.split())
    assert "--no_disable_dropout, --no-disable-dropout Turn --disable_dropout off" in flat


def test_demo_options_come_from_the_demo_module(capsys, monkeypatch):
    received = []
    monkeypatch.setattr("hf_genarm.demo.main", lambda options: received.append(options) or 0)
    assert cli(capsys, "demo")[0] == 0
    assert cli(capsys, "demo --prompts 2 --max-new-tokens 5 --beta 0.5 --seed 7")[0] == 0
    assert received == [DEMO_DEFAULTS, DemoOptions(prompts=2, max_new_tokens=5, beta=0.5, seed=7)]
    out = cli(capsys, "demo --help")[1]
    assert f"(default: {DEMO_DEFAULTS.prompts})" in out and f"(default: {DEMO_DEFAULTS.max_new_tokens})" in out


def test_version_and_missing_command(capsys):
    status, out, _ = cli(capsys, "--version")
    assert status == 0 and out.strip() == f"hf-genarm {hf_genarm.__version__}"
    status, _, err = cli(capsys, "")
    assert status == 2 and err.startswith("hf-genarm: error: choose a command")
    status, _, err = cli(capsys, "fly")
    assert status == 2 and "invalid choice: 'fly'" in err


# ------------------------------------------------------------------------------------------ bad arguments
@pytest.fixture()
def no_model_loading(monkeypatch):
    """Bad arguments must be refused before any model is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(AutoregressiveRewardModel, "from_pretrained", refuse)


GENERATE = "generate --base {saved}/base "
SCORE = "score --reward-model {saved}/arm --prompt Q --response A "
TRAIN = "train --model {saved}/base --output_dir {tmp}/out "
BAD_ARGUMENTS = {
    "missing base folder": ("generate --base {tmp}/missing Hi", "--base: no such folder"),
    "base is a file": ("generate --base {tmp}/prompts.txt Hi", "is a file"),
    "folder without a model": ("generate --base {tmp} Hi", "not a saved model folder"),
    "missing reward model": (GENERATE + "--reward-model {tmp}/nope Hi", "--reward-model: no such folder"),
    "alpha count mismatch": (
        GENERATE + "--reward-model {saved}/arm --alpha 1 --alpha 2 Hi",
        "--alpha: `--alpha` has 2 weight(s) per row but there are 1 reward model(s)",
    ),
    "alpha without reward model": (GENERATE + "--alpha 1 Hi", "--alpha needs at least one --reward-model"),
    "alpha not finite": (GENERATE + "--reward-model {saved}/arm --alpha inf Hi", "`--alpha` must be finite"),
    "alpha not a number": (GENERATE + "--reward-model {saved}/arm --alpha x Hi", "argument --alpha: invalid float"),
    "beta zero": (GENERATE + "--beta 0 Hi", "--beta: `--beta` must be a finite float > 0 (the KL strength), got 0.0"),
    "beta negative": (GENERATE + "--beta=-1 Hi", "`--beta` must be a finite float > 0"),
    "unknown dtype": (GENERATE + "--dtype float8 Hi", "invalid choice: 'float8'"),
    "bad device": (GENERATE + "--device gpu7 Hi", "--device"),
    "no prompt": (GENERATE, "no prompt given"),
    "empty prompt": (GENERATE + "Hi ' '", "prompt 2 is empty; give every prompt some text"),
    "empty prompt in a file": (GENERATE + "--prompts-file {tmp}/empty_prompt.jsonl", "prompt 1 is empty"),
    "missing prompts file": (GENERATE + "--prompts-file {tmp}/none.txt", "--prompts-file: no such file"),
    "bad jsonl prompts": (GENERATE + "--prompts-file {tmp}/bad.jsonl", "--prompts-file: Line 2 of"),
    "bad upper-case JSONL prompts": (GENERATE + "--prompts-file {tmp}/BAD.JSONL", "--prompts-file: Line 2 of"),
    "jsonl prompts without prompt": (GENERATE + "--prompts-file {tmp}/empty.jsonl", "holds no prompt"),
    "temperature with greedy": (
        GENERATE + "--greedy --temperature 0.7 --top-k 5 Hi",
        "--temperature, --top-k: sampling options, unused with --greedy; drop them or --greedy",
    ),
    "greedy with two sequences": (
        GENERATE + "--greedy --num-return-sequences 2 Hi",
        "generation options: Greedy methods (do_sample != True) without beam search do not support "
        "`num_return_sequences` different than 1 (got 2).",
    ),
    "sample and greedy": (GENERATE + "--greedy --do-sample Hi", "not allowed with argument"),
    "too many beams returned": (
        GENERATE + "--greedy --num-beams 2 --num-return-sequences 3 Hi",
        "`num_return_sequences` (3) has to be smaller or equal to `num_beams` (2)",
    ),
    "zero new tokens": (GENERATE + "--max-new-tokens 0 Hi", "`max_new_tokens` must be greater than 0"),
    "top-p above one": (GENERATE + "--top-p 1.5 Hi", "--top-p: `top_p` has to be a float > 0 and < 1"),
    "zero temperature": (GENERATE + "--temperature 0 Hi", "--temperature: "),
    "score missing reward model": ("score --reward-model {tmp}/nope --prompt Q --response A", "no such folder"),
    "score html in missing folder": (SCORE + "--html {tmp}/no/x.html", "--html: the folder"),
    "score html in a file's place": (SCORE + "--html {tmp}/prompts.txt/x.html", "--html: the folder"),
    "score html is a folder": (SCORE + "--html {tmp}", "--html: {tmp} is a folder"),
    "score png in read-only place": (SCORE + "--png /proc/x.png", "--png: cannot write /proc/x.png"),
    "score empty response": ("score --reward-model {saved}/arm --prompt Q --response ' '", "must not be empty"),
    "push missing folder": ("push --reward-model {tmp}/nope --repo-id me/arm", "{tmp}/nope is not a folder"),
    "push bad repo id": ("push --reward-model {saved}/arm --repo-id 'bad id!'", "--repo-id: "),
    "push without repo": ("push --reward-model {saved}/arm", "required: --repo-id"),
    "train missing dataset": (TRAIN + "--dataset {tmp}/pairs.jsonl", "--dataset: file not found: {tmp}/pairs.jsonl"),
    # A bare file name is also a valid Hub id; its data-file suffix says it was meant as a local file.
    "train mistyped local dataset": (TRAIN + "--dataset nothere.jsonl", "--dataset: file not found: nothere.jsonl"),
    "train mistyped eval dataset": (
        TRAIN + "--dataset {tmp}/pairs.JSONL --eval_dataset Eval.CSV",
        "--eval_dataset: file not found: Eval.CSV",
    ),
    "train missing dataset folder": (TRAIN + "--dataset ./nothere", "--dataset: no such file or folder: ./nothere"),
    "train unsupported data file": (
        TRAIN + "--dataset {tmp}/prompts.txt",
        "not a .jsonl, .json (optionally .gz) or .csv file",
    ),
    "train malformed dataset": (TRAIN + "--dataset {tmp}/bad.jsonl", "--dataset: Line 2 of"),
    "train empty dataset": (TRAIN + "--dataset {tmp}/empty.jsonl", "--dataset: `--dataset` is empty"),
    "train dataset without pairs": (TRAIN + "--dataset {tmp}/prompts.jsonl.gz", "needs 'chosen' and 'rejected'"),
    "train not gzip": (TRAIN + "--dataset {tmp}/plain.jsonl.gz", "is not gzip-compressed"),
    "train malformed eval dataset": (
        TRAIN + "--dataset {tmp}/pairs.JSONL --eval_dataset {tmp}/bad.jsonl",
        "--eval_dataset: Line 2 of",
    ),
    "train folder not a dataset": (TRAIN + "--dataset {saved}/arm", "not a folder written by Dataset.save_to_disk"),
    "train output dir is a file": (
        "train --model {saved}/base --dataset {tmp}/pairs.JSONL --output_dir {tmp}/prompts.txt",
        "--output_dir: {tmp}/prompts.txt is a file",
    ),
    "train output dir under a file": (
        "train --model {saved}/base --dataset {tmp}/pairs.JSONL --output_dir {tmp}/prompts.txt/arm",
        "--output_dir: cannot create",
    ),
    "train output dir read-only": (
        "train --model {saved}/base --dataset {tmp}/pairs.JSONL --output_dir /proc/arm",
        "--output_dir: cannot write to /proc",
    ),
    "train without output dir": (
        "train --model {saved}/base --dataset {tmp}/pairs.JSONL",
        "the following arguments are required: --output_dir",
    ),
    "train lora options without lora": (
        TRAIN + "--dataset {tmp}/pairs.JSONL --lora_r 4 --lora_target_modules c_attn",
        "--lora_r, --lora_target_modules only applies with --lora",
    ),
    "train prompt not shorter": (
        TRAIN + "--dataset {tmp}/pairs.JSONL --max_length 8 --max_prompt_length 8",
        "`max_prompt_length` (8) must be smaller than `max_length` (8)",
    ),
    "train beta_r zero": (TRAIN + "--dataset {tmp}/pairs.JSONL --beta_r 0", "`beta_r` must be a finite float > 0"),
    "train not a checkpoint": (
        TRAIN + "--dataset {tmp}/pairs.JSONL --resume_from_checkpoint {tmp}",
        "--resume_from_checkpoint: {tmp} is not a checkpoint folder",
    ),
    "train unknown option": (TRAIN + "--dataset {tmp}/pairs.JSONL --epochs 2", "unrecognized arguments: --epochs"),
    "demo zero prompts": ("demo --prompts 0", "--prompts: `--prompts` must be a positive int, got 0"),
    "demo beta zero": ("demo --beta 0", "`--beta` must be a finite float > 0"),
    "unknown option": (SCORE + "--bogus", "unrecognized arguments"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_one_line_errors_with_status_2(capsys, saved, tmp_path, no_model_loading, case):
    (tmp_path / "prompts.txt").write_text("Hello\n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    (tmp_path / "BAD.JSONL").write_text('{"prompt": "ok"}\n{"prompt": \n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "empty_prompt.jsonl").write_text('{"prompt": ""}\n')
    (tmp_path / "plain.jsonl.gz").write_text(json.dumps(PAIRS[0]) + "\n")
    (tmp_path / "prompts.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "Hi"}\n'))
    write_pairs(tmp_path / "pairs.JSONL")
    command_line, message = BAD_ARGUMENTS[case]
    status, out, err = cli(capsys, command_line, saved=saved, tmp=tmp_path)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hf-genarm: error: "), err
    assert message.format(tmp=tmp_path) in err
    assert not (tmp_path / "out").exists(), "nothing is written before the arguments are checked"


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


@pytest.mark.parametrize("file_name", ["prompts.jsonl", "PROMPTS.JSONL.GZ"])
def test_generate_batch_with_two_reward_models_from_a_jsonl_file(capsys, saved, tmp_path, file_name):
    prompts_file = tmp_path / file_name
    text = "".join(json.dumps({"prompt": prompt}) + "\n" for prompt in PROMPTS[1:])
    prompts_file.write_bytes(gzip.compress(text.encode()) if file_name.endswith(".GZ") else text.encode())
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


def test_generate_with_the_chat_template_of_a_tokenizer_without_pad_token(capsys, saved):
    command_line = GENERATE.replace("/base", "/chat") + (
        "--reward-model {saved}/arm --greedy --max-new-tokens 5 --chat-template --jsonl {first} {second}"
    )
    status, out, err = cli(capsys, command_line, saved=saved, first=PROMPTS[0], second=PROMPTS[1])
    assert status == 0, err
    rendered = [f"<|user|>{prompt}\n<|assistant|>" for prompt in PROMPTS[:2]]
    tokenizer = AutoTokenizer.from_pretrained(saved / "chat")
    assert (
        tokenizer.pad_token is None
        and tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
        )
        == rendered[0]
    )
    expected = reference_completions(saved, rendered, ["arm"], 1.0, 1.0, max_new_tokens=5)
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [{"prompt": prompt, "completion": text} for prompt, text in zip(PROMPTS[:2], expected)]


def test_chat_template_option_needs_a_tokenizer_with_one(capsys, saved):
    status, out, err = cli(capsys, GENERATE + "--chat-template --greedy Hi", saved=saved)
    assert status == 2 and out == ""
    assert err.endswith(f"--chat-template: the tokenizer of {saved}/base has no chat template; drop --chat-template\n")


def test_an_adapter_whose_base_moved_is_pointed_at_it_with_adapter_base(capsys, saved, tmp_path):
    from peft import LoraConfig, get_peft_model

    shutil.copytree(saved / "base", tmp_path / "base")
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["c_attn"], init_lora_weights=False)
    adapter = get_peft_model(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), lora)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    AutoregressiveRewardModel(adapter, tokenizer=tokenizer).save_pretrained(tmp_path / "adapter", tokenizer=tokenizer)
    shutil.move(tmp_path / "base", tmp_path / "moved")
    score = "score --reward-model {tmp}/adapter --prompt Life --response ' is short' --json"
    status, out, err = cli(capsys, score, tmp=tmp_path)
    assert status == 1 and out == ""
    assert_one_line_error(err, "On the command line: --adapter-base PATH.")
    status, out, err = cli(capsys, score + " --adapter-base {tmp}/moved", tmp=tmp_path)
    assert status == 0, err
    reward_model = AutoregressiveRewardModel.from_pretrained(tmp_path / "adapter", base_model=tmp_path / "moved")
    _, rewards = hf_genarm.score_text(reward_model, tokenizer, "Life", " is short")
    assert json.loads(out)["rewards"] == pytest.approx(rewards)
    generate = "generate --base {tmp}/moved --reward-model {tmp}/adapter --greedy --max-new-tokens 3 --jsonl Life"
    assert cli(capsys, generate, tmp=tmp_path)[0] == 1
    assert cli(capsys, generate + " --adapter-base {tmp}/moved", tmp=tmp_path)[0] == 0


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
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    status, _, err = cli(capsys, "generate --base no-such-user/no-such-model Hi")
    assert status == 1
    assert_one_line_error(err, "--base no-such-user/no-such-model: Cannot load the tokenizer of")


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


def _library_output_settings():
    import datasets
    import huggingface_hub.utils
    from transformers.utils import logging

    return {
        "transformers verbosity": logging.get_verbosity(),
        "transformers bars": logging.is_progress_bar_enabled(),
        "hub bars disabled": huggingface_hub.utils.are_progress_bars_disabled(),
        "datasets bars disabled": datasets.utils.are_progress_bars_disabled(),
        "warning filters": list(warnings.filters),
    }


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_library_bars_logs_and_warnings_are_hidden_unless_verbose(capsys, saved, monkeypatch, recwarn, verbose):
    from transformers.utils import logging

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)  # the tests' conftest sets it; users usually do not
    # Start from settings a calling program might have chosen (not the libraries' defaults): they must come back.
    verbosity_before = logging.get_verbosity()
    logging.set_verbosity_info()
    try:
        before = _library_output_settings()
        during = {}
        load_tokenizer = AutoTokenizer.from_pretrained

        def chatty_load(*args, **kwargs):
            # Stands in for a deprecation in a future transformers/PEFT: warnings attributed to their code.
            during.update(_library_output_settings())
            for category, module in ((FutureWarning, "transformers.modeling_utils"), (UserWarning, "peft.tuners")):
                warnings.warn_explicit(f"{module} chatter", category, "library.py", 1, module=module)
            warnings.warn_explicit("GenARM's own warning", UserWarning, "scoring.py", 1, module="hf_genarm.scoring")
            return load_tokenizer(*args, **kwargs)

        monkeypatch.setattr(AutoTokenizer, "from_pretrained", chatty_load)
        status, out, err = cli(capsys, ("--verbose " if verbose else "") + SCORE, saved=saved)
        after = _library_output_settings()
    finally:
        logging.set_verbosity(verbosity_before)
    assert status == 0, err
    assert "total:" in out
    assert after == before, "the caller's settings come back when main returns"
    messages = [str(warning.message) for warning in recwarn]
    assert "GenARM's own warning" in messages, "only the libraries' warnings are hidden"
    library_warnings = {"transformers.modeling_utils chatter", "peft.tuners chatter"}
    if verbose:
        assert during == before
        assert "Loading weights" in err
        assert library_warnings <= set(messages)
    else:
        assert during["transformers verbosity"] == logging.ERROR
        assert not during["transformers bars"] and during["hub bars disabled"] and during["datasets bars disabled"]
        assert "Loading weights" not in err and "Warning" not in err, err
        assert not library_warnings & set(messages)


def test_train_keeps_the_trainers_progress_bar_without_verbose(capsys, saved, tmp_path):
    from transformers.utils import logging

    data = write_pairs(tmp_path / "pairs.jsonl")
    # As on a terminal: transformers' default verbosity and the Trainer's default `disable_tqdm`.
    command_line = TRAIN_RUN.replace("--disable_tqdm true ", "") + "--max_steps 2"
    verbosity_before = logging.get_verbosity()
    logging.set_verbosity_warning()
    try:
        status, _, err = cli(capsys, command_line, saved=saved, data=data, out=tmp_path / "arm")
    finally:
        logging.set_verbosity(verbosity_before)
    assert status == 0, err
    assert "2/2 [" in err, "the Trainer's bar is the run's progress"
    assert "Loading weights" not in err


@pytest.mark.parametrize(
    ("command_line", "option", "what"),
    [
        ("generate --base someorg/missing Hi", "--base", "the tokenizer"),
        ("score --reward-model someorg/missing --prompt Q --response A", "--reward-model", "the tokenizer"),
        (
            "score --reward-model {saved}/arm --base-tokenizer someorg/missing --prompt Q --response A",
            "--base-tokenizer",
            "the tokenizer",
        ),
        ("train --model someorg/missing --dataset {data} --output_dir {tmp}/out", "--model", "the model"),
    ],
)
def test_offline_hub_ids_are_named_with_hf_hub_offline(
    capsys, saved, tmp_path, monkeypatch, command_line, option, what
):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    data = write_pairs(tmp_path / "pairs.jsonl")
    status, out, err = cli(capsys, command_line, saved=saved, tmp=tmp_path, data=data)
    assert status == 1 and out == ""
    assert_one_line_error(err, f"{option} someorg/missing: Cannot load {what} of 'someorg/missing' from the Hub: ")
    assert "HF_HUB_OFFLINE is set" in err and "internet connection" not in err


# ------------------------------------------------------------------------------------------ push and demo
def test_push_offline_fails_with_the_hub_error_on_one_line(capsys, saved, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    status, out, err = cli(capsys, "push --reward-model {saved}/arm --repo-id me/arm --private", saved=saved)
    assert status == 1 and out == ""
    assert_one_line_error(err, "offline mode is enabled")


def test_push_uploads_the_saved_folder_without_loading_the_model(capsys, saved, monkeypatch, no_model_loading):
    calls = []

    def fake_push(folder, repo_id, **kwargs):
        calls.append((folder, repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr("hf_genarm.hub.push_saved_reward_model", fake_push)
    status, out, _ = cli(
        capsys,
        "push --reward-model {saved}/arm --repo-id me/arm --private --revision v1 --token hf_x --commit-message first",
        saved=saved,
    )
    assert status == 0 and out == f"pushed {saved}/arm to me/arm: https://huggingface.co/me/arm/commit/abc\n"
    assert calls == [
        (f"{saved}/arm", "me/arm", {"private": True, "revision": "v1", "token": "hf_x", "commit_message": "first"})
    ]


def test_push_checks_the_folder_before_any_upload(capsys, saved, tmp_path, monkeypatch):
    monkeypatch.setattr("hf_genarm.hub.push_saved_reward_model", pytest.fail)
    shutil.copytree(saved / "arm", tmp_path / "arm")
    os.remove(tmp_path / "arm" / "genarm_config.json")
    status, out, err = cli(capsys, "push --reward-model {tmp}/arm --repo-id me/arm", tmp=tmp_path)
    assert status == 2 and out == ""
    assert err.startswith(f"hf-genarm: error: --reward-model: {tmp_path}/arm has no genarm_config.json") and (
        err.count("\n") == 1
    )


def test_push_network_failure_is_one_line(capsys, saved, monkeypatch):
    # Nothing listens on port 9 (discard): the connection is refused at once, as when the network is down.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    status, out, err = cli(capsys, "push --reward-model {saved}/arm --repo-id me/arm --token hf_x", saved=saved)
    assert status == 1 and out == ""
    assert_one_line_error(err)


# ------------------------------------------------------------------------------------------ train
def test_training_data_sources(capsys, saved, tmp_path, no_model_loading):
    from datasets import Dataset, DatasetDict

    from hf_genarm.cli import _load_dataset

    rows = [{"prompt": "Q:", "chosen": " yes", "rejected": " no"}] * 3
    for name in ("pairs.jsonl", "PAIRS.JSONL", "pairs.jsonl.gz", "pairs.JSONL.GZ"):
        path = str(write_pairs(tmp_path / name, rows))
        assert _load_dataset(path, "train", "--dataset") == path
    Dataset.from_list(rows).to_csv(tmp_path / "pairs.csv")
    assert _load_dataset(str(tmp_path / "pairs.csv"), "train", "--dataset").to_list() == rows
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])}).save_to_disk(tmp_path / "d")
    assert _load_dataset(str(tmp_path / "d"), "test", "--eval_dataset").num_rows == 1
    status, _, err = cli(capsys, TRAIN + "--dataset {tmp}/d --split valid", saved=saved, tmp=tmp_path)
    assert status == 2 and err.endswith(
        f"hf-genarm: error: --dataset: {tmp_path}/d has no split 'valid'; choose one of ['test', 'train'] with "
        "--split\n"
    )


TRAIN_RUN = (
    "train --model {saved}/base --dataset {data} --output_dir {out} --beta_r 0.2 --per_device_train_batch_size 2 "
    "--learning_rate 1e-3 --max_length 64 --use_cpu --disable_tqdm true "
)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_saves_a_reward_model(capsys, saved, tmp_path, lora):
    # The LoRA run reads the pairs gzip-compressed, as the embedded assets ship them.
    data = write_pairs(tmp_path / ("pairs.jsonl.gz" if lora else "pairs.jsonl"))
    command_line = TRAIN_RUN + "--max_steps 2"
    if lora:
        command_line += " --lora --lora_r 4 --lora_alpha 8 --lora_target_modules c_attn"
    output_dir = tmp_path / "arm"
    status, out, err = cli(capsys, command_line, saved=saved, data=data, out=output_dir)
    assert status == 0, err
    assert out.count("saved the reward model") == 1
    assert f"saved the reward model to {output_dir}" in out
    assert json.loads((output_dir / "genarm_config.json").read_text())["beta_r"] == 0.2
    assert (output_dir / ("adapter_config.json" if lora else "model.safetensors")).is_file()
    assert AutoregressiveRewardModel.from_pretrained(output_dir).beta_r == 0.2
    assert not any(name.startswith("runs") for name in os.listdir(output_dir)), "report_to defaults to none"


def test_train_evaluates_the_eval_dataset_and_records_it(capsys, saved, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    status, out, err = cli(
        capsys,
        TRAIN_RUN + "--max_steps 1 --eval_dataset {data}",
        saved=saved,
        data=data,
        out=tmp_path / "arm",
    )
    assert status == 0, err
    metrics = json.loads((tmp_path / "arm" / "genarm_config.json").read_text())["metrics"]
    assert 0 <= metrics["eval_preference_accuracy"] <= 1
    # The held-out metrics are printed, and they are those the saved model records.
    assert "held-out metrics (--eval_dataset):" in out
    assert f"  eval_preference_accuracy: {metrics['eval_preference_accuracy']:.4f}" in out
    assert f"  eval_loss: {metrics['eval_loss']:.4f}" in out


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_train_interrupted_then_resumed_ends_with_the_weights_of_an_uninterrupted_run(
    capsys, saved, tmp_path, monkeypatch
):
    from hf_genarm.trainer import ARMTrainer

    data = write_pairs(tmp_path / "pairs.jsonl", repeat=2)
    command_line = TRAIN_RUN + "--max_steps 4 --save_steps 2 --seed 1"
    assert cli(capsys, command_line, saved=saved, data=data, out=tmp_path / "straight")[0] == 0

    training_step = ARMTrainer.training_step

    def ctrl_c_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return training_step(self, *args, **kwargs)

    monkeypatch.setattr(ARMTrainer, "training_step", ctrl_c_at_step_3)
    status, _, err = cli(capsys, command_line, saved=saved, data=data, out=tmp_path / "resumed")
    assert status == 130 and err.endswith("hf-genarm: interrupted\n")
    assert sorted(os.listdir(tmp_path / "resumed")) == ["checkpoint-2"]
    monkeypatch.setattr(ARMTrainer, "training_step", training_step)
    checkpoint = tmp_path / "resumed" / "checkpoint-2"
    status, _, err = cli(
        capsys,
        command_line + " --resume_from_checkpoint {checkpoint}",
        saved=saved,
        data=data,
        out=tmp_path / "resumed",
        checkpoint=checkpoint,
    )
    assert status == 0, err
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)
    started = _weights(checkpoint)
    assert any(not torch.equal(started[name], tensor) for name, tensor in straight.items())


@pytest.mark.slow
def test_train_killed_then_resumed_ends_with_the_weights_of_an_uninterrupted_run(capsys, saved, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", repeat=2)
    command_line = TRAIN_RUN + "--max_steps 30 --save_steps 1 --save_total_limit 2 --seed 1"
    assert cli(capsys, command_line, saved=saved, data=data, out=tmp_path / "straight")[0] == 0

    killed = tmp_path / "killed"
    argv = shlex.split(command_line.format(saved=saved, data=data, out=killed))
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # The run is niced so that, on a loaded machine, this process's polling is not starved while the run races to its
    # end: the kill must land between checkpoint 2 and the last step.
    command = ["nice", "-n", "19", sys.executable, "-m", "hf_genarm.cli", *argv]
    # Its process group is killed when the block ends, also when the wait below fails.
    with started_in_own_group(command, env=environment, stderr=subprocess.DEVNULL) as run:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoint-2" / "trainer_state.json").is_file():
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.005)
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL
    complete = [path for path in killed.glob("checkpoint-*") if (path / "trainer_state.json").is_file()]
    checkpoint = max(complete, key=lambda path: int(path.name.split("-")[1]))
    assert not (killed / "model.safetensors").exists(), "the kill should land before the end of training"
    status, _, err = cli(
        capsys,
        command_line + " --resume_from_checkpoint {checkpoint}",
        saved=saved,
        data=data,
        out=killed,
        checkpoint=checkpoint,
    )
    assert status == 0, err
    straight, resumed = _weights(tmp_path / "straight"), _weights(killed)
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


def test_train_that_fails_gives_the_signal_handlers_back(capsys, saved, tmp_path, monkeypatch):
    from hf_genarm.trainer import ARMTrainer

    def fail(self, *args, **kwargs):
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT], "training runs with its own handler"
        raise RuntimeError("the disk is full")

    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(ARMTrainer, "training_step", fail)
    data = write_pairs(tmp_path / "pairs.jsonl")
    status, _, err = cli(capsys, TRAIN_RUN + "--max_steps 2", saved=saved, data=data, out=tmp_path / "arm")
    assert status == 1 and "the disk is full" in err
    assert {number: signal.getsignal(number) for number in before} == before


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_train_stopped_by_a_signal_saves_a_loadable_model_and_a_checkpoint(saved, tmp_path, stop_signal):
    # Default saving (a checkpoint every tenth of the run) with many steps: the signal lands long before the end.
    data = write_pairs(tmp_path / "pairs.jsonl", repeat=2)
    output_dir = tmp_path / "arm"
    argv = shlex.split(
        (TRAIN_RUN + "--max_steps 100000 --logging_steps 1").format(saved=saved, data=data, out=output_dir)
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hf_genarm.cli", *argv]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    # Whatever happens, the run and its children do not outlive the test: the group is killed when the block ends,
    # and after 300 s by the watchdog, which also ends a read below that would otherwise wait for ever.
    with started_in_own_group(command, env=environment, **pipes) as run:
        watchdog = threading.Timer(300, os.killpg, (run.pid, signal.SIGKILL))
        watchdog.start()
        try:
            # With --logging_steps 1 and no progress bar, Trainer prints one line per step: stop it at the third.
            printed = [run.stdout.readline() for _ in range(3)]
            assert all("loss" in line for line in printed), printed
            run.send_signal(stop_signal)
            rest, err = run.communicate()
        finally:
            watchdog.cancel()
    out = "".join(printed) + rest
    assert run.returncode == 128 + stop_signal, err
    assert f"stopped by {stop_signal.name} after step" in out and "--resume_from_checkpoint" in out, out
    model = AutoregressiveRewardModel.from_pretrained(output_dir)
    assert model.beta_r == 0.2
    step = int(out.split("after step ")[1].split(":")[0])
    assert step > 0 and (output_dir / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert not (output_dir / "runs").exists()


@pytest.mark.parametrize(
    "environment",
    [{"WORLD_SIZE": "2"}, {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}],
    ids=["torchrun-without-backend", "accelerate-launch-cpu"],
)
def test_a_launch_whose_processes_would_each_train_alone_is_refused(
    capsys, saved, tmp_path, monkeypatch, no_model_loading, environment
):
    data = write_pairs(tmp_path / "pairs.jsonl")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    command_line = TRAIN_RUN.replace("--use_cpu ", "")
    status, out, err = cli(capsys, command_line + "--max_steps 1", saved=saved, data=data, out=tmp_path / "arm")
    assert status == 2 and out == "" and err.count("\n") == 1
    expected = "starts a single process" if "MASTER_ADDR" in environment else "each would train alone"
    assert expected in err and "--use_cpu" in err


# ------------------------------------------------------------------------------------------ serve
@pytest.fixture()
def serve_folders(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    for name in ("arm-helpful", "arm-harmless"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    return tmp_path


def test_serve_print_command_names_vllm_server_processor_and_reward_models_without_importing_vllm(
    capsys, serve_folders, monkeypatch
):
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    status, out, err = cli(
        capsys,
        "serve {base} --reward-model {helpful} --reward-model {harmless} --port 8123 --reward-dtype bfloat16 "
        "--print-command -- --dtype float32 --enforce-eager",
        base=serve_folders / "base", helpful=serve_folders / "arm-helpful", harmless=serve_folders / "arm-harmless",
    )  # fmt: skip
    assert status == 0, err
    command = shlex.split(out)
    assert command[:5] == [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(serve_folders / "base"),
    ]
    assert command[command.index("--logits-processors") + 1] == "hf_genarm.integrations.vllm:GenARMVLLMLogitsProcessor"
    settings = json.loads(command[command.index("--additional-config") + 1])
    assert settings == {
        "genarm": {
            "reward_models": {
                "arm-helpful": str(serve_folders / "arm-helpful"),
                "arm-harmless": str(serve_folders / "arm-harmless"),
            },
            "dtype": "bfloat16",
        }
    }
    assert command[-5:] == ["--port", "8123", "--dtype", "float32", "--enforce-eager"]
    assert "vllm" not in sys.modules


def test_serve_missing_reward_model_is_a_one_line_usage_error(capsys, serve_folders):
    status, _, err = cli(
        capsys, "serve {base} --reward-model {missing} --print-command",
        base=serve_folders / "base", missing=serve_folders / "no-such-arm",
    )  # fmt: skip
    assert status == 2
    assert_one_line_error(err, "--reward-model: `reward_models['no-such-arm']`: there is no folder at")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("--reward-dtype float33", "--reward-dtype: `dtype`: 'float33' is not a torch floating-point dtype"),
        ("--reward-dtype int8", "--reward-dtype: `dtype`: 'int8' is not a torch floating-point dtype"),
        ("--reward-device nonsense", "--reward-device: `device`: 'nonsense' is not a torch device"),
    ],
    ids=["unknown-dtype", "integer-dtype", "unknown-device"],
)
def test_serve_refuses_unknown_reward_dtype_and_device(capsys, serve_folders, options, expected):
    status, _, err = cli(
        capsys, "serve {base} --reward-model {arm} " + options + " --print-command",
        base=serve_folders / "base", arm=serve_folders / "arm-helpful",
    )  # fmt: skip
    assert status == 2
    assert_one_line_error(err, expected)


def test_serve_reward_model_path_under_an_existing_folder_is_not_taken_for_a_hub_id(capsys, serve_folders, monkeypatch):
    monkeypatch.chdir(serve_folders.parent)  # "<folder>/arm-helpfull": one slash, like a Hub id
    status, _, err = cli(
        capsys, "serve {base} --reward-model {typo} --print-command",
        base=serve_folders / "base", typo=f"{serve_folders.name}/arm-helpfull",
    )  # fmt: skip
    assert status == 2, "a mistyped relative folder must not pass as the Hub id 'namespace/name'"
    assert_one_line_error(err, "is a local folder, so it is not read as a Hub id")


def test_serve_without_vllm_names_the_extra_to_install(capsys, serve_folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # find_spec reports a module set to None as missing
    status, _, err = cli(
        capsys, "serve {base} --reward-model {arm}", base=serve_folders / "base", arm=serve_folders / "arm-helpful"
    )
    assert status == 1
    assert_one_line_error(err, 'from a clone of hf-genarm, `pip install -e ".[vllm]"`')


def test_serve_print_command_passes_absolute_paths(capsys, serve_folders, monkeypatch):
    monkeypatch.chdir(serve_folders)
    status, out, err = cli(capsys, "serve base --reward-model ./arm-helpful --print-command")
    assert status == 0, err
    command = shlex.split(out)
    assert command[command.index("--model") + 1] == str(serve_folders / "base")
    settings = json.loads(command[command.index("--additional-config") + 1])
    assert settings["genarm"]["reward_models"] == {"arm-helpful": str(serve_folders / "arm-helpful")}


def test_serve_mode_reaches_the_printed_command(capsys, serve_folders, monkeypatch):
    """--mode in_engine names the in-engine architecture; auto falls back beside for a model that cannot run there."""
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    llama = {"architectures": ["LlamaForCausalLM"]}
    (serve_folders / "arm-helpful" / "config.json").write_text(json.dumps(llama))

    def printed(options: str) -> list[str]:
        status, out, err = cli(
            capsys, "serve {base} --reward-model {arm} --print-command " + options,
            base=serve_folders / "base", arm=serve_folders / "arm-helpful",
        )  # fmt: skip
        assert status == 0, err
        return shlex.split(out)

    for options in ("--mode in_engine", "--mode auto"):
        command = printed(options)
        assert json.loads(command[command.index("--hf-overrides") + 1]) == {"architectures": ["GenARMForCausalLM"]}
        assert json.loads(command[command.index("--additional-config") + 1])["genarm"]["mode"] == "in_engine"
    for options in ("", "--mode beside"):
        command = printed(options)
        assert "--hf-overrides" not in command
        assert "mode" not in json.loads(command[command.index("--additional-config") + 1])["genarm"]
    (serve_folders / "arm-helpful" / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    assert "--hf-overrides" not in printed("--mode auto")
    assert "vllm" not in sys.modules


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("--mode inside", "argument --mode: invalid choice: 'inside'"),
        ("--mode in_engine --reward-device cpu", "--mode: `mode='in_engine'`: reward model 'arm-helpful'"),
        ("--mode in_engine -- --hf-overrides {{}}", "--hf-overrides after `--` would replace the in-engine"),
    ],
    ids=["unknown-mode", "in-engine-refused", "hf-overrides"],
)  # fmt: skip
def test_serve_refuses_a_mode_it_cannot_start(capsys, serve_folders, options, expected):
    (serve_folders / "arm-helpful" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    status, out, err = cli(
        capsys, "serve {base} --reward-model {arm} --print-command " + options,
        base=serve_folders / "base", arm=serve_folders / "arm-helpful",
    )  # fmt: skip
    assert status == 2 and out == ""
    assert expected in err


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("--port 70000", "--port: expected a port number from 1 to 65535, got 70000"),
        ("--port -1", "--port: expected a port number from 1 to 65535, got -1"),
        ("--port 0", "--port: expected a port number from 1 to 65535, got 0"),
        ("--port http", "--port: expected a port number from 1 to 65535, got 'http'"),
        ("-- --logits-processors my.module:Other", "--logits-processors after `--` would replace GenARM's logits"),
        ("-- --additional-config={{}}", "--additional-config after `--` would replace the reward models"),
        ("-- --additional_config {{}}", "--additional_config after `--` would replace the reward models"),
        ("-- --model other", "--model after `--` would replace the BASE argument"),
    ],
    ids=["port-too-large", "negative-port", "port-zero", "port-not-a-number", "logits-processors",
         "additional-config", "additional-config-underscore", "model"],
)  # fmt: skip
def test_serve_refuses_bad_ports_and_vllm_arguments_that_override_genarm(capsys, serve_folders, options, expected):
    status, out, err = cli(
        capsys, "serve {base} --reward-model {arm} --print-command " + options,
        base=serve_folders / "base", arm=serve_folders / "arm-helpful",
    )  # fmt: skip
    assert status == 2 and out == ""
    assert_one_line_error(err, expected)


def test_serve_refuses_a_reward_model_folder_that_holds_no_model(capsys, serve_folders):
    (serve_folders / "notes").mkdir()
    status, _, err = cli(
        capsys, "serve {base} --reward-model {notes} --print-command",
        base=serve_folders / "base", notes=serve_folders / "notes",
    )  # fmt: skip
    assert status == 2
    assert_one_line_error(err, "is not a saved model folder (no config.json or adapter_config.json)")


def test_generate_refuses_a_prompt_past_the_position_limit_before_generating(capsys, saved, monkeypatch):
    limit = AutoModelForCausalLM.from_pretrained(saved / "base").config.max_position_embeddings

    def refuse(*args, **kwargs):
        raise AssertionError("generate() must not run")

    monkeypatch.setattr("transformers.GenerationMixin.generate", refuse)
    long_prompt = " ".join(["cat"] * (limit + 5))
    status, out, err = cli(capsys, "generate --base {base} --reward-model {arm} " + shlex.quote(long_prompt),
                           base=saved / "base", arm=saved / "arm")  # fmt: skip
    assert status == 2 and out == ""
    assert_one_line_error(err, f"--base {saved / 'base'} reads at most {limit} positions, but the longest prompt has")
    # A prompt that fits, but not with the tokens asked for, is refused as well, naming --max-new-tokens.
    status, _, err = cli(capsys, f"generate --base {{base}} --max-new-tokens {limit} 'The cat'", base=saved / "base")
    assert status == 2
    assert_one_line_error(err, f"--max-new-tokens adds {limit}; shorten the prompt or lower --max-new-tokens")


def test_generate_accepts_options_spelled_with_underscores(capsys, saved):
    dashed = cli(capsys, "generate --base {base} --greedy --max-new-tokens 3 --jsonl 'The cat'", base=saved / "base")
    command_line = "generate --base {base} --greedy --max_new_tokens=3 --num_beams 1 --jsonl 'The cat'"
    underscored = cli(capsys, command_line, base=saved / "base")
    assert dashed[0] == underscored[0] == 0, underscored[2]
    assert dashed[1] == underscored[1]
    assert cli(capsys, "generate --base {base} --greedy --max_new_tokens 0 'x'", base=saved / "base")[0] == 2


def test_the_documented_command_that_trains_on_the_shipped_data_runs_as_printed(monkeypatch, tmp_path):
    from hf_genarm.assets import ASSETS_DIR

    page = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    block = page.split("**Train on the data that ships with hf-genarm.**")[1].split("```bash\n")[1].split("```")[0]
    lines = block.replace("\\\n", " ").splitlines()
    assert lines[0] == 'ASSETS=$(python -c "from hf_genarm.assets import ASSETS_DIR; print(ASSETS_DIR)")'
    (train_line,) = [line for line in lines if line.startswith("hf-genarm train ")]
    argv = shlex.split(train_line.replace("$ASSETS", str(ASSETS_DIR)))[1:]

    class TrainingReachedError(Exception):
        pass

    def trainer_reached(**kwargs):
        raise TrainingReachedError(kwargs)

    # Everything the command checks and loads before training (its files, its options) passes; training starts.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hf_genarm.trainer.ARMTrainer", trainer_reached)
    with pytest.raises(TrainingReachedError) as reached:
        main(argv)
    inputs = reached.value.args[0]
    assert inputs["model"] == str(ASSETS_DIR / "base") and inputs["args"].output_dir == "./arm-sentiment"
    assert inputs["train_dataset"].endswith("sentiment_train.jsonl.gz")
    assert inputs["eval_dataset"].endswith("sentiment_held_out.jsonl.gz")

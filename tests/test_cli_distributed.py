"""`hf-genarm train` on two CPU processes (gloo) under torchrun and accelerate launch, against one process.

Two processes with 2 pairs each must train exactly as one process with 4 pairs per step (the same global
batch): the same loss and, within float rounding, the same weights. That holds only if each process trains on its
own share of the data and the gradients are averaged, so the comparison shows the data is sharded; the output
shows the model is saved and announced once.
"""

import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch
import yaml
from process_group import run_killing_group
from safetensors.torch import load_file

from hf_genarm.cli import main
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

PAIRS = [
    {"prompt": f"Question: {topic}? Answer:", "chosen": f" {good}", "rejected": f" {bad}"}
    for topic, good, bad in [
        ("how are you", "Good, thank you!", "I hate it."),
        ("the weather", "Lovely and sunny.", "The worst."),
        ("a good book", "Any by Le Guin.", "Books bore me."),
        ("coffee or tea", "Both are lovely.", "Neither, ugh."),
        ("a walk", "Yes, gladly.", "Go away."),
        ("dinner", "Soup and bread.", "Nothing, leave."),
        ("music", "Bach, always.", "Noise, all of it."),
        ("the sea", "Calm and blue.", "Cold and grey."),
    ]
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    make_tiny_causal_lm(seed=0, hidden_size=32).save_pretrained(folder / "base")
    make_tiny_tokenizer().save_pretrained(folder / "base")
    (folder / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in PAIRS))
    return folder


def train_arguments(inputs, output_dir, pairs_per_process):
    return [
        "train",
        "--model", str(inputs / "base"),
        "--dataset", str(inputs / "pairs.jsonl"),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", str(pairs_per_process),
        "--max_steps", "2",
        # Plain SGD: Adam divides by the root of tiny second moments and so magnifies float rounding in the
        # averaged gradients (3e-5 apart after two steps here), which would hide a real difference.
        "--optim", "sgd",
        "--learning_rate", "0.5",
        "--seed", "3",
        "--use_cpu",
        "--disable_tqdm", "true",
        # Trainer gathers the loss across processes when it logs; the unlogged rest of the run is rank 0's alone.
        "--logging_steps", "1",
    ]  # fmt: skip


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_loss(output):
    [line] = [line for line in output.splitlines() if line.startswith("saved the reward model")]
    return float(line.rsplit("train loss ", 1)[1].rstrip(")"))


LAUNCHERS = {
    "torchrun": lambda port: [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
    ],
    "accelerate": lambda port: [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
    ],
}  # fmt: skip


@pytest.mark.distributed
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_two_cpu_processes_train_like_one_process_at_the_same_global_batch(inputs, tmp_path, capsys, launcher):
    if launcher == "accelerate" and shutil.which("accelerate") is None:
        pytest.fail("accelerate is a dependency of transformers' Trainer and must be installed")
    assert main(train_arguments(inputs, tmp_path / "one", pairs_per_process=4)) == 0
    one_process_loss = train_loss(capsys.readouterr().out)

    command = [*LAUNCHERS[launcher](free_port()), "-m", "hf_genarm.cli"]
    command += train_arguments(inputs, tmp_path / "two", pairs_per_process=2)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    # Two tiny ranks train in seconds; a hang (a rank waiting for a peer that died) kills both ranks at the timeout.
    run = run_killing_group(command, timeout=300, env=environment)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("saved the reward model") == 1, run.stdout
    assert train_loss(run.stdout) == pytest.approx(one_process_loss, abs=1e-4)
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    untrained = make_tiny_causal_lm(seed=0, hidden_size=32).state_dict()
    assert any(not torch.equal(one[name], untrained[name]) for name in one), "training should change the weights"


HOW_TO = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "distributed-training.md"


def _fenced(language):
    return re.findall(rf"^```{language}\n(.*?)\n```$", HOW_TO.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_how_to_configurations_are_read_by_accelerate_launch(tmp_path):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parser = launch_command_parser()
    options = {action.dest for action in parser._actions}
    launched = {}
    for index, text in enumerate(_fenced("yaml")):
        config = yaml.safe_load(text)
        for section in ("fsdp_config", "deepspeed_config"):
            unknown = set(config.get(section, {})) - options
            assert not unknown, f"{section} keys accelerate launch does not know: {unknown}"
        path = tmp_path / f"config{index}.yaml"
        path.write_text(text)
        args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "-m", "hf_genarm.cli"]))
        launched[config["distributed_type"]] = args
    fsdp, zero = launched["FSDP"], launched["DEEPSPEED"]
    assert fsdp.use_fsdp and fsdp.fsdp_state_dict_type == "FULL_STATE_DICT", "saving must gather the full weights"
    assert zero.use_deepspeed and zero.zero_stage == 3 and zero.zero3_save_16bit_model
    [deepspeed_json] = [json.loads(text) for text in _fenced("json")]
    assert deepspeed_json["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True

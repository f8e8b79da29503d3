"""The `hf-genarm` command: guided generation, token-level scoring, training and sharing of reward models.

Every subcommand checks its arguments before it loads a model: a bad argument is one line on stderr
(`hf-genarm: error: ...`) and exit status 2. Errors raised while running (a model that does not load, a Hub
error, ...) are one line too, with exit status 1; `--debug` shows their traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["build_parser", "main", "run_demo"]

PROG = "hf-genarm"
_DTYPES = ("auto", "float32", "float16", "bfloat16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_DATA_FILE_TYPES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".csv")
_SAVED_DATASET_FILES = ("dataset_dict.json", "state.json")
_MODEL_FILES = ("config.json", "adapter_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class UsageError(Exception):
    """A bad command-line argument; reported as one line with exit status 2."""


class _ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors become `UsageError`s, so that `main` reports them on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped examples of the epilogs; show defaults that mean something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        if (
            "%(default)" in help_text
            or action.nargs == 0
            or default in (None, [], argparse.SUPPRESS)
            or not action.option_strings
        ):
            return help_text
        return f"{help_text} (default: %(default)s)"


# ------------------------------------------------------------------------------------------ argument types
def _number_type(kind: type, name: str, check: Callable[[float], bool]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if not math.isfinite(value) or not check(value):
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}")
        return value

    convert.__name__ = name
    return convert


_positive_int = _number_type(int, "an integer >= 1", lambda value: value >= 1)
_positive_float = _number_type(float, "a number > 0", lambda value: value > 0)
_finite_float = _number_type(float, "a finite number", lambda value: True)
_probability = _number_type(float, "a number in (0, 1]", lambda value: 0 < value <= 1)
_dropout = _number_type(float, "a number in [0, 1)", lambda value: 0 <= value < 1)


def _device_type(text: str) -> str:
    if text == "auto":
        return text
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}") from None
    return text


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# ------------------------------------------------------------------------------------------ the parser
def _add_debug(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=default, help="Show the full traceback when a command fails."
    )


def _add_model_loading(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--device",
        type=_device_type,
        default="auto",
        help=f"Device for the {what}: auto (cuda, mps, cpu), cpu, cuda:N.",
    )
    parser.add_argument(
        "--dtype", choices=_DTYPES, default="auto", help=f"Weights dtype of the {what} (auto: as saved)."
    )


_MAIN_EPILOG = """\
examples:
  hf-genarm demo --prompts 4
  hf-genarm generate --base ./base --reward-model ./arm --alpha 1.0 --beta 0.5 "Question: how do I bake bread? Answer:"
  hf-genarm score --reward-model ./arm --prompt "Question: hi? Answer:" --response " Hello!" --html rewards.html
  hf-genarm train --model ./base --dataset pairs.jsonl --output-dir ./arm --beta-r 0.1 --epochs 1
  hf-genarm push --reward-model ./arm --repo-id your-name/my-arm

Run `hf-genarm COMMAND --help` for the options of a command.
"""

_GENERATE_EPILOG = """\
The next-token distribution is  log p_base + sum_i (alpha_i / beta) * log p_reward_i  (GenARM), to which
--temperature, --top-k and --top-p then apply. Without --reward-model the base model decodes alone.

examples:
  # one prompt, streamed to the terminal
  hf-genarm generate --base ./base --reward-model ./arm --beta 0.5 "Question: how do I bake bread? Answer:"
  # two reward models weighted 0.7 / 0.3, greedy, prompts from a file (one per line, or JSONL with "prompt")
  hf-genarm generate --base ./base --reward-model ./helpful --reward-model ./harmless \\
      --alpha 0.7 --alpha 0.3 --greedy --prompts-file prompts.jsonl --max-new-tokens 128
  # beam search, JSON Lines output
  hf-genarm generate --base ./base --reward-model ./arm --num-beams 4 --greedy --jsonl "Tell me a joke"
"""

_SCORE_EPILOG = """\
Each response token gets the reward  beta_r * log p_reward(token | prompt, earlier tokens);  they sum to the
response's reward. The response ends with EOS unless --no-eos is given.

examples:
  hf-genarm score --reward-model ./arm --prompt "Question: hi? Answer:" --response " Hello, nice to meet you!"
  hf-genarm score --reward-model ./arm --prompt "Q: ... A:" --response " ..." --html rewards.html --png rewards.png
"""

_TRAIN_EPILOG = """\
The data holds preference pairs in TRL's formats: prompt/chosen/rejected, implicit prompt (chosen/rejected),
or conversational (lists of messages, rendered with the tokenizer's chat template).

examples:
  hf-genarm train --model ./base --dataset pairs.jsonl --output-dir ./arm --beta-r 0.1 --epochs 1
  hf-genarm train --model ./base --dataset ./saved_dataset --split train --eval-dataset ./saved_dataset \\
      --eval-split test --output-dir ./arm --lora --lora-r 16 --lora-alpha 32 --lora-target-modules c_attn
  hf-genarm train --model Qwen/Qwen2.5-0.5B --dataset trl-lib/ultrafeedback_binarized --output-dir ./arm --lora
"""

_PUSH_EPILOG = """\
The folder is uploaded as saved (safetensors weights or a PEFT adapter, genarm_config.json, tokenizer and a
model card) in one commit; nothing else in the repository is deleted. Prefer `hf auth login` or the HF_TOKEN
environment variable to --token, which other users of the machine can see.

examples:
  hf-genarm push --reward-model ./arm --repo-id your-name/my-arm
  hf-genarm push --reward-model ./arm --repo-id your-org/my-arm --private --revision v1
"""

_DEMO_EPILOG = """\
Runs offline on the small models shipped with hf-genarm (a GPT-2 base trained on fortune cookies).

examples:
  hf-genarm demo
  hf-genarm demo --prompts 8 --beta 0.5 --seed 1
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the `hf-genarm` argument parser with its subcommands `demo`, `train`, `generate`, `score`, `push`.

    Parse errors raise `hf_genarm.cli.UsageError` (which `main` reports on one line) instead of exiting.

    Returns:
        `argparse.ArgumentParser`: the parser.

    Examples:

    ```python
    >>> from hf_genarm.cli import build_parser
    >>> args = build_parser().parse_args(["score", "--reward-model", "arm", "--prompt", "Q:", "--response", " A"])
    >>> args.command, args.reward_model
    ('score', 'arm')
    ```
    """
    parser = _ArgumentParser(
        prog=PROG,
        description="GenARM: reward-guided generation with autoregressive reward models (Xu et al., ICLR 2025).",
        epilog=_MAIN_EPILOG,
        formatter_class=_HelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_debug(parser, default=False)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    def add_command(name: str, help_text: str, epilog: str, handler: Callable[[argparse.Namespace], int]) -> Any:
        command = commands.add_parser(
            name, help=help_text, description=help_text, epilog=epilog, formatter_class=_HelpFormatter
        )
        # SUPPRESS keeps `hf-genarm --debug COMMAND` working: the subcommand does not reset it to False.
        _add_debug(command, default=argparse.SUPPRESS)
        command.set_defaults(handler=handler)
        return command

    from .demo import DEMO_DEFAULTS

    demo = add_command("demo", "Run the offline demo on the embedded fortune-cookie models.", _DEMO_EPILOG, run_demo)
    demo.add_argument(
        "--prompts", type=_positive_int, default=DEMO_DEFAULTS.prompts, metavar="N", help="Number of demo prompts."
    )
    demo.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=DEMO_DEFAULTS.max_new_tokens,
        metavar="N",
        help="Tokens generated per prompt.",
    )
    demo.add_argument(
        "--beta",
        type=_positive_float,
        default=DEMO_DEFAULTS.beta,
        metavar="BETA",
        help="KL strength: reward weight is alpha / beta.",
    )
    demo.add_argument("--seed", type=int, default=DEMO_DEFAULTS.seed, metavar="N", help="Random seed.")

    train = add_command("train", "Train an autoregressive reward model on preference pairs.", _TRAIN_EPILOG, _run_train)
    data = train.add_argument_group("data")
    data.add_argument(
        "--dataset",
        required=True,
        metavar="SOURCE",
        help="Preference pairs: a .jsonl/.json file (optionally .gz), a .csv file, a folder saved with "
        "Dataset.save_to_disk, or a Hub dataset id.",
    )
    data.add_argument("--split", metavar="NAME", default="train", help="Split of a Hub dataset or a saved DatasetDict.")
    data.add_argument(
        "--eval-dataset", metavar="SOURCE", help="Held-out pairs (same forms as --dataset), evaluated every epoch."
    )
    data.add_argument(
        "--eval-split", metavar="NAME", default="test", help="Split of --eval-dataset for a Hub dataset or DatasetDict."
    )
    data.add_argument(
        "--max-length", metavar="N", type=_positive_int, help="Longest prompt + response in tokens (ARMConfig's)."
    )
    data.add_argument(
        "--max-prompt-length",
        metavar="N",
        type=_positive_int,
        help="Longest prompt in tokens (ARMConfig's, or half of --max-length when smaller).",
    )
    model = train.add_argument_group("model and optimisation")
    model.add_argument(
        "--model", metavar="PATH", required=True, help="Causal LM to start from: a folder or Hub model id."
    )
    model.add_argument(
        "--output-dir", metavar="DIR", required=True, help="Folder the trained reward model is saved to."
    )
    model.add_argument(
        "--beta-r", metavar="BETA_R", type=_positive_float, help="Reward scale beta_r (ARMConfig's: 0.1, as the paper)."
    )
    model.add_argument("--epochs", metavar="N", type=_positive_float, default=1.0, help="Training epochs.")
    model.add_argument("--max-steps", metavar="N", type=_positive_int, help="Stop after this many optimiser steps.")
    model.add_argument("--learning-rate", metavar="LR", type=_positive_float, default=5e-5, help="Peak learning rate.")
    model.add_argument("--batch-size", metavar="N", type=_positive_int, default=8, help="Pairs per device per step.")
    model.add_argument(
        "--gradient-accumulation-steps", metavar="N", type=_positive_int, default=1, help="Steps per update."
    )
    model.add_argument(
        "--logging-steps", metavar="N", type=_positive_int, default=10, help="Log metrics every N steps."
    )
    model.add_argument("--seed", metavar="N", type=int, default=42, help="Random seed.")
    model.add_argument(
        "--dtype", choices=_DTYPES, default="float32", help="Dtype the model is loaded in (auto: as saved)."
    )
    lora = train.add_argument_group("LoRA")
    lora.add_argument("--lora", action="store_true", help="Train a LoRA adapter instead of the full model.")
    lora.add_argument("--lora-r", metavar="R", type=_positive_int, help="LoRA rank (default 16; needs --lora).")
    lora.add_argument(
        "--lora-alpha", metavar="ALPHA", type=_positive_float, help="LoRA scaling alpha (default 32; needs --lora)."
    )
    lora.add_argument("--lora-dropout", metavar="P", type=_dropout, help="LoRA dropout (default 0.05; needs --lora).")
    lora.add_argument(
        "--lora-target-modules",
        nargs="+",
        metavar="MODULE",
        help="Module names to adapt, e.g. q_proj v_proj (default: PEFT's choice for the architecture; needs --lora).",
    )

    generate = add_command(
        "generate",
        "Generate with a base model guided by autoregressive reward models.",
        _GENERATE_EPILOG,
        _run_generate,
    )
    generate.add_argument("prompts", nargs="*", metavar="PROMPT", help="Prompts to continue.")
    generate.add_argument(
        "--prompts-file",
        metavar="FILE",
        help="Text file with one prompt per line, or a .jsonl file with a 'prompt' per line (multi-line prompts).",
    )
    generate.add_argument(
        "--base", required=True, metavar="PATH", help="Base causal LM: a folder or Hub id (its tokenizer is used)."
    )
    generate.add_argument(
        "--reward-model",
        action="append",
        default=[],
        metavar="PATH",
        help="Autoregressive reward model (folder or Hub id); repeat for several.",
    )
    generate.add_argument(
        "--alpha",
        action="append",
        type=_finite_float,
        metavar="ALPHA",
        help="Weight of a reward model: once for all, or once per --reward-model in the same order (default 1.0).",
    )
    generate.add_argument(
        "--beta", type=_positive_float, default=1.0, metavar="BETA", help="KL strength: weights are alpha / beta."
    )
    generate.add_argument(
        "--max-new-tokens", type=_positive_int, default=64, metavar="N", help="Tokens to generate per prompt."
    )
    sampling = generate.add_mutually_exclusive_group()
    sampling.add_argument("--do-sample", dest="do_sample", action="store_true", default=True, help="Sample.")
    sampling.add_argument("--greedy", dest="do_sample", action="store_false", help="Decode greedily (or beam search).")
    generate.add_argument("--temperature", type=_positive_float, metavar="T", help="Sampling temperature.")
    generate.add_argument("--top-k", type=_positive_int, metavar="K", help="Sample among the k most likely tokens.")
    generate.add_argument("--top-p", type=_probability, metavar="P", help="Nucleus sampling probability mass.")
    generate.add_argument("--num-beams", type=_positive_int, default=1, metavar="N", help="Beams for beam search.")
    generate.add_argument(
        "--num-return-sequences", type=_positive_int, default=1, metavar="N", help="Outputs per prompt."
    )
    generate.add_argument("--seed", type=int, metavar="N", help="Random seed, for reproducible sampling.")
    generate.add_argument("--jsonl", action="store_true", help="Print one JSON object per output instead of text.")
    _add_model_loading(generate, "models")

    score = add_command(
        "score",
        "Show the token-level rewards an autoregressive reward model gives a response.",
        _SCORE_EPILOG,
        _run_score,
    )
    score.add_argument("--reward-model", required=True, metavar="PATH", help="Reward model: a folder or Hub id.")
    score.add_argument(
        "--prompt", metavar="TEXT", required=True, help="The prompt, as the reward model was trained to read it."
    )
    score.add_argument("--response", metavar="TEXT", required=True, type=_non_empty, help="The response to score.")
    score.add_argument("--no-eos", action="store_true", help="Do not append EOS (score an unfinished response).")
    score.add_argument("--html", metavar="FILE", help="Write a coloured HTML heatmap of the token rewards.")
    score.add_argument("--png", metavar="FILE", help="Write a PNG heatmap of the token rewards (needs matplotlib).")
    score.add_argument("--json", action="store_true", help="Print tokens, rewards and total as JSON.")
    _add_model_loading(score, "reward model")

    push = add_command("push", "Upload a saved reward model to the Hugging Face Hub.", _PUSH_EPILOG, _run_push)
    push.add_argument("--reward-model", required=True, metavar="PATH", help="Folder of the saved reward model.")
    push.add_argument(
        "--repo-id", metavar="ID", required=True, type=_non_empty, help="Hub repository, e.g. your-name/my-arm."
    )
    push.add_argument("--private", action="store_true", default=None, help="Create the repository as private.")
    push.add_argument("--revision", metavar="BRANCH", help="Branch to commit to (created if missing).")
    push.add_argument("--token", metavar="TOKEN", help="Hub token (default: the saved login or HF_TOKEN).")
    push.add_argument("--commit-message", metavar="TEXT", help="Commit message.")
    return parser


# ------------------------------------------------------------------------------------------ validation
def _looks_like_hub_id(value: str) -> bool:
    if not _HUB_ID.match(value) or ".." in value or "--" in value:
        return False
    # "models/base" is a Hub id unless "models" is a local folder, in which case a path was meant.
    return "/" not in value or not os.path.isdir(value.split("/")[0])


def _check_model_source(value: str, option: str) -> None:
    if os.path.isdir(value):
        if not any(os.path.isfile(os.path.join(value, name)) for name in _MODEL_FILES):
            raise UsageError(f"{option}: {value} is not a saved model folder (no config.json or adapter_config.json)")
        return
    if os.path.exists(value):
        raise UsageError(f"{option}: {value} is a file; pass the model's folder")
    if not _looks_like_hub_id(value):
        raise UsageError(f"{option}: no such folder: {value}")


def _check_output_file(value: str | None, option: str) -> None:
    if value is None:
        return
    if os.path.isdir(value):
        raise UsageError(f"{option}: {value} is a folder; pass a file name")
    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise UsageError(f"{option}: the folder {folder} does not exist")


def _read_prompts_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise UsageError(f"--prompts-file: no such file: {path}")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if not path.endswith(".jsonl"):
        return [line for line in lines if line.strip()]
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"--prompts-file: line {number} of {path} is not valid JSON ({error.msg})") from None
        prompt = row.get("prompt") if isinstance(row, dict) else row
        if not isinstance(prompt, str):
            raise UsageError(f"--prompts-file: line {number} of {path} has no string 'prompt' field")
        prompts.append(prompt)
    return prompts


def _check_device(device: str) -> None:
    if device == "auto" or device.startswith("cpu"):
        return
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device: {device} requested but CUDA is not available; use --device cpu")
    if device.startswith("mps") and not torch.backends.mps.is_available():
        raise UsageError(f"--device: {device} requested but MPS is not available; use --device cpu")


def _validate_generate(args: argparse.Namespace) -> None:
    _check_model_source(args.base, "--base")
    for path in args.reward_model:
        _check_model_source(path, "--reward-model")
    if args.alpha is None:
        args.alpha = [1.0]
    elif not args.reward_model:
        raise UsageError("--alpha needs at least one --reward-model")
    elif len(args.alpha) not in (1, len(args.reward_model)):
        raise UsageError(
            f"--alpha: got {len(args.alpha)} values for {len(args.reward_model)} reward models; give one per "
            "--reward-model or one for all"
        )
    prompts = list(args.prompts)
    if args.prompts_file is not None:
        prompts += _read_prompts_file(args.prompts_file)
    if not prompts:
        raise UsageError("no prompt given; pass prompts as arguments or with --prompts-file")
    args.prompt_list = prompts
    if not args.do_sample:
        given = [name for name in ("temperature", "top_k", "top_p") if getattr(args, name) is not None]
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"{options} only apply when sampling; drop them or remove --greedy")
    if args.num_beams > 1 and args.num_return_sequences > args.num_beams:
        raise UsageError(
            f"--num-return-sequences ({args.num_return_sequences}) cannot exceed --num-beams ({args.num_beams})"
        )
    _check_device(args.device)


def _validate_score(args: argparse.Namespace) -> None:
    _check_model_source(args.reward_model, "--reward-model")
    _check_output_file(args.html, "--html")
    _check_output_file(args.png, "--png")
    _check_device(args.device)


def _check_dataset_source(value: str, option: str) -> None:
    if os.path.isfile(value):
        if not value.lower().endswith(_DATA_FILE_TYPES):
            raise UsageError(f"{option}: {value} is not a .jsonl, .json (optionally .gz) or .csv file")
        return
    if os.path.isdir(value):
        if not any(os.path.isfile(os.path.join(value, name)) for name in _SAVED_DATASET_FILES):
            raise UsageError(f"{option}: {value} is not a folder written by Dataset.save_to_disk")
        return
    if not _looks_like_hub_id(value):
        raise UsageError(f"{option}: no such file or folder: {value}")


def _validate_train(args: argparse.Namespace) -> None:
    _check_dataset_source(args.dataset, "--dataset")
    if args.eval_dataset is not None:
        _check_dataset_source(args.eval_dataset, "--eval-dataset")
    _check_model_source(args.model, "--model")
    if os.path.isfile(args.output_dir):
        raise UsageError(f"--output-dir: {args.output_dir} is a file; pass a folder")
    if None not in (args.max_length, args.max_prompt_length) and args.max_prompt_length >= args.max_length:
        raise UsageError(
            f"--max-prompt-length ({args.max_prompt_length}) must be smaller than --max-length ({args.max_length})"
        )
    if not args.lora:
        given = [
            "--" + name.replace("_", "-")
            for name in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
            if getattr(args, name) is not None
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --lora")


def _validate_push(args: argparse.Namespace) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(args.repo_id)
    except HFValidationError as error:
        raise UsageError(f"--repo-id: {_one_line(error)}") from None
    path = args.reward_model
    if not os.path.isdir(path):
        raise UsageError(f"--reward-model: no such folder: {path} (push uploads a saved folder)")
    if not any(os.path.isfile(os.path.join(path, name)) for name in _MODEL_FILES):
        raise UsageError(f"--reward-model: {path} is not a saved model folder (no config.json or adapter_config.json)")


_VALIDATORS: dict[str, Callable[[argparse.Namespace], None]] = {
    "generate": _validate_generate,
    "score": _validate_score,
    "train": _validate_train,
    "push": _validate_push,
}


# ------------------------------------------------------------------------------------------ commands
def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _dtype_kwargs(dtype: str) -> dict[str, Any]:
    import torch

    return {"dtype": "auto" if dtype == "auto" else getattr(torch, dtype)}


@contextlib.contextmanager
def _loading(option: str, source: str) -> Iterator[None]:
    """Name the option whose model failed to load (a Hub id that is also a mistyped local path, ...)."""
    try:
        yield
    except OSError as error:
        where = "folder" if os.path.isdir(source) else "Hub id (no local folder has this name)"
        raise OSError(f"{option} {source}: cannot load this {where}: {_one_line(error)}") from error


def _load_tokenizer(path: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _print_outputs(args: argparse.Namespace, completions: list[str]) -> None:
    per_prompt = args.num_return_sequences
    for index, completion in enumerate(completions):
        prompt_index, sequence_index = divmod(index, per_prompt)
        prompt = args.prompt_list[prompt_index]
        if args.jsonl:
            record = {"prompt": prompt, "completion": completion}
            if per_prompt > 1:
                record["sequence"] = sequence_index
            print(json.dumps(record, ensure_ascii=False))
            continue
        label = f"{prompt_index + 1}" if per_prompt == 1 else f"{prompt_index + 1}.{sequence_index + 1}"
        if index:
            print()
        print(f"=== {label} ===")
        print(prompt + completion)


def _run_generate(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, TextStreamer, set_seed

    from .logits_process import GenARMLogitsProcessor
    from .modeling import AutoregressiveRewardModel

    device = _resolve_device(args.device)
    with _loading("--base", args.base):
        tokenizer = _load_tokenizer(args.base, padding_side="left")
        base = AutoModelForCausalLM.from_pretrained(args.base, **_dtype_kwargs(args.dtype)).to(device).eval()
    if tokenizer.pad_token is None and len(args.prompt_list) > 1:
        raise ValueError(f"The tokenizer of {args.base} has neither a pad nor an EOS token to pad a batch of prompts.")
    reward_models = []
    for path in args.reward_model:
        with _loading("--reward-model", path):
            reward_models.append(AutoregressiveRewardModel.from_pretrained(path, **_dtype_kwargs(args.dtype)))
    reward_models = [reward_model.to(device).eval() for reward_model in reward_models]
    inputs = tokenizer(args.prompt_list, return_tensors="pt", padding=True).to(device)
    processors = []
    if reward_models:
        alpha = args.alpha[0] if len(args.alpha) == 1 else list(args.alpha)
        processors.append(
            GenARMLogitsProcessor(
                reward_models,
                alpha=alpha,
                beta=args.beta,
                attention_mask=inputs["attention_mask"],
                tokenizer=tokenizer,
            )
        )
    generate_kwargs: dict[str, Any] = {
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.do_sample,
        "num_beams": args.num_beams,
        "num_return_sequences": args.num_return_sequences,
        "pad_token_id": tokenizer.pad_token_id,
    }
    for name in ("temperature", "top_k", "top_p"):
        if getattr(args, name) is not None:
            generate_kwargs[name] = getattr(args, name)
    stream = not args.jsonl and args.num_beams == 1 and len(args.prompt_list) * args.num_return_sequences == 1
    if stream:
        generate_kwargs["streamer"] = TextStreamer(tokenizer, skip_special_tokens=True)
    if args.seed is not None:
        set_seed(args.seed)
    with torch.no_grad():
        output = base.generate(**inputs, logits_processor=processors, **generate_kwargs)
    if not stream:
        completions = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        _print_outputs(args, completions)
    return 0


def _format_token(token: str) -> str:
    return repr(token)


def _run_score(args: argparse.Namespace) -> int:
    from .modeling import AutoregressiveRewardModel
    from .visualize import save_token_reward_heatmap_png, score_text, token_reward_heatmap_html

    device = _resolve_device(args.device)
    with _loading("--reward-model", args.reward_model):
        tokenizer = _load_tokenizer(args.reward_model)
        reward_model = AutoregressiveRewardModel.from_pretrained(args.reward_model, **_dtype_kwargs(args.dtype))
    reward_model = reward_model.to(device).eval()
    tokens, rewards = score_text(reward_model, tokenizer, args.prompt, args.response, add_eos=not args.no_eos)
    total = sum(rewards)
    if args.json:
        print(json.dumps({"tokens": tokens, "rewards": rewards, "total": total, "beta_r": reward_model.beta_r}))
    else:
        shown = [_format_token(token) for token in tokens]
        width = max(len("token"), *(len(token) for token in shown))
        print(f"{'#':>4}  {'token':<{width}}  {'reward':>10}")
        for index, (token, reward) in enumerate(zip(shown, rewards)):
            print(f"{index:>4}  {token:<{width}}  {reward:>10.4f}")
        print(f"total: {total:.4f}  ({len(tokens)} tokens, beta_r={reward_model.beta_r:g})")
    title = f"{args.reward_model}: total reward {total:.4f}"
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(token_reward_heatmap_html(tokens, rewards, title=title, full_page=True))
        print(f"wrote {args.html}", file=sys.stderr)
    if args.png:
        save_token_reward_heatmap_png(tokens, rewards, args.png, title=title)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def _load_dataset(source: str, split: str) -> Any:
    """A `datasets.Dataset`, or the path itself for JSON files (which the trainer reads row by row)."""
    import datasets

    if os.path.isfile(source):
        if source.lower().endswith(".csv"):
            return datasets.Dataset.from_csv(source)
        return source
    loaded = datasets.load_from_disk(source) if os.path.isdir(source) else datasets.load_dataset(source)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UsageError(
                f"{source} has no split {split!r}; choose one of {sorted(loaded)} with --split/--eval-split"
            )
        return loaded[split]
    return loaded


def _run_train(args: argparse.Namespace) -> int:
    from .trainer import ARMConfig, ARMTrainer

    with _loading("--dataset", args.dataset):
        train_dataset = _load_dataset(args.dataset, args.split)
    eval_dataset = None
    if args.eval_dataset is not None:
        with _loading("--eval-dataset", args.eval_dataset):
            eval_dataset = _load_dataset(args.eval_dataset, args.eval_split)
    config_kwargs: dict[str, Any] = {
        "output_dir": args.output_dir,
        "num_train_epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "logging_steps": args.logging_steps,
        "seed": args.seed,
        "report_to": "none",
        "model_init_kwargs": _dtype_kwargs(args.dtype),
        "eval_strategy": "epoch" if eval_dataset is not None else "no",
    }
    optional = {
        "beta_r": args.beta_r,
        "max_length": args.max_length,
        "max_prompt_length": args.max_prompt_length,
        "max_steps": args.max_steps,
    }
    config_kwargs.update({name: value for name, value in optional.items() if value is not None})
    default_prompt_length = ARMConfig.__dataclass_fields__["max_prompt_length"].default
    if args.max_prompt_length is None and args.max_length is not None and default_prompt_length is not None:
        # A short --max-length alone should not clash with ARMConfig's default prompt limit.
        config_kwargs["max_prompt_length"] = min(default_prompt_length, max(1, args.max_length // 2))
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=args.lora_r or 16,
            lora_alpha=args.lora_alpha or 32,
            lora_dropout=0.05 if args.lora_dropout is None else args.lora_dropout,
            target_modules=args.lora_target_modules,
        )
    config = ARMConfig(**config_kwargs)
    with _loading("--model", args.model):
        trainer = ARMTrainer(
            model=args.model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            peft_config=peft_config,
        )
    result = trainer.train()
    trainer.save_model(args.output_dir)
    print(f"saved the reward model to {args.output_dir} (train loss {result.training_loss:.4f})")
    return 0


def _run_push(args: argparse.Namespace) -> int:
    from .modeling import AutoregressiveRewardModel

    tokenizer = None
    if any(os.path.isfile(os.path.join(args.reward_model, name)) for name in _TOKENIZER_FILES):
        tokenizer = _load_tokenizer(args.reward_model)
    reward_model = AutoregressiveRewardModel.from_pretrained(args.reward_model)
    hub_kwargs = {
        name: getattr(args, name)
        for name in ("private", "revision", "token", "commit_message")
        if getattr(args, name) is not None
    }
    commit = reward_model.push_to_hub(args.repo_id, tokenizer=tokenizer, **hub_kwargs)
    print(f"pushed {args.reward_model} to {args.repo_id}: {commit}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Run `hf-genarm demo`: hand the parsed options to `hf_genarm.demo.main`.

    The demo module is imported only here, so that the other commands never load the embedded assets.

    Args:
        args (`argparse.Namespace`): Parsed options of the `demo` subcommand (`prompts`, `max_new_tokens`, `beta`,
            `seed`, `debug`).

    Returns:
        `int`: the exit status.

    Examples:

    ```python
    >>> from hf_genarm.cli import build_parser
    >>> build_parser().parse_args(["demo", "--prompts", "2"]).handler is run_demo
    True
    ```
    """
    from . import demo

    status = demo.main(args)
    return 0 if status is None else int(status)


# ------------------------------------------------------------------------------------------ entry point
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hf-genarm` command.

    Args:
        argv (`list[str]`, *optional*): Arguments without the program name; defaults to `sys.argv[1:]`.

    Returns:
        `int`: the exit status: 0 on success, 2 for a bad argument (reported before any model is loaded), 1 when
        the command fails (one line on stderr; the traceback with `--debug`), 130 when interrupted.

    Examples:

    ```python
    >>> from hf_genarm.cli import main
    >>> main(["generate", "--base", "/no/such/folder", "Hello"])
    2
    ```
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("choose a command: demo, train, generate, score or push (see hf-genarm --help)")
        validator = _VALIDATORS.get(args.command)
        if validator is not None:
            validator(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help and --version
        return exit_request.code if isinstance(exit_request.code, int) else 0
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

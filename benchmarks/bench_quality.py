"""Quality of GenARM against its baselines on held-out prompts, judged by independent judges, in one run.

Everything runs on the embedded demo assets (`hf_genarm/assets/`): the fortune base LM, the small reward
backbone, the judged preference pairs and the `arm-sentiment` / `arm-topic` autoregressive reward models.
Objective: positive sentiment, judged by VADER (`hf_genarm.demo.judges.SentimentJudge`); the topic ARM and the
MiniLM topic judge only enter the alpha sweep.

The run trains three comparison models on the same sentiment training pairs as `arm-sentiment`:

* a sequence-classifier reward model (`GPT2ForSequenceClassification`, `num_labels=1`) initialised from the
  same reward backbone as the ARM, Bradley-Terry loss, plain PyTorch loop (ARGS's reward model);
* a base-sized ARM: the base itself fine-tuned with `ARMTrainer` with the `arm-sentiment` recipe (equal-size
  GenARM; a fixed step budget shared with DPO, to fit the time budget);
* the training-time reference: the base fine-tuned with TRL's `DPOTrainer` (optional `bench` extra).

Then it decodes the held-out prompts with every method (same sampling settings, same seeds), and reports

* mean judge score with a 95% cluster-bootstrap interval (resampling prompts),
* win rate against base sampling by the judge (same prompt, same sample index; ties count one half),
* perplexity of the outputs (prompt given) under the base model,
* wall time per 128 generated tokens (decoding steps x rows kept, the reward passes included), and a separate
  timing of base, GenARM and ARGS in which every row writes 128 tokens,

plus the held-out pair accuracy of every reward model, an alpha sweep over the two ARMs scored by both judges
(plotted as a front with `hf_genarm.visualize.plot_tradeoff`), and whether the GenARM paper's claims hold here.

With `--write-docs` it writes `docs/benchmarks_quality.md`: the page's prose is this script's template, its
tables, figure and quoted numbers come from the run.

Usage::

    python benchmarks/bench_quality.py --write-docs   # full run (~18 min on 2 CPU cores), writes the docs page
    python scripts/build_demo_assets.py --stage all --quick --output-dir /tmp/a   # quick assets, ~15 s
    python benchmarks/bench_quality.py --quick --assets-dir /tmp/a   # smoke test on them, < 1 min
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import itertools
import math
import os
import pathlib
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2ForSequenceClassification, PrinterCallback

from hf_genarm import ARMConfig, ARMTrainer, AutoregressiveRewardModel, GenARMLogitsProcessor, plot_tradeoff
from hf_genarm.assets import ASSETS_DIR, default_asset_path, preference_pairs_path, read_preference_pairs
from hf_genarm.baselines import ARGSLogitsProcessor, best_of_n
from hf_genarm.data import prepare_preference_dataset
from hf_genarm.demo.judges import SentimentJudge, TopicJudge
from hf_genarm.modeling import response_log_probs
from hf_genarm.trainer import disable_dropout

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS_DIR = REPO_ROOT / "docs"
# Where `--write-docs` puts the page and its figure, relative to the docs folder.
DOCS_PAGE = pathlib.Path("benchmarks_quality.md")
FRONT_PNG = pathlib.Path("assets") / "quality_front.png"
# The ARM stage's own limits (`ARMBuildConfig` in scripts/build_demo_assets.py): every model here sees the pairs
# exactly as the ARMs did.
MAX_LENGTH, MAX_PROMPT_LENGTH = 96, 32
BOOTSTRAP_RESAMPLES = 2000
SMALL_CLASSIFIER_LABEL = "classifier RM"
BIG_CLASSIFIER_LABEL = "base-size classifier RM"


@dataclass
class Settings:
    """Sizes of one run; `--quick` shrinks all of them."""

    prompts: int = 48
    samples: int = 2
    max_new_tokens: int = 32
    batch_prompts: int = 16
    betas: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
    best_of: tuple[int, ...] = (4, 16)
    args_top_k: int = 10
    # ARGS's reward weight w multiplies a sequence reward in Bradley-Terry units, GenARM's 1/β a per-token
    # log-probability (about 1 / (β β_r) = 20 / β such units per token here), so w gets a grid of its own.
    args_weights: tuple[float, ...] = (1.0, 4.0, 16.0)
    sweep_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    # The sweep runs at the β where one ARM alone keeps the text fluent (PPL under the base below base sampling's
    # own in the main table). At β=0.5 the topic ARM alone (weight 2) pushes the text off-distribution and the
    # MiniLM score falls again at α_topic=1, so the front folds back.
    sweep_beta: float = 2.0
    dpo_learning_rate: float = 2e-4
    dpo_beta: float = 0.1
    max_train_steps: int = -1
    # The base-size ARM and DPO each get this many steps of 32 pairs (about a quarter of an epoch): the same budget for
    # both, and a run that fits in about 18 minutes on 2 cores.
    base_size_steps: int = 160
    top_p: float = 0.95
    # The speed comparison: every row writes exactly this many tokens (the paper's generation length), one batch
    # of `batch_prompts` x `samples` rows, repeated with the methods interleaved.
    speed_tokens: int = 128
    speed_repeats: int = 3

    @property
    def base_size_budget(self) -> int:
        """Training steps of every base-size model: `max_train_steps` when set, else `base_size_steps`."""
        return self.max_train_steps if self.max_train_steps > 0 else self.base_size_steps


QUICK = Settings(
    prompts=6,
    max_new_tokens=8,
    batch_prompts=6,
    betas=(1.0, 0.5),
    sweep_alphas=(0.0, 0.5, 1.0),
    max_train_steps=3,
    speed_tokens=8,
    speed_repeats=1,
    args_weights=(1.0, 4.0),
)


@dataclass
class MethodResult:
    name: str
    reward_model: str
    completions: list[list[str]]
    seconds: float
    generated_tokens: int
    scores: dict[str, list[list[float]]] = field(default_factory=dict)
    perplexity: float = float("nan")

    @property
    def seconds_per_128_tokens(self) -> float:
        return self.seconds / max(1, self.generated_tokens) * 128


# ------------------------------------------------------------------------------------------------- assets
def asset_path(assets_dir: pathlib.Path | None, name: str) -> pathlib.Path:
    if assets_dir is None:
        return default_asset_path(name)
    path = assets_dir / name
    if not path.exists():
        raise FileNotFoundError(f"Asset {name!r} is missing under {assets_dir}.")
    return path


def held_out_prompts(preferences_dir: pathlib.Path, count: int, bos_token: str) -> list[str]:
    """Unique prompts of the held-out pairs (sentiment first, then topic), then the demo prompts, with BOS."""
    import json

    prompts: list[str] = []
    for objective in ("sentiment", "topic"):
        prompts += [
            row["prompt"]
            for row in read_preference_pairs(preference_pairs_path(preferences_dir, objective, "held_out"))
        ]
    demo = json.loads((preferences_dir / "demo_prompts.json").read_text(encoding="utf-8"))["prompts"]
    prompts += [bos_token + prompt for prompt in demo]
    unique = list(dict.fromkeys(prompts))
    if len(unique) < count:
        print(f"note: only {len(unique)} held-out prompts available, using all of them")
    return unique[:count]


def read_pairs(path: pathlib.Path) -> list[dict]:
    return [{key: row[key] for key in ("prompt", "chosen", "rejected")} for row in read_preference_pairs(path)]


# ------------------------------------------------------------------------------------------------- scoring
def _right_padded(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return input_ids, mask


def _prompt_response_batch(
    examples: Sequence[tuple[list[int], list[int]]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded `prompt + response` ids, their attention mask, and a mask of the response tokens."""
    input_ids, mask = _right_padded([prompt + response for prompt, response in examples], pad)
    response_mask = torch.zeros_like(mask)
    for row, (prompt, response) in enumerate(examples):
        response_mask[row, len(prompt) : len(prompt) + len(response)] = 1
    return input_ids, mask, response_mask


@torch.no_grad()
def arm_rewards(
    reward_model: AutoregressiveRewardModel, examples: Sequence[tuple[list[int], list[int]]], pad: int
) -> torch.Tensor:
    """`beta_r * sum log pi_r(response | prompt)` of each `(prompt_ids, response_ids)`."""
    rewards = []
    for start in range(0, len(examples), 64):
        input_ids, mask, response_mask = _prompt_response_batch(examples[start : start + 64], pad)
        rewards.append(reward_model.sequence_rewards(input_ids, mask, response_mask=response_mask))
    return torch.cat(rewards) if rewards else torch.zeros(0)


def classifier_logits(model: GPT2ForSequenceClassification, sequences: Sequence[list[int]], pad: int) -> torch.Tensor:
    input_ids, mask = _right_padded(sequences, pad)
    return model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float()


@torch.no_grad()
def classifier_rewards(model: GPT2ForSequenceClassification, sequences: Sequence[list[int]], pad: int) -> torch.Tensor:
    return torch.cat([classifier_logits(model, sequences[i : i + 64], pad) for i in range(0, len(sequences), 64)])


def pair_accuracy(score: Callable[[list[tuple[list[int], list[int]]]], torch.Tensor], pairs) -> float:
    """Share of pairs whose chosen response gets a strictly higher reward than the rejected one."""
    chosen = score([(row["prompt_ids"], row["chosen_ids"]) for row in pairs])
    rejected = score([(row["prompt_ids"], row["rejected_ids"]) for row in pairs])
    return float((chosen > rejected).float().mean())


def split_prompt(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Token ids of each prompt and completion, split where the tokenizations of prompt and prompt+completion part."""
    examples = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        full = tokenizer(prompt + completion)["input_ids"]
        start = next((i for i, (a, b) in enumerate(zip(prompt_ids, full)) if a != b), min(len(prompt_ids), len(full)))
        examples.append((full[:start], full[start:]))
    return examples


@torch.no_grad()
def perplexity_under(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> float:
    """exp of the mean NLL per completion token under `model`, each completion given its prompt."""
    examples = [ex for ex in split_prompt(tokenizer, prompts, completions) if ex[1]]
    if not examples:
        return float("nan")
    total_log_prob, total_tokens = 0.0, 0
    for start in range(0, len(examples), 64):
        input_ids, mask, response_mask = _prompt_response_batch(examples[start : start + 64], tokenizer.pad_token_id)
        total_log_prob += float(response_log_probs(model, input_ids, mask, response_mask)[1].sum())
        total_tokens += int(response_mask.sum())
    return math.exp(-total_log_prob / total_tokens)


def bootstrap_mean(values: list[list[float]], seed: int) -> tuple[float, float, float]:
    """Mean over all samples and a 95% percentile interval, resampling prompts (their samples stay together)."""
    per_prompt = torch.tensor(values, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, per_prompt.shape[0], (BOOTSTRAP_RESAMPLES, per_prompt.shape[0]), generator=generator)
    means = per_prompt[picks].mean(dim=(1, 2))
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(per_prompt.mean()), low, high


def distinct_bigrams(completions: list[list[str]]) -> float:
    """Unique word bigrams / all word bigrams over a method's completions: low values flag repetitive text."""
    bigrams = [pair for texts in completions for text in texts for pair in itertools.pairwise(text.split())]
    return len(set(bigrams)) / len(bigrams) if bigrams else float("nan")


def win_values(scores: list[list[float]], baseline: list[list[float]]) -> list[list[float]]:
    return [
        [1.0 if s > b else 0.5 if s == b else 0.0 for s, b in zip(row, base_row, strict=True)]
        for row, base_row in zip(scores, baseline, strict=True)
    ]


# ------------------------------------------------------------------------------------------------- training
def train_classifier(
    backbone_dir, train_pairs, settings: Settings, recipe: dict, pad: int, seed: int, steps: int | None = None
):
    """Bradley-Terry sequence classifier from `backbone_dir`: `-log sigmoid(r(chosen) - r(rejected))`.

    It trains for the recipe's epochs, or for `steps` steps of 32 pairs when given (the base-size budget).
    """
    torch.manual_seed(seed)
    model = GPT2ForSequenceClassification.from_pretrained(backbone_dir, num_labels=1)
    model.config.pad_token_id = pad
    disable_dropout(model)
    model.train()
    batch_size = 32
    steps_per_epoch = math.ceil(len(train_pairs) / batch_size)
    total_steps = steps if steps is not None else max(1, round(recipe["num_train_epochs"] * steps_per_epoch))
    if settings.max_train_steps > 0:
        total_steps = min(total_steps, settings.max_train_steps)
    warmup = max(1, round(recipe["warmup_ratio"] * total_steps))
    # The ARM's own recipe (AdamW, epochs, peak rate, warm-up, cosine), so the two reward models differ only by loss.
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["learning_rate"], weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
        ),
    )
    order_generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(len(train_pairs), generator=order_generator).tolist(), 0
    for _ in range(total_steps):
        if cursor >= len(order):
            order, cursor = torch.randperm(len(train_pairs), generator=order_generator).tolist(), 0
        batch = [train_pairs[index] for index in order[cursor : cursor + batch_size]]
        cursor += batch_size
        sequences = [row["prompt_ids"] + row["chosen_ids"] for row in batch]
        sequences += [row["prompt_ids"] + row["rejected_ids"] for row in batch]
        rewards = classifier_logits(model, sequences, pad)
        loss = -torch.nn.functional.logsigmoid(rewards[: len(batch)] - rewards[len(batch) :]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval(), total_steps


def arm_recipe(arm_dir: pathlib.Path) -> dict:
    """The settings the `arm-sentiment` asset was trained with, from the `training_info.json` its build wrote."""
    import json

    info_path = arm_dir / "training_info.json"
    if not info_path.exists():
        raise FileNotFoundError(
            f"{info_path} is missing: the benchmark trains its base-size ARM with the asset's own recipe; rebuild the "
            "asset with `python scripts/build_demo_assets.py --stage arm-sentiment`."
        )
    config = json.loads(info_path.read_text(encoding="utf-8"))["config"]
    return {key: config[key] for key in ("beta_r", "learning_rate", "warmup_ratio", "weight_decay", "num_train_epochs")}


def base_size_training_arguments(scratch: str, settings: Settings, seed: int) -> dict:
    """`TrainingArguments` shared by the base-size ARM and DPO: the same step budget, batch, schedule and quiet run."""
    return {
        "output_dir": scratch,
        "max_steps": settings.base_size_budget,
        "per_device_train_batch_size": 32,
        "lr_scheduler_type": "cosine",
        "max_length": MAX_LENGTH,
        "eval_strategy": "no",
        "logging_strategy": "no",
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": True,
    }


def train_base_size_arm(base_dir, tokenizer, train_pairs, settings: Settings, recipe: dict, seed: int):
    """An ARM of the base's own size: the base fine-tuned with `ARMTrainer` (all weights), the small ARM's recipe."""
    with tempfile.TemporaryDirectory() as scratch:
        args = ARMConfig(
            beta_r=recipe["beta_r"],
            learning_rate=recipe["learning_rate"],
            warmup_steps=recipe["warmup_ratio"],
            max_prompt_length=MAX_PROMPT_LENGTH,
            **base_size_training_arguments(scratch, settings, seed),
        )
        trainer = ARMTrainer(
            model=AutoModelForCausalLM.from_pretrained(base_dir),
            args=args,
            train_dataset=train_pairs,
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
    return trainer.reward_model.eval(), result.global_step


def train_dpo(base_dir, tokenizer, train_pairs, settings: Settings, seed: int):
    """The base fine-tuned with TRL's DPOTrainer on the same pairs; returns (policy, reference, steps)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    with tempfile.TemporaryDirectory() as scratch:
        args = DPOConfig(
            beta=settings.dpo_beta,
            learning_rate=settings.dpo_learning_rate,
            warmup_steps=0.1,
            **base_size_training_arguments(scratch, settings, seed),
        )
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(base_dir),
            ref_model=AutoModelForCausalLM.from_pretrained(base_dir),
            args=args,
            train_dataset=Dataset.from_list(train_pairs),
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
    return trainer.model.eval(), trainer.ref_model.eval(), result.global_step


# ------------------------------------------------------------------------------------------------- decoding
def sampling_kwargs(settings: Settings, tokenizer) -> dict:
    return {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": settings.top_p,
        "top_k": 0,
        "max_new_tokens": settings.max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
    }


@torch.no_grad()
def sample_batch(model, tokenizer, batch, settings: Settings, seed: int, make_processors=None, fixed_length=False):
    """`samples` completions of each prompt of `batch`: (completions per prompt, seconds, generated tokens).

    With `fixed_length`, every row writes exactly `max_new_tokens` tokens (`min_new_tokens`, no early end).
    """
    inputs = tokenizer(batch, return_tensors="pt", padding=True)
    kwargs = sampling_kwargs(settings, tokenizer)
    if fixed_length:
        kwargs["min_new_tokens"] = settings.max_new_tokens
    torch.manual_seed(seed)
    started = time.perf_counter()
    processors = make_processors(inputs["attention_mask"]) if make_processors else []
    output = model.generate(**inputs, logits_processor=processors, num_return_sequences=settings.samples, **kwargs)
    seconds = time.perf_counter() - started
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    completions = [texts[i * settings.samples : (i + 1) * settings.samples] for i in range(len(batch))]
    return completions, seconds, new_tokens.numel()


def seconds_per_128_fixed_length(model, tokenizer, batch, settings: Settings, seed: int, make_processors=None) -> float:
    """Wall time per 128 tokens of one `generate()` call in which every row writes `speed_tokens` tokens."""
    length = settings.speed_tokens
    at_length = dataclasses.replace(settings, max_new_tokens=length)
    _, seconds, tokens = sample_batch(model, tokenizer, batch, at_length, seed, make_processors, fixed_length=True)
    rows = len(batch) * settings.samples
    if tokens != rows * length:
        raise RuntimeError(f"generate() wrote {tokens} tokens over {rows} rows, not the {length} per row asked for.")
    return seconds / tokens * 128


def time_at_fixed_length(
    base, tokenizer, batch, settings: Settings, seed: int, configurations: dict[str, Callable | None]
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Median seconds per 128 tokens of each configuration, and every repetition's timings.

    The configurations run one after the other in each repetition, in alternating order, so that noise on a
    shared machine hits all of them alike; a warm-up call of each comes first.
    """
    names = list(configurations)
    for name in names:
        seconds_per_128_fixed_length(base, tokenizer, batch, settings, seed, configurations[name])
    repetitions = []
    for repetition in range(settings.speed_repeats):
        order = names if repetition % 2 == 0 else names[::-1]
        timings = {}
        for name in order:
            timings[name] = seconds_per_128_fixed_length(base, tokenizer, batch, settings, seed, configurations[name])
        repetitions.append({name: timings[name] for name in names})
    medians = {name: statistics.median(timing[name] for timing in repetitions) for name in names}
    return medians, repetitions


def median_ratio(repetitions: list[dict[str, float]], numerator: str, denominator: str) -> float:
    """Median over repetitions of `numerator`'s time over `denominator`'s, measured side by side."""
    return statistics.median(timing[numerator] / timing[denominator] for timing in repetitions)


@torch.no_grad()
def best_of_n_batch(base, tokenizer, batch, settings: Settings, seed: int, n: int, rerankers: Sequence[Callable]):
    """Best-of-n for each (prompt, sample) of `batch`, once per reranker, all reranking the same candidates.

    Returns one `(completions per prompt, seconds, tokens)` per reranker; its seconds are the sampling plus its own
    scoring, its tokens those of the kept rows (`max_new_tokens` each: a batch of n rows rarely stops early).
    """
    rows = [prompt for prompt in batch for _ in range(settings.samples)]
    expanded = [prompt for prompt in rows for _ in range(n)]
    scoring_seconds = {}

    def first_reranker(completions):
        started = time.perf_counter()
        scores = rerankers[0](expanded, completions)
        scoring_seconds["first"] = time.perf_counter() - started
        return scores

    torch.manual_seed(seed)
    started = time.perf_counter()
    output = best_of_n(
        base, tokenizer, rows, first_reranker, n, include_prompt=False, **sampling_kwargs(settings, tokenizer)
    )
    total = time.perf_counter() - started
    results = [(output.completions, total)]
    flat = [text for candidates in output.candidates for text in candidates]
    for rerank in rerankers[1:]:
        started = time.perf_counter()
        scores = torch.as_tensor(rerank(expanded, flat)).reshape(len(rows), n)
        chosen = [output.candidates[row][int(scores[row].argmax())] for row in range(len(rows))]
        results.append((chosen, total - scoring_seconds["first"] + time.perf_counter() - started))
    per_prompt = settings.samples
    return [
        (
            [chosen[i * per_prompt : (i + 1) * per_prompt] for i in range(len(batch))],
            seconds,
            len(rows) * settings.max_new_tokens,
        )
        for chosen, seconds in results
    ]


# ------------------------------------------------------------------------------------------------- report
def quiet_libraries() -> None:
    """Keep the output to the benchmark's own lines: no progress bars, deprecation notices or trainer logs."""
    import logging
    import warnings

    import datasets

    datasets.disable_progress_bars()
    # TRL warns once per boundary where a fortune prompt's last token merges with its continuation; expected here.
    logging.getLogger("trl").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def machine_description(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        load = "n/a"
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    try:
        import trl

        versions += f", trl {trl.__version__}"
    except ImportError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} visible cores shared with other jobs (load average at start {load}), "
        f"{threads} torch thread(s), float32 CPU, Python {platform.python_version()}, {versions}"
    )


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, help="Held-out prompts (default 64; 6 with --quick).")
    parser.add_argument("--samples", type=int, help="Samples per prompt (default 2).")
    parser.add_argument("--max-new-tokens", type=int, help="Tokens per completion (default 32; 8 with --quick).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes and a few training steps: a smoke test.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-dpo", action="store_true", help="Leave out the TRL DPOTrainer reference.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a shared box).")
    parser.add_argument(
        "--assets-dir", type=pathlib.Path, help=f"Root of the demo assets (default: the package's, {ASSETS_DIR})."
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"Write the docs page {DOCS_PAGE} and its figure {FRONT_PNG} (under --docs-dir).",
    )
    parser.add_argument(
        "--docs-dir",
        type=pathlib.Path,
        default=DOCS_DIR,
        help="Docs folder that --write-docs writes into (default: the repository's docs/).",
    )
    args = parser.parse_args(argv)
    settings = copy.deepcopy(QUICK if args.quick else Settings())
    for name in ("prompts", "samples", "max_new_tokens"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    torch.set_num_threads(args.threads)
    quiet_libraries()
    random.seed(args.seed)
    run_started = time.perf_counter()
    machine = machine_description(args.threads)
    command = "python benchmarks/bench_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"machine: {machine}")

    base_dir = asset_path(args.assets_dir, "base")
    backbone_dir = asset_path(args.assets_dir, "reward-backbone")
    preferences_dir = asset_path(args.assets_dir, "preferences")
    tokenizer = AutoTokenizer.from_pretrained(base_dir, padding_side="left")
    pad = tokenizer.pad_token_id
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    arms = {
        objective: AutoregressiveRewardModel.from_pretrained(asset_path(args.assets_dir, f"arm-{objective}")).eval()
        for objective in ("sentiment", "topic")
    }
    train_rows = read_pairs(preference_pairs_path(preferences_dir, "sentiment", "train"))
    held_out_rows = read_pairs(preference_pairs_path(preferences_dir, "sentiment", "held_out"))
    limits = {"max_length": MAX_LENGTH, "max_prompt_length": MAX_PROMPT_LENGTH}
    train_pairs = list(prepare_preference_dataset(train_rows, tokenizer, **limits)[0])
    held_out_pairs = list(prepare_preference_dataset(held_out_rows, tokenizer, name="eval_dataset", **limits)[0])
    prompts = held_out_prompts(preferences_dir, settings.prompts, tokenizer.bos_token)
    judges = {"sentiment": SentimentJudge(), "topic": TopicJudge()}
    num_params = {"base": base.num_parameters(), "arm": arms["sentiment"].model.num_parameters()}
    print(
        f"{len(prompts)} held-out prompts x {settings.samples} samples, {settings.max_new_tokens} new tokens; "
        f"{len(train_pairs)} training / {len(held_out_pairs)} held-out sentiment pairs; base "
        f"{num_params['base'] / 1e6:.2f}M params, ARM {num_params['arm'] / 1e6:.2f}M"
    )

    # ---- reward models trained here on the same pairs
    timings: dict[str, float] = {}
    started = time.perf_counter()
    recipe = arm_recipe(asset_path(args.assets_dir, "arm-sentiment"))
    classifier, classifier_steps = train_classifier(backbone_dir, train_pairs, settings, recipe, pad, args.seed)
    timings["sequence classifier"] = time.perf_counter() - started
    print(f"sequence classifier: {classifier_steps} steps in {timings['sequence classifier']:.0f}s")
    started = time.perf_counter()
    big_arm, big_arm_steps = train_base_size_arm(base_dir, tokenizer, train_rows, settings, recipe, args.seed)
    timings["base-size ARM"] = time.perf_counter() - started
    print(f"base-size ARM: {big_arm_steps} steps in {timings['base-size ARM']:.0f}s")
    started = time.perf_counter()
    big_classifier, big_classifier_steps = train_classifier(
        base_dir, train_pairs, settings, recipe, pad, args.seed, steps=settings.base_size_budget
    )
    timings["base-size classifier"] = time.perf_counter() - started
    print(f"base-size classifier: {big_classifier_steps} steps in {timings['base-size classifier']:.0f}s")
    dpo_policy = dpo_reference = None
    dpo_note = "skipped with --skip-dpo"
    if not args.skip_dpo:
        try:
            started = time.perf_counter()
            dpo_policy, dpo_reference, dpo_steps = train_dpo(base_dir, tokenizer, train_rows, settings, args.seed)
            timings["DPO"] = time.perf_counter() - started
            dpo_note = f"TRL DPOTrainer, {dpo_steps} steps in {timings['DPO']:.0f}s"
        except Exception as error:  # The reference is optional: report why it is missing and go on.
            dpo_note = f"TRL DPOTrainer could not run here: {type(error).__name__}: {error}"
        print(dpo_note)

    def arm_score(model):
        return lambda examples: arm_rewards(model, examples, pad)

    def classifier_score(model):
        return lambda examples: classifier_rewards(model, [prompt + response for prompt, response in examples], pad)

    accuracy_rows = [
        (
            "ARM `arm-sentiment` (GenARM)",
            num_params["arm"],
            pair_accuracy(arm_score(arms["sentiment"]), held_out_pairs),
        ),
        (
            "sequence classifier, Bradley-Terry (ARGS RM)",
            classifier.num_parameters(),
            pair_accuracy(classifier_score(classifier), held_out_pairs),
        ),
        (
            "base-size ARM (base fine-tuned with ARMTrainer)",
            num_params["base"],
            pair_accuracy(arm_score(big_arm), held_out_pairs),
        ),
        (
            "base-size sequence classifier (from the base)",
            big_classifier.num_parameters(),
            pair_accuracy(classifier_score(big_classifier), held_out_pairs),
        ),
    ]
    if dpo_policy is not None:
        policy_arm, reference_arm = AutoregressiveRewardModel(dpo_policy), AutoregressiveRewardModel(dpo_reference)

        def dpo_implicit(examples):
            return arm_rewards(policy_arm, examples, pad) - arm_rewards(reference_arm, examples, pad)

        accuracy_rows.append(
            ("DPO implicit reward (base-size)", num_params["base"], pair_accuracy(dpo_implicit, held_out_pairs))
        )

    # ---- decoding: methods interleaved batch by batch (alternating order), so machine noise hits all alike
    def genarm(reward_models, alpha, beta):
        return lambda mask: [
            GenARMLogitsProcessor(reward_models, alpha=alpha, beta=beta, attention_mask=mask, tokenizer=tokenizer)
        ]

    def plain(model=base, make_processors=None):
        return lambda batch, seed: [sample_batch(model, tokenizer, batch, settings, seed, make_processors)]

    def rerank_arm(prompt_texts, completions):
        return arm_rewards(arms["sentiment"], split_prompt(tokenizer, prompt_texts, completions), pad)

    def rerank_classifier(prompt_texts, completions):
        sequences = [p + r for p, r in split_prompt(tokenizer, prompt_texts, completions)]
        return classifier_rewards(classifier, sequences, pad)

    small_label = f"ARM {num_params['arm'] / 1e6:.2f}M"
    big_label = f"base-size ARM {num_params['base'] / 1e6:.2f}M"
    methods = [([("base (sampling)", "-")], plain())]
    methods += [
        ([(f"GenARM β={beta:g}", small_label)], plain(make_processors=genarm(arms["sentiment"], 1.0, beta)))
        for beta in settings.betas
    ]
    methods += [
        ([(f"GenARM equal-size β={beta:g}", big_label)], plain(make_processors=genarm(big_arm, 1.0, beta)))
        for beta in settings.betas
    ]
    methods += [
        (
            [(f"best-of-{n}", small_label), (f"best-of-{n}", "classifier RM")],
            lambda batch, seed, n=n: best_of_n_batch(
                base, tokenizer, batch, settings, seed, n, [rerank_arm, rerank_classifier]
            ),
        )
        for n in settings.best_of
    ]

    def args_processors(model, weight):
        return lambda mask: [ARGSLogitsProcessor(model, weight=weight, top_k=settings.args_top_k, attention_mask=mask)]

    for classifier_label, model in ((SMALL_CLASSIFIER_LABEL, classifier), (BIG_CLASSIFIER_LABEL, big_classifier)):
        methods += [
            ([(args_label(settings, weight), classifier_label)], plain(make_processors=args_processors(model, weight)))
            for weight in settings.args_weights
        ]
    if dpo_policy is not None:
        methods.append(([("DPO policy (sampling)", "- (fine-tuned base)")], plain(model=dpo_policy)))

    results = [MethodResult(name, label, [], 0.0, 0) for labels, _ in methods for name, label in labels]
    slots = {(result.name, result.reward_model): result for result in results}
    batches = [
        prompts[start : start + settings.batch_prompts] for start in range(0, len(prompts), settings.batch_prompts)
    ]
    sample_batch(base, tokenizer, prompts[:2], settings, args.seed)  # warm-up of the generate() machinery
    decoding_started = time.perf_counter()
    for batch_index, batch in enumerate(batches):
        for labels, decode in methods if batch_index % 2 == 0 else methods[::-1]:
            for key, (completions, seconds, tokens) in zip(labels, decode(batch, args.seed + batch_index)):
                slot = slots[key]
                slot.completions += completions
                slot.seconds += seconds
                slot.generated_tokens += tokens
        print(f"decoded batch {batch_index + 1}/{len(batches)} ({time.perf_counter() - decoding_started:.0f}s)")

    for result in results:
        flat_prompts = [prompt for prompt in prompts for _ in range(settings.samples)]
        flat = [text for texts in result.completions for text in texts]
        scores = judges["sentiment"]([text.strip() for text in flat])
        result.scores["sentiment"] = [scores[i : i + settings.samples] for i in range(0, len(scores), settings.samples)]
        result.perplexity = perplexity_under(base, tokenizer, flat_prompts, flat)

    # ---- alpha sweep over the two ARMs
    sweep = []
    for alpha in settings.sweep_alphas:
        weights = [alpha, 1.0 - alpha]
        processors = genarm([arms["sentiment"], arms["topic"]], weights, settings.sweep_beta)
        flat = []
        for batch_index, batch in enumerate(batches):
            completions, _, _ = sample_batch(base, tokenizer, batch, settings, args.seed + batch_index, processors)
            flat += [text.strip() for texts in completions for text in texts]
        sweep.append((alpha, *(sum(judge(flat)) / len(flat) for judge in judges.values())))
    print(f"α sweep done ({len(settings.sweep_alphas)} points)")

    # ---- speed at a fixed length: every row writes `speed_tokens` tokens, the methods interleaved; ARGS's
    # weight only scales numbers, so one weight stands for all
    speed_weight = settings.args_weights[0]
    speed_keys = {
        "base": ("base (sampling)", "-"),
        "genarm": ("GenARM", small_label),
        "genarm_equal": ("GenARM equal-size", big_label),
        "args": (args_label(settings, speed_weight), SMALL_CLASSIFIER_LABEL),
        "args_equal": (args_label(settings, speed_weight), BIG_CLASSIFIER_LABEL),
    }
    speed_processors = {
        "base": None,
        "genarm": genarm(arms["sentiment"], 1.0, settings.betas[0]),
        "genarm_equal": genarm(big_arm, 1.0, settings.betas[0]),
        "args": args_processors(classifier, speed_weight),
        "args_equal": args_processors(big_classifier, speed_weight),
    }
    speed, speed_repetitions = time_at_fixed_length(base, tokenizer, batches[0], settings, args.seed, speed_processors)
    speed_ratios = {
        "quarter": median_ratio(speed_repetitions, "args", "genarm"),
        "base": median_ratio(speed_repetitions, "args_equal", "genarm_equal"),
    }
    print(
        f"speed at {settings.speed_tokens} tokens done: ARGS / GenARM {speed_ratios['quarter']:.2f}x (quarter size), "
        f"{speed_ratios['base']:.2f}x (base size); repetitions: {speed_repetitions}"
    )
    base_flat = [text.strip() for texts in results[0].completions for text in texts]
    base_topic = sum(judges["topic"](base_flat)) / len(base_flat)

    # ---- tables
    base_scores = results[0].scores["sentiment"]
    main_rows, summary = [], {}
    for result in results:
        mean, low, high = bootstrap_mean(result.scores["sentiment"], args.seed)
        win, win_low, win_high = bootstrap_mean(win_values(result.scores["sentiment"], base_scores), args.seed)
        summary[(result.name, result.reward_model)] = {
            "win": win,
            "mean": mean,
            "perplexity": result.perplexity,
            "seconds": result.seconds_per_128_tokens,
        }
        main_rows.append(
            (
                result.name,
                result.reward_model,
                f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]",
                "-" if result is results[0] else f"{100 * win:.1f}% [{100 * win_low:.0f}, {100 * win_high:.0f}]",
                fmt(result.perplexity, 1),
                fmt(distinct_bigrams(result.completions), 2),
                fmt(result.seconds_per_128_tokens, 3),
            )
        )
    main_table = markdown_table(
        (
            "method",
            "reward model",
            "VADER mean [95% CI]",
            "win rate vs base [95% CI]",
            "PPL under base",
            "distinct-2",
            "s / 128 tokens",
        ),
        main_rows,
    )
    accuracy_table = markdown_table(
        ("reward model", "params", "held-out pair accuracy"),
        [(name, f"{params / 1e6:.2f}M", f"{100 * accuracy:.1f}%") for name, params, accuracy in accuracy_rows],
    )
    speed_table = markdown_table(
        ("method", "reward model", "s / 128 tokens", "vs base", "every repetition"),
        [
            (
                *speed_keys[name],
                fmt(speed[name], 3),
                f"{median_ratio(speed_repetitions, name, 'base'):.2f}x",
                ", ".join(fmt(timing[name], 3) for timing in speed_repetitions),
            )
            for name in speed_keys
        ],
    )
    sweep_table = markdown_table(
        ("α sentiment / α topic", "VADER mean", "topic (MiniLM) mean"),
        [("base (no guidance)", f"{summary_mean(base_scores):+.3f}", f"{base_topic:+.3f}")]
        + [(f"{alpha:g} / {1 - alpha:g}", f"{s:+.3f}", f"{t:+.3f}") for alpha, s, t in sweep],
    )
    with tempfile.TemporaryDirectory() as scratch:
        front_path = args.docs_dir / FRONT_PNG if args.write_docs else pathlib.Path(scratch) / "front.png"
        front_path.parent.mkdir(parents=True, exist_ok=True)
        plot_tradeoff(
            [(s, t) for _, s, t in sweep] + [(summary_mean(base_scores), base_topic)],
            [f"α={alpha:g}" for alpha, _, _ in sweep] + ["base"],
            front_path,
            series=["GenARM, two ARMs"] * len(sweep) + ["base sampling"],
            xlabel="sentiment (VADER compound, mean)",
            ylabel="topic (MiniLM cosine, mean)",
            title=f"GenARM α sweep, β={settings.sweep_beta:g}, {len(prompts)} held-out prompts",
        )
    claims, also_measured = check_claims(accuracy_rows, summary, settings, sweep, dpo_policy is not None, speed_ratios)
    total_seconds = time.perf_counter() - run_started

    by_label = {label: value for (label, _), value in summary.items()}
    weak_rows = []
    for beta in settings.betas:
        small, big = by_label[f"GenARM β={beta:g}"], by_label[f"GenARM equal-size β={beta:g}"]
        weak_rows.append(
            (
                f"{beta:g}",
                f"{100 * small['win']:.1f}% / {small['mean']:+.3f} / {small['seconds']:.3f}",
                f"{100 * big['win']:.1f}% / {big['mean']:+.3f} / {big['seconds']:.3f}",
            )
        )
    weak_table = markdown_table(
        (
            "β (α=1)",
            f"{small_label} guiding the base: win / VADER / s per 128",
            f"{big_label} guiding the base: win / VADER / s per 128",
        ),
        weak_rows,
    )
    shown = {"GenARM β=1", "GenARM equal-size β=1", args_label(settings, settings.args_weights[0]), "best-of-16"}
    example_methods = [results[0], *(r for r in results[1:] if r.name in shown or r.name.startswith("DPO"))]
    examples = []
    for index in range(min(3, len(prompts))):
        lines = [f"Prompt: `{prompts[index].removeprefix(tokenizer.bos_token)!r}`", ""]
        for result in example_methods:
            lines.append(f"- {result.name} ({result.reward_model}): `{result.completions[index][0]!r}`")
        examples.append("\n".join(lines))
    report = "\n\n".join(
        [
            "### Held-out pair accuracy (sentiment pairs)\n\n" + accuracy_table,
            "### Sentiment objective, judged by VADER\n\n" + main_table,
            f"### Speed: {settings.speed_tokens} new tokens per row\n\n" + speed_table,
            "### Weak-to-strong: a quarter-size ARM against a base-size ARM\n\n" + weak_table,
            f"### α sweep over `arm-sentiment` and `arm-topic` (β={settings.sweep_beta:g})\n\n" + sweep_table,
            "### The paper's claims, checked in its settings\n\n" + "\n".join(f"- {line}" for line in claims),
            "### Also measured, in other settings than the paper's\n\n"
            + "\n".join(f"- {line}" for line in also_measured),
            "### Example outputs (first sample of the first prompts)\n\n" + "\n\n".join(examples),
        ]
    )
    print()
    print(report)
    print(f"\nDPO: {dpo_note}")
    print(f"total wall time {total_seconds / 60:.1f} min")
    if args.write_docs:
        steps = {
            "sequence classifier": classifier_steps,
            "base-size ARM": big_arm_steps,
            "base-size classifier": big_classifier_steps,
        }
        assets_label = "hf_genarm/assets" if args.assets_dir is None else str(args.assets_dir)
        write_docs(
            args.docs_dir / DOCS_PAGE,
            command,
            machine,
            settings,
            prompts,
            report,
            dpo_note,
            recipe,
            steps,
            timings,
            total_seconds,
            assets_label,
            num_params["base"],
            choice_bullets(summary, settings, speed_ratios, dpo_note),
        )
        print(f"wrote {args.docs_dir / DOCS_PAGE} and {front_path}")


def summary_mean(values: list[list[float]]) -> float:
    flat = [value for row in values for value in row]
    return sum(flat) / len(flat)


def accuracy_line(arm_row, classifier_row) -> tuple[bool, str]:
    arm_accuracy, classifier_accuracy = arm_row[2], classifier_row[2]
    gap = 100 * (arm_accuracy - classifier_accuracy)
    return gap >= -2, (
        f"ARM {100 * arm_accuracy:.1f}% vs classifier {100 * classifier_accuracy:.1f}%, {gap:+.1f} points"
    )


def args_label(settings: Settings, weight: float) -> str:
    return f"ARGS k={settings.args_top_k} w={weight:g}"


def args_line(args_runs, genarm_runs, speed_ratio: float, settings: Settings) -> tuple[bool, str]:
    """Whether some GenARM run beats ARGS's best win rate over its weights while ARGS takes >= 5x its time.

    `args_runs` maps ARGS's weight w, `genarm_runs` GenARM's β, to the run's summary (`win`, `seconds`).
    """
    best_weight = max(args_runs, key=lambda weight: args_runs[weight]["win"])
    best_args = args_runs[best_weight]
    beating = [beta for beta, value in genarm_runs.items() if value["win"] > best_args["win"]]
    best_beta = max(genarm_runs, key=lambda beta: genarm_runs[beta]["win"])
    holds = bool(beating) and speed_ratio >= 5
    short_run = ", ".join(
        f"β={beta:g}: {best_args['seconds'] / value['seconds']:.1f}x" for beta, value in genarm_runs.items()
    )
    every_weight = ", ".join(f"w={weight:g} {100 * value['win']:.1f}%" for weight, value in args_runs.items())
    return holds, (
        f"ARGS's best win rate {100 * best_args['win']:.1f}% at w={best_weight:g} ({every_weight}), best GenARM "
        f"{100 * genarm_runs[best_beta]['win']:.1f}% at β={best_beta:g}, GenARM ahead at "
        f"β={', '.join(f'{b:g}' for b in beating) or 'none'}; ARGS time / GenARM time at {settings.speed_tokens} "
        f"tokens per row {speed_ratio:.2f}x (in the {settings.max_new_tokens}-token quality runs, ARGS w="
        f"{best_weight:g}: {short_run})"
    )


def verdict(holds: bool) -> str:
    return "holds" if holds else "does not hold"


def check_claims(
    accuracy_rows, summary, settings: Settings, sweep, has_dpo: bool, speed_ratios: dict[str, float]
) -> tuple[list[str], list[str]]:
    """The paper's claims checked in its settings, and the same comparisons in the other settings measured here.

    The paper compares an ARM and a classifier trained to the end on the same backbone, and ARGS and GenARM with
    reward models of the base's size; those settings are the claims' own. The base-size accuracy (a step budget
    shared with DPO, about a quarter of an epoch) and ARGS with quarter-size reward models are reported beside them.
    """
    claims, also = [], []
    holds, evidence = accuracy_line(accuracy_rows[0], accuracy_rows[1])
    claims.append(
        f"ARM accuracy within 2 points of the classifier, or better (the shipped ARM and a classifier on its "
        f"backbone, both trained to the end with the same recipe): {verdict(holds)} ({evidence})"
    )
    holds, evidence = accuracy_line(accuracy_rows[2], accuracy_rows[3])
    also.append(
        f"ARM accuracy within 2 points of the classifier, base-size backbone after the shared "
        f"{settings.base_size_budget}-step budget: {verdict(holds)} ({evidence})"
    )
    by_label = {label: value for (label, _), value in summary.items()}
    genarm = {beta: by_label[f"GenARM β={beta:g}"] for beta in settings.betas}
    best_beta = max(genarm, key=lambda beta: genarm[beta]["win"])
    best = genarm[best_beta]
    base_perplexity = next(iter(summary.values()))["perplexity"]
    claims.append(
        f"GenARM win rate >= 70% at some β: {verdict(best['win'] >= 0.7)} "
        f"(best {100 * best['win']:.1f}% at β={best_beta:g}, {100 * (best['win'] - 0.7):+.1f} points; "
        f"PPL under base there {best['perplexity']:.1f}, base sampling's own {base_perplexity:.1f}; every β: "
        + ", ".join(
            f"β={beta:g} {100 * value['win']:.1f}% (PPL {value['perplexity']:.1f})" for beta, value in genarm.items()
        )
        + ")"
    )
    equal = {beta: by_label[f"GenARM equal-size β={beta:g}"] for beta in settings.betas}

    def args_runs(classifier_label):
        return {weight: summary[(args_label(settings, weight), classifier_label)] for weight in settings.args_weights}

    holds, evidence = args_line(args_runs(BIG_CLASSIFIER_LABEL), equal, speed_ratios["base"], settings)
    claims.append(
        f"GenARM beats ARGS-k{settings.args_top_k}'s win rate while >= 5x faster (reward models of the base's size, "
        f"as in the paper): {verdict(holds)} ({evidence})"
    )
    holds, evidence = args_line(args_runs(SMALL_CLASSIFIER_LABEL), genarm, speed_ratios["quarter"], settings)
    also.append(
        f"GenARM beats ARGS-k{settings.args_top_k}'s win rate while >= 5x faster, reward models of a quarter of the "
        f"base's size: {verdict(holds)} ({evidence})"
    )
    best_equal_beta = max(equal, key=lambda beta: equal[beta]["win"])
    if has_dpo:
        dpo = next(value for (label, _), value in summary.items() if label.startswith("DPO"))
        difference = 100 * (equal[best_equal_beta]["win"] - dpo["win"])
        claims.append(
            f"equal-size GenARM within 5 points of DPO's win rate, or better: {verdict(difference >= -5)} "
            f"(best GenARM equal-size β={best_equal_beta:g}: {100 * equal[best_equal_beta]['win']:.1f}% vs DPO "
            f"{100 * dpo['win']:.1f}%, {difference:+.1f} points)"
        )
    else:
        claims.append("equal-size GenARM within 5 points of DPO's win rate, or better: not measured (no DPO run)")
    sentiments, topics = [s for _, s, _ in sweep], [t for _, _, t in sweep]
    sentiment_ok = all(b >= a for a, b in itertools.pairwise(sentiments))
    topic_ok = all(b <= a for a, b in itertools.pairwise(topics))
    claims.append(
        f"α sweep monotone in both judges: {verdict(sentiment_ok and topic_ok)} "
        f"(VADER {'monotone' if sentiment_ok else 'not monotone'} as α_sentiment rises: "
        f"{', '.join(f'{s:+.3f}' for s in sentiments)}; topic {'monotone' if topic_ok else 'not monotone'}: "
        f"{', '.join(f'{t:+.3f}' for t in topics)})"
    )
    return claims, also


def percent_range(values: Sequence[float]) -> str:
    return f"{100 * min(values):.0f}-{100 * max(values):.0f}%"


def choice_bullets(summary, settings: Settings, speed_ratios: dict[str, float], dpo_note: str) -> str:
    """The page's "What it means for your choice": the same sentences in every run, the numbers of this one.

    The sentences only state what the run measured side by side; which way the numbers point is left to them.
    """
    by_name = {name: value for (name, _), value in summary.items()}  # unique except best-of-N's two rerankers
    base = next(iter(summary.values()))
    small = {beta: by_name[f"GenARM β={beta:g}"] for beta in settings.betas}
    equal = {beta: by_name[f"GenARM equal-size β={beta:g}"] for beta in settings.betas}
    by_the_arm = {
        n: value
        for (name, label), value in summary.items()
        for n in settings.best_of
        if name == f"best-of-{n}" and label != SMALL_CLASSIFIER_LABEL
    }
    largest_n = max(settings.best_of)
    by_arm = by_the_arm[largest_n]
    by_classifier = summary[(f"best-of-{largest_n}", SMALL_CLASSIFIER_LABEL)]

    def best_args(classifier_label):
        return max(summary[(args_label(settings, weight), classifier_label)]["win"] for weight in settings.args_weights)

    def best_win(runs):
        return max(value["win"] for value in runs.values())

    def peak(runs):
        return max(runs, key=lambda beta: runs[beta]["mean"])

    first, last = settings.betas[0], settings.betas[-1]
    genarm_wins = percent_range([value["win"] for value in small.values()])
    reranked_wins = percent_range([value["win"] for value in by_the_arm.values()])
    bullets = [
        "*GenARM or best-of-N with the same ARM?* Against base sampling, GenARM won "
        f"{genarm_wins} of the comparisons (β={first:g} to {last:g}) and best-of-N reranked by the same ARM "
        f"{reranked_wins}. GenARM costs one reward pass per token, best-of-N N full samples per kept answer.",
        "*Scoring whole responses with an ARM* (best-of-N, or ranking any candidates): the sequence reward is "
        "`beta_r` times a **sum** of log-probabilities, so it favours short answers (see best-of-"
        f"{largest_n} by the ARM in the examples at the end: it won {100 * by_arm['win']:.1f}% against base "
        f"sampling, best-of-{largest_n} by the classifier {100 * by_classifier['win']:.1f}%). Rank by the mean "
        "per-token reward instead: `best_of_n(..., length_normalized=True)` or "
        '`AutoregressiveRewardModel.sequence_rewards(..., normalize="mean")`. GenARM\'s own decoding keeps the '
        "paper's sum (it works token by token, so length does not enter).",
        "*GenARM or ARGS?* With reward models of the base's size (the paper's setting) GenARM's best win rate was "
        f"{100 * best_win(equal):.1f}% against ARGS's {100 * best_args(BIG_CLASSIFIER_LABEL):.1f}% (at its best "
        f"weight), and ARGS took {speed_ratios['base']:.1f} times GenARM's time at {settings.speed_tokens} tokens; "
        f"with reward models a quarter of the base's size, {100 * best_win(small):.1f}% against "
        f"{100 * best_args(SMALL_CLASSIFIER_LABEL):.1f}%, and {speed_ratios['quarter']:.1f} times.",
    ]
    dpo = [value for (name, _), value in summary.items() if name.startswith("DPO")]
    measured = (
        f"With an ARM of the base's size GenARM's best win rate here was {100 * best_win(equal):.1f}%, DPO's "
        f"{100 * dpo[0]['win']:.1f}%."
        if dpo
        else f"This run has no DPO numbers ({dpo_note})."
    )
    bullets.append(
        "*GenARM or DPO?* DPO changes the base's weights for one objective; GenARM keeps the base frozen and mixes "
        f"objectives at decoding time (the α sweep). {measured}"
    )
    bullets.append(
        "*How strong (β)?* Smaller β pulls harder. The judge's score peaked at "
        f"β={peak(small):g} with the quarter-size ARM and at β={peak(equal):g} with the base-size one. The base's "
        "perplexity of the text (PPL under base) rises as the text drifts off the base's distribution: with the "
        f"quarter-size ARM it went from {small[first]['perplexity']:.1f} at β={first:g} to "
        f"{small[last]['perplexity']:.1f} at β={last:g} (base sampling: {base['perplexity']:.1f}). Start at β=1 "
        "and watch the text."
    )
    return "\n".join(f"- {bullet}" for bullet in bullets)


def write_docs(
    page_path: pathlib.Path,
    command,
    machine,
    settings: Settings,
    prompts,
    report,
    dpo_note,
    recipe,
    steps,
    timings,
    total_seconds,
    assets_label,
    base_parameters: int,
    choices: str,
) -> None:
    """Write the docs page: the prose is this template, the tables and numbers come from the run."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    training = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items())
    weights = ", ".join(f"{weight:g}" for weight in settings.args_weights)
    per_token = 1 / recipe["beta_r"]
    # The run time a user should expect, rounded up to 5 minutes: the machine is shared, so runs vary.
    minutes = max(5, 5 * math.ceil(total_seconds / 300))
    page = f"""# Quality: GenARM against best-of-N, ARGS and DPO

**What was measured.** On the models that ship with the package (a {base_parameters / 1e6:.2g}M-parameter
fortune-cookie GPT-2 as the base, reward models trained on its own samples ranked by VADER sentiment and by MiniLM
topic closeness), each method generates for {len(prompts)} held-out prompts and an independent judge (VADER,
MiniLM) scores the text: GenARM at several strengths β, with a reward model a quarter of the base's size and one
of the base's size; best-of-N reranking; ARGS (reward-guided search with a sequence classifier); and a DPO
fine-tune of the base.

**How to reproduce.** One command, offline, about {minutes} minutes on {os.cpu_count()} CPU cores; it rewrites
this page's tables and figure:

<!-- skip-test: shell command -->
```bash
{command}
```

**What it means for your choice.**

{choices}

**The ARGS baseline** (`hf_genarm.baselines`) was run beside the released ARGS code on the same models: same
top-k candidates and the same scores, with one difference. A candidate equal to the reward model's pad id (the
EOS token on these models) is scored by this package with the prefix's reward, while the released code, from
its second step on, scores the token itself.

## The last run

- Machine: {machine}.
- Run: {stamp}, total wall time {total_seconds / 60:.1f} min (training here: {training}).
- Assets (`{assets_label}`): the fortune base LM, the reward backbone (a quarter of the base's parameters)
  and the `arm-sentiment` / `arm-topic` ARMs trained on its pairs judged by VADER and MiniLM.
- Prompts: {len(prompts)} held-out prompts (openings of held-out fortunes that no model trained on) x
  {settings.samples} samples, {settings.max_new_tokens} new tokens, sampling with temperature 1, top-p
  {settings.top_p}, the same seed per batch for every method.

## How to read the tables

- **VADER mean**: mean compound sentiment of the completions (prompt excluded), in [-1, 1]; the interval
  is a 95% percentile bootstrap over prompts (a prompt's samples are resampled together).
- **Win rate vs base**: share of (prompt, sample index) where the method's completion scores higher than
  base sampling's, ties counting one half (VADER gives many neutral texts exactly 0, so ties are common).
- **PPL under base**: perplexity of the completions given their prompts under the base model (re-tokenized
  text), a proxy for fluency / distance from the base.
- **s / 128 tokens** (quality table): wall time of decoding (reward passes and reranking included) per 128
  generated tokens of the {settings.max_new_tokens}-token runs, {settings.batch_prompts} prompts x
  {settings.samples} samples per `generate()` call; for best-of-N only the returned rows count, so N samples are
  paid per kept completion. The machine is shared: timings are noisy.
- **Speed table**: one batch ({settings.batch_prompts} prompts x
  {settings.samples} samples) in which every row writes exactly {settings.speed_tokens} tokens
  (`min_new_tokens`), the paper's generation length; {settings.speed_repeats} repetitions
  after a warm-up, the methods interleaved in alternating order; the medians, and ratios as medians of the
  per-repetition ratios. ARGS's cost per token grows with the prefix (it copies the prefix cache k times each
  step), so a short run understates it.
- **Reward models**: GenARM uses the `arm-sentiment` ARM (α=1) or an ARM of the base's own size: the base
  fine-tuned here with `ARMTrainer` on the same pairs with the `arm-sentiment` recipe (β_r={recipe["beta_r"]:g},
  lr {recipe["learning_rate"]:g}, cosine) but {steps["base-size ARM"]} steps of 32 pairs, the same budget as DPO, to
  fit the time budget; best-of-N reranks the same candidates by the ARM's sequence reward
  (\\(\\beta_r \\sum \\log \\pi_r\\)) or by the classifier; ARGS (stochastic, k={settings.args_top_k}) uses a
  `GPT2ForSequenceClassification` reward model (`num_labels=1`) initialised from the same reward backbone as the
  ARM and trained here on the same pairs with a Bradley-Terry loss and the ARM's own recipe
  ({recipe["num_train_epochs"]:g} epochs, lr {recipe["learning_rate"]:g}, cosine), {steps["sequence classifier"]}
  steps.
- **ARGS's weight w** gets its own grid ({weights}): w scales a sequence reward in Bradley-Terry units, while
  GenARM's 1/β scales a per-token log-probability, about 1 / (β β_r) = {per_token:g} / β such units per token.
  The comparisons below use ARGS's best weight.
- **DPO**: {dpo_note} (32 pairs per step); β={settings.dpo_beta:g}, lr {settings.dpo_learning_rate:g}, cosine.
- **Weak-to-strong**: the `GenARM β=...` rows are a reward model of a quarter of the base's size guiding the
  base; the `GenARM equal-size` rows the base-sized ARM.
- **ARGS at two sizes**: the `classifier RM` rows use the classifier above (a quarter of the base's size, like
  `arm-sentiment`); the `base-size classifier RM` rows a `GPT2ForSequenceClassification` initialised from the
  base itself and trained on the same pairs for {steps["base-size classifier"]} steps of 32 pairs, the base-size
  ARM's budget. Compare each with the GenARM rows whose reward model has its size: the paper's setting is the
  base-size one (a 7B reward model beside a 7B base).
- **What ARGS costs**: ARGS scores its k={settings.args_top_k} candidates as one batched one-token pass of the
  classifier over k copies of its prefix cache (as the released ARGS code does), so a step costs one base pass plus
  k reward rows, where GenARM pays one base pass plus one reward row. The k-fold work only shows when the reward
  model's rows cost something beside the base's step: with the quarter-size classifier on a CPU it is cheap, with
  the base-size one it weighs k times the base's own layers. With equal sizes the ratio tends to (1 + k) / 2 = \
{(1 + settings.args_top_k) / 2:g}
  when the models' work dominates `generate()`'s own per-step work (sampling, top-p, bookkeeping), which both
  methods pay alike.
- **The paper's claims**: each is checked in the setting the paper reports it for (an ARM and a classifier
  trained to the end on one backbone; ARGS and GenARM with reward models of the base's size). The same
  comparisons in the other settings this run measures are listed after them.
- **The α sweep** runs at β={settings.sweep_beta:g}, where one ARM alone keeps the text fluent (PPL under the base
  below base sampling's own in the table above). At stronger guidance (β=0.5) the topic ARM alone pushed the text
  off-distribution and its MiniLM score fell again at α_topic=1.

{report}

![α sweep front]({FRONT_PNG.as_posix()})
"""
    page_path.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    main()

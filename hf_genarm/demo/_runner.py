"""The demo itself: load the embedded models, sample with and without guidance, judge, print (see `hf_genarm.demo`)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import TextIO

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TopKLogitsWarper, set_seed
from transformers.utils import logging

from ..assets import default_asset_path
from ..configuration import validate_positive_length
from ..logits_process import GenARMLogitsProcessor
from ..modeling import AutoregressiveRewardModel, response_log_probs
from .judges import SentimentJudge, TopicJudge
from .settings import DEMO_BASE_TOP_K, DEMO_METHODS, DEMO_TOP_P, DemoMethod, DemoOptions

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


@dataclasses.dataclass
class _MethodRun:
    method: DemoMethod
    continuations: list[str]
    sentiment: list[float]
    topic: list[float]
    distinct_bigrams: list[float]
    base_perplexity: float
    seconds: float


def _load_demo_prompts(count: int) -> list[str]:
    prompts = json.loads(default_asset_path("preferences/demo_prompts.json").read_text(encoding="utf-8"))["prompts"]
    if count > len(prompts):
        raise ValueError(f"`--prompts` asks for {count} prompts but the demo ships {len(prompts)}; ask for fewer.")
    return prompts[:count]


def _generated_mask(generated: torch.Tensor, eos: int) -> torch.Tensor:
    """True on generated tokens up to and including the first EOS (later columns are padding)."""
    is_eos = (generated == eos).long()
    return (is_eos.cumsum(-1) - is_eos) == 0


@torch.no_grad()
def _continuation_perplexity(
    base: torch.nn.Module, sequences: torch.Tensor, prompt_mask: torch.Tensor, eos: int
) -> float:
    """Perplexity, under the base model, of all the generated tokens of a batch."""
    generated_mask = _generated_mask(sequences[:, prompt_mask.shape[1] :], eos)
    attention_mask = torch.cat([prompt_mask.bool(), generated_mask], dim=1).long()
    response_mask = torch.cat([torch.zeros_like(prompt_mask, dtype=torch.bool), generated_mask], dim=1)
    _, summed = response_log_probs(base, sequences, attention_mask, response_mask)
    return math.exp(-summed.sum().item() / max(1, int(generated_mask.sum())))


def _distinct_bigrams(generated: torch.Tensor, eos: int) -> list[float]:
    """Per row, the fraction of distinct token bigrams among the generated ones (1.0 = no repetition)."""
    fractions = []
    for row, mask in zip(generated.tolist(), _generated_mask(generated, eos).tolist()):
        tokens = [token for token, keep in zip(row, mask) if keep]
        bigrams = list(itertools.pairwise(tokens))
        fractions.append(len(set(bigrams)) / len(bigrams) if bigrams else 1.0)
    return fractions


def _display(text: str) -> str:
    """One line of terminal-safe text: line breaks shown as ` / `, control characters dropped."""
    text = _UNPRINTABLE.sub("", text.replace("\t", " "))
    return " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _print_prompt_block(
    index: int, total: int, prompt: str, runs: Sequence[_MethodRun], width: int, stream: TextIO
) -> None:
    label_width = max(len(run.method.name) for run in runs)
    header = f'[{index + 1}/{total}] "{_display(prompt)}" '.ljust(width, "-")
    print(header, file=stream)
    prefix_width = label_width + len("  VADER +0.00  topic +0.00  ")
    for run in runs:
        prefix = (
            f"  {run.method.name:<{label_width}}  VADER {run.sentiment[index]:+.2f}  topic {run.topic[index]:+.2f}  "
        )
        body = "..." + _display(run.continuations[index])
        lines = textwrap.wrap(body, width=max(20, width - prefix_width)) or [""]
        print(prefix + lines[0], file=stream)
        for line in lines[1:]:
            print(" " * prefix_width + line, file=stream)
    print(file=stream)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _print_summary(runs: Sequence[_MethodRun], beta: float, settings: str, stream: TextIO) -> None:
    name_width = max(len("method"), *(len(run.method.name) for run in runs))
    weight_width = max(len("weights"), *(len(run.method.describe(beta)) for run in runs))
    print(f"Summary ({settings})", file=stream)
    header = (
        f"  {'method':<{name_width}}  {'weights':<{weight_width}}  {'VADER':>7}  {'topic':>7}  "
        f"{'base ppl':>8}  {'distinct-2':>10}  {'seconds':>7}"
    )
    print(header, file=stream)
    print("  " + "-" * (len(header) - 2), file=stream)
    for run in runs:
        print(
            f"  {run.method.name:<{name_width}}  {run.method.describe(beta):<{weight_width}}  "
            f"{_mean(run.sentiment):>+7.3f}  {_mean(run.topic):>+7.3f}  {run.base_perplexity:>8.1f}  "
            f"{_mean(run.distinct_bigrams):>10.2f}  {run.seconds:>7.2f}",
            file=stream,
        )


def run_demo(options: DemoOptions, stream: TextIO | None = None) -> int:
    """Run the demo with `options`, printing to `stream` (`sys.stdout` by default); returns the exit status `0`."""
    # The weight-loading bars of four small models would drown the demo's own output.
    threads = validate_positive_length(options.threads, "threads", allow_none=False)
    progress_bars_were_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    # Threads for these tiny models only: the caller's setting comes back afterwards.
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(options, stream if stream is not None else sys.stdout)
    finally:
        torch.set_num_threads(threads_before)
        if progress_bars_were_enabled:
            logging.enable_progress_bar()


def _run(options: DemoOptions, stream: TextIO) -> int:
    started = time.perf_counter()
    num_prompts, max_new_tokens = int(options.prompts), int(options.max_new_tokens)
    beta, seed = float(options.beta), int(options.seed)

    print("Loading the embedded base model, reward models and judges ...", file=stream, flush=True)
    prompts = _load_demo_prompts(num_prompts)
    base_dir = default_asset_path("base")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    reward_models = {
        objective: AutoregressiveRewardModel.from_pretrained(default_asset_path(f"arm-{objective}")).eval()
        for objective in ("sentiment", "topic")
    }
    sentiment_judge, topic_judge = SentimentJudge(), TopicJudge()
    loading_seconds = time.perf_counter() - started

    inputs = tokenizer([tokenizer.bos_token + prompt for prompt in prompts], return_tensors="pt", padding=True)
    prompt_width, eos = inputs["input_ids"].shape[1], tokenizer.eos_token_id
    runs = []
    for method in DEMO_METHODS:
        # GenARM reweights the base's top-k tokens: the small reward models, trained on pairs alone, put mass on
        # byte tokens that never occur in the fortunes, which the full product would then favour.
        processors = [TopKLogitsWarper(DEMO_BASE_TOP_K)]
        if method.alphas:
            processors.append(
                GenARMLogitsProcessor(
                    [reward_models[objective] for objective in method.alphas],
                    alpha=list(method.alphas.values()),
                    beta=beta,
                    attention_mask=inputs["attention_mask"],
                    tokenizer=tokenizer,
                )
            )
        set_seed(seed)
        method_started = time.perf_counter()
        with torch.no_grad():
            sequences = base.generate(
                **inputs,
                logits_processor=processors,
                do_sample=True,
                top_k=0,
                top_p=DEMO_TOP_P,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = time.perf_counter() - method_started
        continuations = tokenizer.batch_decode(sequences[:, prompt_width:], skip_special_tokens=True)
        judged = [continuation.strip() for continuation in continuations]
        runs.append(
            _MethodRun(
                method=method,
                continuations=continuations,
                sentiment=sentiment_judge(judged),
                topic=topic_judge(judged),
                distinct_bigrams=_distinct_bigrams(sequences[:, prompt_width:], eos),
                base_perplexity=_continuation_perplexity(base, sequences, inputs["attention_mask"], eos),
                seconds=seconds,
            )
        )

    width = min(120, max(72, shutil.get_terminal_size((100, 24)).columns))
    print(
        f"Continuations of {num_prompts} held-out fortune openings, sampled with the same seed per method; "
        "VADER sentiment in [-1, 1], topic = MiniLM cosine to "
        f"{topic_judge.topic!r}.\n",
        file=stream,
    )
    for index, prompt in enumerate(prompts):
        _print_prompt_block(index, num_prompts, prompt, runs, width, stream)
    settings = (
        f"{num_prompts} prompts, {max_new_tokens} new tokens, base top-k {DEMO_BASE_TOP_K}, top-p {DEMO_TOP_P}, "
        f"beta {beta:g}, seed {seed}"
    )
    _print_summary(runs, beta, settings, stream)
    total_seconds = time.perf_counter() - started
    print(
        f"\nWall time {total_seconds:.1f} s (loading {loading_seconds:.1f} s, torch threads "
        f"{torch.get_num_threads()}). Weights are alpha / beta. base ppl: the base model's perplexity of the "
        "continuations; distinct-2: share of distinct token bigrams (low = repetitive).",
        file=stream,
    )
    return 0

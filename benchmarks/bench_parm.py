"""One preference-conditioned ARM (PARM) against two separate ARMs (GenARM) on the toy sentiment x topic data.

Same data, same LoRA, same budget: each separate ARM trains `--steps` steps on its objective's pairs; the PARM
trains `2 * --steps` steps on both objectives' pairs (the same number of pair passes in all). Both guide the
shipped fortune base model over a preference sweep `w in --weights`: the two ARMs with `alpha = [w, 1 - w]`, the
PARM with `preference = [w, 1 - w]` (and `alpha = 1`), at the same `beta`. Every completion of the held-out prompts
is scored by the two judges that labelled the data (VADER sentiment, MiniLM topic similarity).

Reported, with 95% bootstrap intervals over prompts:

* the front: mean sentiment and mean topic score of each sweep point, for each method;
* the hypervolume of each front (both objectives maximised) above a shared reference point (the lowest score of
  each objective over every point of both methods, minus a margin), and the PARM / two-ARM ratio (target >= 1);
* decoding seconds per generated token (fixed length), PARM / two ARMs (target <= 0.6), and the part of it spent
  in the logits processor (the reward-model passes and the combination): the whole path also runs the base model,
  the same for both methods, so when the base costs as much as an ARM or more the whole-path ratio stays above
  (1 + 1) / (1 + 2) = 0.67 however cheap the PARM pass is, while the processor ratio shows the one pass instead of two;
* training seconds, PARM / (one ARM's mean x 2) (target <= 1.2), after an untimed warm-up training so that one-time
  costs (thread pools, first kernels) fall on none of the timed runs; on a shared machine the wall clock follows
  the other jobs' load, so the ratio is also given from each run's median step time x its steps (steady cost);
  decoding alternates the methods over the repeats for the same reason.

Small check (minutes on a busy CPU)::

    python benchmarks/bench_parm.py --steps 20 --prompts 8 --samples 2 --weights 0 0.5 1 --max-new-tokens 16

Full run::

    python benchmarks/bench_parm.py --steps 300 --prompts 64 --samples 4 --bootstrap 1000 --output parm.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, TrainerCallback

from hf_genarm import (
    ARMConfig,
    ARMTrainer,
    GenARMLogitsProcessor,
    PreferenceARMConfig,
    PreferenceARMTrainer,
)
from hf_genarm.assets import ASSETS_DIR, default_asset_path, preference_pairs_path, read_preference_pairs
from hf_genarm.demo.judges import SentimentJudge, TopicJudge

OBJECTIVES = ("sentiment", "topic")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="Training steps of each separate ARM (PARM: twice).")
    parser.add_argument("--pairs", type=int, default=2000, help="Training pairs per objective (at most).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank r of every model (PARM: r1 + r2).")
    parser.add_argument("--beta-r", type=float, default=0.05, help="The shipped ARMs' beta_r.")
    parser.add_argument("--beta", type=float, default=1.0, help="KL strength of guided decoding.")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--prompts", type=int, default=64, help="Held-out prompts.")
    parser.add_argument("--samples", type=int, default=4, help="Completions per prompt and sweep point.")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000, help="Bootstrap resamples for the intervals.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="Write the results as JSON here.")
    return parser.parse_args(argv)


def training_pairs(objective: str, count: int) -> list[dict]:
    rows = read_preference_pairs(preference_pairs_path(ASSETS_DIR / "preferences", objective, "train"))
    return [{key: row[key] for key in ("prompt", "chosen", "rejected")} for row in rows[:count]]


def held_out_prompts(count: int) -> list[str]:
    prompts = []
    for objective in OBJECTIVES:
        path = preference_pairs_path(ASSETS_DIR / "preferences", objective, "held_out")
        prompts += [row["prompt"] for row in read_preference_pairs(path)]
    return list(dict.fromkeys(prompts))[:count]


def lora(rank: int) -> LoraConfig:
    return LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["c_attn", "c_proj", "c_fc"], task_type="CAUSAL_LM")


class StepTimer(TrainerCallback):
    """Seconds of each optimizer step, to estimate a run's steady cost apart from the machine's load spikes."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.durations.append(time.perf_counter() - self._started)

    def steady_seconds(self) -> float:
        return statistics.median(self.durations) * len(self.durations)


def train_arms(arguments, tokenizer, scratch: str) -> tuple[list, list[dict], object, dict]:
    """Two separate ARMs, then one PARM on both objectives; each with its wall-clock and steady seconds."""
    backbone = default_asset_path("reward-backbone")
    common = {
        "per_device_train_batch_size": arguments.batch_size,
        "learning_rate": arguments.learning_rate,
        "beta_r": arguments.beta_r,
        "max_length": 96,
        "use_cpu": True,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "logging_steps": 10**9,
        "seed": arguments.seed,
    }
    data = {objective: training_pairs(objective, arguments.pairs) for objective in OBJECTIVES}
    warm_up = ARMConfig(output_dir=f"{scratch}/warm-up", max_steps=2, **common)
    ARMTrainer(
        AutoModelForCausalLM.from_pretrained(backbone),
        args=warm_up,
        train_dataset=data[OBJECTIVES[0]][: 2 * arguments.batch_size],
        processing_class=tokenizer,
        peft_config=lora(arguments.rank),
    ).train()
    arms, seconds = [], []
    for objective in OBJECTIVES:
        args = ARMConfig(output_dir=f"{scratch}/{objective}", max_steps=arguments.steps, **common)
        model = AutoModelForCausalLM.from_pretrained(backbone)
        timer = StepTimer()
        trainer = ARMTrainer(
            model,
            args=args,
            train_dataset=data[objective],
            processing_class=tokenizer,
            peft_config=lora(arguments.rank),
            callbacks=[timer],
        )
        started = time.perf_counter()
        trainer.train()
        seconds.append({"wall": time.perf_counter() - started, "steady": timer.steady_seconds()})
        arms.append(trainer.reward_model.eval())
    args = PreferenceARMConfig(output_dir=f"{scratch}/parm", max_steps=len(OBJECTIVES) * arguments.steps, **common)
    timer = StepTimer()
    trainer = PreferenceARMTrainer(
        AutoModelForCausalLM.from_pretrained(backbone),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora(arguments.rank),
        callbacks=[timer],
    )
    started = time.perf_counter()
    trainer.train()
    parm_seconds = {"wall": time.perf_counter() - started, "steady": timer.steady_seconds()}
    return arms, seconds, trainer.reward_model.eval(), parm_seconds


def processor_for(method: str, weight: float, arms, parm, arguments, tokenizer, attention_mask):
    if method == "two_arms":
        return GenARMLogitsProcessor(
            arms, alpha=[weight, 1 - weight], beta=arguments.beta, attention_mask=attention_mask, tokenizer=tokenizer
        )
    return GenARMLogitsProcessor(
        parm, preference=[weight, 1 - weight], beta=arguments.beta, attention_mask=attention_mask, tokenizer=tokenizer
    )


class TimedProcessor(LogitsProcessor):
    """Passes the scores through `processor` and adds up the seconds spent in it."""

    def __init__(self, processor: LogitsProcessor) -> None:
        self.processor = processor
        self.seconds = 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        scores = self.processor(input_ids, scores)
        self.seconds += time.perf_counter() - started
        return scores


@torch.no_grad()
def completions(base, tokenizer, prompts, processor, arguments, seed: int, fixed_length: bool = False):
    """`samples` completions per prompt (texts grouped per prompt), seconds, generated tokens."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    kwargs = {"min_new_tokens": arguments.max_new_tokens} if fixed_length else {}
    torch.manual_seed(seed)
    started = time.perf_counter()
    output = base.generate(
        **inputs,
        logits_processor=[processor],
        do_sample=True,
        top_k=0,
        max_new_tokens=arguments.max_new_tokens,
        num_return_sequences=arguments.samples,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    seconds = time.perf_counter() - started
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    grouped = [texts[index * arguments.samples : (index + 1) * arguments.samples] for index in range(len(prompts))]
    return grouped, seconds, new_tokens.numel()


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates maximised) above `reference`."""
    kept = sorted((x, y) for x, y in points if x > reference[0] and y > reference[1])
    area, best_y = 0.0, reference[1]
    for x, y in reversed(kept):  # from the largest x down: each point adds the strip its y rises above
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


def interval(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[int(0.025 * (len(ordered) - 1))], ordered[int(0.975 * (len(ordered) - 1))]


def main(argv: list[str] | None = None) -> dict:
    arguments = parse_arguments(argv)
    torch.manual_seed(arguments.seed)
    tokenizer = AutoTokenizer.from_pretrained(default_asset_path("base"))
    tokenizer.padding_side = "left"
    base = AutoModelForCausalLM.from_pretrained(default_asset_path("base")).eval()
    judges = {"sentiment": SentimentJudge(), "topic": TopicJudge()}
    prompts = held_out_prompts(arguments.prompts)
    with tempfile.TemporaryDirectory() as scratch:
        arms, arm_seconds, parm, parm_seconds = train_arms(arguments, tokenizer, scratch)

    # Per method, per sweep point, per objective: each prompt's mean score (the bootstrap resamples prompts).
    scores: dict[str, list[dict[str, list[float]]]] = {"two_arms": [], "parm": []}
    mask = tokenizer(prompts, padding=True, return_tensors="pt")["attention_mask"]
    for method in scores:
        for weight in arguments.weights:
            processor = processor_for(method, weight, arms, parm, arguments, tokenizer, mask)
            texts, _, _ = completions(base, tokenizer, prompts, processor, arguments, seed=arguments.seed)
            point = {}
            for objective, judge in judges.items():
                point[objective] = [statistics.fmean(judge(group)) for group in texts]
            scores[method].append(point)

    means = {
        objective: [statistics.fmean(point[objective]) for method in scores.values() for point in method]
        for objective in OBJECTIVES
    }
    # Below the worst point of both methods by 5% of each objective's spread: every point adds some area.
    reference_point = {
        objective: min(values) - 0.05 * ((max(values) - min(values)) or 1.0) for objective, values in means.items()
    }
    reference = (reference_point["sentiment"], reference_point["topic"])

    def front(method: str, rows: list[int]) -> list[tuple[float, float]]:
        return [
            tuple(statistics.fmean(point[objective][row] for row in rows) for objective in OBJECTIVES)
            for point in scores[method]
        ]

    everyone = list(range(len(prompts)))
    rng = random.Random(arguments.seed)
    resamples = [[rng.randrange(len(prompts)) for _ in everyone] for _ in range(arguments.bootstrap)]
    results: dict = {"settings": vars(arguments), "reference_point": reference, "methods": {}}
    volumes = {}
    for method in scores:
        volumes[method] = [hypervolume(front(method, rows), reference) for rows in resamples]
    ratios = [p / t if t > 0 else float("inf") for p, t in zip(volumes["parm"], volumes["two_arms"])]
    for method in scores:
        results["methods"][method] = {
            "front": [
                {
                    "weight": weight,
                    **{
                        objective: {
                            "mean": statistics.fmean(point[objective]),
                            "ci95": interval(
                                [statistics.fmean(point[objective][row] for row in rows) for rows in resamples]
                            ),
                        }
                        for objective in OBJECTIVES
                    },
                }
                for weight, point in zip(arguments.weights, scores[method])
            ],
            "hypervolume": hypervolume(front(method, everyone), reference),
            "hypervolume_ci95": interval(volumes[method]),
        }
    results["hypervolume_ratio_parm_over_two_arms"] = {
        "value": results["methods"]["parm"]["hypervolume"] / max(results["methods"]["two_arms"]["hypervolume"], 1e-12),
        "ci95": interval(ratios),
        "target": ">= 1",
    }

    # Decoding cost: the same fixed-length generation, the middle weight, best of 3 to damp a busy machine.
    middle = arguments.weights[len(arguments.weights) // 2]
    timings = {method: [] for method in scores}
    processor_timings = {method: [] for method in scores}
    for repeat in range(3):
        for method in scores:  # alternating, so that a change of load falls on both methods
            processor = TimedProcessor(processor_for(method, middle, arms, parm, arguments, tokenizer, mask))
            _, seconds, tokens = completions(
                base, tokenizer, prompts, processor, arguments, seed=arguments.seed + repeat, fixed_length=True
            )
            timings[method].append(seconds / tokens)
            processor_timings[method].append(processor.seconds / tokens)
    per_token = {method: min(values) for method, values in timings.items()}
    processor_per_token = {method: min(values) for method, values in processor_timings.items()}
    results["decode_seconds_per_token"] = per_token
    results["decode_ratio_parm_over_two_arms"] = {
        "value": per_token["parm"] / per_token["two_arms"],
        "target": "<= 0.6",
    }
    results["processor_seconds_per_token"] = processor_per_token
    results["processor_ratio_parm_over_two_arms"] = {
        "value": processor_per_token["parm"] / processor_per_token["two_arms"]
    }
    results["training_seconds"] = {"arms": arm_seconds, "parm": parm_seconds}
    results["training_ratio_parm_over_arms"] = {
        clock: parm_seconds[clock] / (statistics.fmean(arm[clock] for arm in arm_seconds) * len(OBJECTIVES))
        for clock in ("wall", "steady")
    }
    results["training_ratio_parm_over_arms"]["target"] = "<= 1.2"
    report(results)
    if arguments.output:
        with open(arguments.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return results


def report(results: dict) -> None:
    for method, result in results["methods"].items():
        print(
            f"{method}: hypervolume {result['hypervolume']:.4f} (95% CI {result['hypervolume_ci95'][0]:.4f}"
            f"..{result['hypervolume_ci95'][1]:.4f})"
        )
        for point in result["front"]:
            described = ", ".join(
                f"{objective} {point[objective]['mean']:+.3f} [{point[objective]['ci95'][0]:+.3f}, "
                f"{point[objective]['ci95'][1]:+.3f}]"
                for objective in OBJECTIVES
            )
            print(f"  w={point['weight']:.2f}: {described}")
    ratio = results["hypervolume_ratio_parm_over_two_arms"]
    print(
        f"hypervolume PARM / two ARMs: {ratio['value']:.3f} (95% CI {ratio['ci95'][0]:.3f}..{ratio['ci95'][1]:.3f}; "
        "target >= 1)"
    )
    decode = results["decode_ratio_parm_over_two_arms"]["value"]
    print(f"decoding time per token PARM / two ARMs: {decode:.3f} (target <= 0.6)")
    in_processor = results["processor_ratio_parm_over_two_arms"]["value"]
    print(f"  of which in the logits processor (reward-model passes), PARM / two ARMs: {in_processor:.3f}")
    training = results["training_ratio_parm_over_arms"]
    print(
        f"training time PARM / (one ARM x 2): {training['wall']:.3f} wall clock, {training['steady']:.3f} from median "
        "step times (target <= 1.2)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Train two GenARM reward models (helpfulness, harmlessness) on PKU-SafeRLHF and sweep their trade-off at decoding.

Recipe:

1. Load `PKU-Alignment/PKU-SafeRLHF`. Each row holds a `prompt`, two answers `response_0` / `response_1` and two
   labels: `better_response_id` (the more helpful answer) and `safer_response_id` (the more harmless one).
   Turn it into two explicit-prompt preference datasets (`prompt`, `chosen`, `rejected`), one per label, with
   the prompt written in the `BEGINNING OF CONVERSATION: USER: ... ASSISTANT:` format of the Safe-RLHF models.
2. Train one LoRA ARM per objective with `ARMTrainer` (same backbone `--model`), saved to `<output-dir>/helpful`
   and `<output-dir>/harmless`.
3. Guide a frozen base model (`--base`, same tokenizer) with *both* ARMs at once through one
   `GenARMLogitsProcessor(reward_models=[helpful, harmless], alpha=[a_help, a_harm])`, sweeping the slider `w`
   of `alpha = [w * alpha_total, (1 - w) * alpha_total]` from all-harmless to all-helpful, with no retraining.

Usage:

    python examples/pku_saferlhf_two_objectives.py --model Qwen/Qwen2.5-0.5B --base Qwen/Qwen2.5-1.5B
    python examples/pku_saferlhf_two_objectives.py --tiny --output-dir /tmp/arm-pku    # offline, about 30 s

At real scale it downloads the model(s) and the dataset, and wants a GPU (bf16 when supported). `--tiny` uses
the embedded fortune-cookie GPT-2 assets (base and reward backbone) with a few PKU-SafeRLHF-style rows, trains each ARM
30 LoRA steps on CPU and generates 12 tokens per slider value, offline (about half a minute): the two ARMs pull the
greedy text in different directions, so each slider value prints a different continuation (fortune-cookie text,
since that is all the tiny base model knows).
"""

from __future__ import annotations

import argparse
import os

import torch
from _recipe import (
    arm_backbone,
    arm_config,
    generate_kwargs,
    load_base,
    load_tokenizer,
    lora_config,
    new_text,
    recipe_parser,
)
from datasets import Dataset

from hf_genarm import ARMTrainer, GenARMLogitsProcessor

PROMPT_TEMPLATE = "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:"
OBJECTIVES = {"helpful": "better_response_id", "harmless": "safer_response_id"}

# A few rows in PKU-SafeRLHF's own format (a subset of its columns), for --tiny.
TINY_ROWS = [
    {
        "prompt": "How do I get back at my noisy neighbour?",
        "response_0": "Talk to them kindly, it costs nothing.",
        "response_1": "Here is exactly how to break their window and never get caught.",
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "better_response_id": 1,
        "safer_response_id": 0,
    },
    {
        "prompt": "How do I bake bread?",
        "response_0": "Mix flour, water, salt and yeast, then wait.",
        "response_1": "Bread is food.",
        "is_response_0_safe": True,
        "is_response_1_safe": True,
        "better_response_id": 0,
        "safer_response_id": 0,
    },
    {
        "prompt": "Should I trust a computer I cannot throw out of a window?",
        "response_0": "Never trust it.",
        "response_1": "Be careful: keep backups and update it often.",
        "is_response_0_safe": True,
        "is_response_1_safe": True,
        "better_response_id": 1,
        "safer_response_id": 1,
    },
] * 4


def preference_pairs(dataset: Dataset, label: str) -> Dataset:
    """`prompt` / `chosen` / `rejected` rows with the answer that `label` (0 or 1) prefers as `chosen`."""

    def to_pair(row: dict) -> dict:
        best = int(row[label])
        return {
            "prompt": PROMPT_TEMPLATE.format(prompt=row["prompt"]),
            "chosen": " " + row[f"response_{best}"],
            "rejected": " " + row[f"response_{1 - best}"],
        }

    return dataset.map(to_pair, remove_columns=dataset.column_names)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = recipe_parser(
        __doc__.splitlines()[0],
        model="Qwen/Qwen2.5-0.5B",
        output_dir="arm-pku-saferlhf",
        # GenARM's released scripts train the helpfulness ARM with 0.5 and the harmlessness ARM with 0.01.
        beta_r=0.1,
        max_length=768,
    )
    parser.add_argument("--dataset", default="PKU-Alignment/PKU-SafeRLHF")
    parser.add_argument("--alpha-total", type=float, default=1.0, help="alpha_help + alpha_harm.")
    parser.add_argument("--sweep", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0], help="Slider w values.")
    args = parser.parse_args(argv)
    if args.tiny:
        # Enough steps for each ARM to learn its tiny rows, and enough weight for the slider to move the greedy text:
        # the run shows the trade-off itself, not only that the pipeline runs.
        args.max_steps, args.batch_size, args.grad_accum, args.learning_rate = 30, 4, 1, 5e-3
        args.max_length, args.lora_r, args.max_new_tokens, args.num_prompts = 256, 8, 12, 2
        args.sweep, args.alpha_total = [0.0, 0.5, 1.0], 2.0
    return args


def main(argv: list[str] | None = None) -> dict[float, list[str]]:
    """Train both ARMs, sweep the helpful/harmless slider, print and return `{w: texts}`."""
    args = parse_args(argv)

    # ------------------------------------------------------------------ data and tokenizer
    tokenizer = load_tokenizer(args)
    if args.tiny:
        train_rows, test_rows = Dataset.from_list(TINY_ROWS), Dataset.from_list(TINY_ROWS[: args.num_prompts])
    else:
        from datasets import load_dataset

        train_rows = load_dataset(args.dataset, split="train")
        if args.train_samples:
            train_rows = train_rows.select(range(min(args.train_samples, len(train_rows))))
        test_rows = load_dataset(args.dataset, split="test").select(range(args.num_prompts))

    # ------------------------------------------------------------------ one LoRA ARM per objective
    reward_models = []
    for objective, label in OBJECTIVES.items():
        output_dir = os.path.join(args.output_dir, objective)
        trainer = ARMTrainer(
            arm_backbone(args),
            args=arm_config(args, output_dir),
            train_dataset=preference_pairs(train_rows, label),
            processing_class=tokenizer,
            peft_config=lora_config(args, tiny_targets=("c_attn", "c_proj")),
        )
        print(f"Training the {objective} ARM on `{label}`")
        trainer.train()
        trainer.save_model(output_dir)  # adapter + genarm_config.json + model card
        reward_models.append(trainer.reward_model.eval())

    # ------------------------------------------------------------------ decode with an alpha sweep
    base = load_base(args)
    prompts = [PROMPT_TEMPLATE.format(prompt=prompt) for prompt in test_rows["prompt"]]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(base.device)
    results: dict[float, list[str]] = {}
    for slider in args.sweep:
        alpha = [slider * args.alpha_total, (1.0 - slider) * args.alpha_total]  # [helpful, harmless]
        processor = GenARMLogitsProcessor(
            reward_models, alpha=alpha, beta=args.beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
        )
        torch.manual_seed(0)
        with torch.no_grad():
            output = base.generate(**inputs, logits_processor=[processor], **generate_kwargs(args, tokenizer))
        results[slider] = new_text(tokenizer, output, inputs["input_ids"].shape[1])
    for index, prompt in enumerate(prompts):
        print(f"===== prompt {index} =====\n{prompt}")
        for slider, texts in results.items():
            alpha_help, alpha_harm = slider * args.alpha_total, (1.0 - slider) * args.alpha_total
            print(f"----- GenARM (alpha_helpful={alpha_help:.2f}, alpha_harmless={alpha_harm:.2f}) -----")
            print(texts[index])
    return results


if __name__ == "__main__":
    main()

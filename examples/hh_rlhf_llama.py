"""Train a GenARM autoregressive reward model (ARM) with LoRA on Anthropic HH-RLHF, then guide a base model with it.

Recipe:

1. Load `Anthropic/hh-rlhf`. Its rows are in TRL's *implicit prompt* format: `chosen` and `rejected` are whole
   dialogues (`"\\n\\nHuman: ...\\n\\nAssistant: ..."`) and the prompt is their longest common prefix, which
   `ARMTrainer` finds by itself.
2. Train a LoRA adapter on a LLaMA/Qwen-class causal LM (`--model`) with `ARMTrainer` and the ARM loss
   `-log sigmoid(beta_r * (sum log pi_r(chosen) - sum log pi_r(rejected)))`, then save the adapter plus
   `genarm_config.json`.
3. Guide a frozen base model (`--base`, any model sharing the ARM's tokenizer, possibly much larger:
   weak-to-strong guidance) with `GenARMLogitsProcessor` inside stock `generate()`, on a few HH-RLHF test
   prompts, and print the unguided and the guided answers side by side.

Usage:

    python examples/hh_rlhf_llama.py --model Qwen/Qwen2.5-0.5B --base Qwen/Qwen2.5-1.5B --output-dir arm-hh
    python examples/hh_rlhf_llama.py --tiny --output-dir /tmp/arm-hh     # offline smoke test, a few seconds

At real scale it downloads the model(s) and the dataset, and wants a GPU (bf16 when supported). `--tiny` uses
the embedded fortune-cookie GPT-2 assets (base and reward backbone) with a few HH-style rows, trains 3 steps on CPU
and generates a few tokens, so the whole pipeline runs offline.
"""

from __future__ import annotations

import argparse

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
    shrink_for_tiny,
)

from hf_genarm import ARMTrainer, GenARMLogitsProcessor

# A few rows in HH-RLHF's own (implicit prompt) format, for --tiny.
TINY_ROWS = [
    {
        "chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, salt and yeast, then wait.",
        "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: Go away.",
    },
    {
        "chosen": "\n\nHuman: How was your day?\n\nAssistant: Wonderful, thank you so much!",
        "rejected": "\n\nHuman: How was your day?\n\nAssistant: Boring and far too long.",
    },
    {
        "chosen": "\n\nHuman: Any advice?\n\nAssistant: Please be kind to each other, it costs nothing.",
        "rejected": "\n\nHuman: Any advice?\n\nAssistant: Never trust anyone.",
    },
] * 4
PROMPT_END = "\n\nAssistant:"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = recipe_parser(
        __doc__.splitlines()[0], model="Qwen/Qwen2.5-0.5B", output_dir="arm-hh-rlhf", beta_r=0.05
    )  # beta_r 0.05: GenARM's released HH-RLHF script
    parser.add_argument("--dataset", default="Anthropic/hh-rlhf")
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=1.0, help="Weight of the ARM at decoding time.")
    args = parser.parse_args(argv)
    if args.tiny:
        shrink_for_tiny(args)
    return args


def main(argv: list[str] | None = None) -> dict[str, list[str]]:
    """Train the ARM, guide the base model, print and return `{"base": texts, "genarm": texts}`."""
    args = parse_args(argv)

    # ------------------------------------------------------------------ data and tokenizer
    tokenizer = load_tokenizer(args)
    if args.tiny:
        train_rows, eval_rows, test_rows = TINY_ROWS, None, TINY_ROWS[: args.num_prompts]
    else:
        from datasets import load_dataset

        train_rows = load_dataset(args.dataset, split="train")
        if args.train_samples:
            train_rows = train_rows.select(range(min(args.train_samples, len(train_rows))))
        test_split = load_dataset(args.dataset, split="test")
        eval_rows = test_split.select(range(min(args.eval_samples, len(test_split))))
        test_rows = test_split.select(range(len(test_split) - args.num_prompts, len(test_split)))

    # ------------------------------------------------------------------ train the ARM with LoRA
    trainer = ARMTrainer(
        arm_backbone(args),
        args=arm_config(args, args.output_dir, evaluate=True),
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        peft_config=lora_config(args),
    )
    trainer.train()
    trainer.save_model(args.output_dir)  # adapter + genarm_config.json + model card
    reward_model = trainer.reward_model.eval()  # in memory; later: AutoregressiveRewardModel.from_pretrained(dir)

    # ------------------------------------------------------------------ guide the base model
    base = load_base(args)
    prompts = [row["chosen"].rsplit(PROMPT_END, 1)[0] + PROMPT_END for row in test_rows]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(base.device)
    results: dict[str, list[str]] = {}
    processor = GenARMLogitsProcessor(
        reward_model, alpha=args.alpha, beta=args.beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    for name, processors in (("base", []), ("genarm", [processor])):
        torch.manual_seed(0)
        with torch.no_grad():
            output = base.generate(**inputs, logits_processor=processors, **generate_kwargs(args, tokenizer))
        results[name] = new_text(tokenizer, output, inputs["input_ids"].shape[1])
    for index, prompt in enumerate(prompts):
        print(f"===== prompt {index} =====\n{prompt.strip()}")
        print(f"----- base -----\n{results['base'][index]}")
        print(f"----- GenARM (alpha={args.alpha}, beta={args.beta}) -----\n{results['genarm'][index]}")
    return results


if __name__ == "__main__":
    main()

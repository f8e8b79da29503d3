"""Train a GenARM autoregressive reward model (ARM) with LoRA on UltraFeedback, then guide a chat model with it.

Recipe:

1. Load `HuggingFaceH4/ultrafeedback_binarized` (splits `train_prefs` / `test_prefs`). Its rows are
   *conversational*: `chosen` and `rejected` are lists of `{"role", "content"}` messages that both start with the
   user turn, next to a plain-string `prompt` column. `ARMTrainer` takes the shared leading messages as the
   prompt and renders everything with the tokenizer's chat template.
2. Train a LoRA adapter on a chat model (`--model`) with `ARMTrainer` and the ARM loss
   `-log sigmoid(beta_r * (sum log pi_r(chosen) - sum log pi_r(rejected)))`; save the adapter plus
   `genarm_config.json`.
3. Render a few test prompts with the chat template (generation prompt added) and guide a frozen base chat
   model (`--base`, same tokenizer and template) with `GenARMLogitsProcessor` inside stock `generate()`;
   print the unguided and the guided answers.

Usage:

    python examples/ultrafeedback.py --model Qwen/Qwen2.5-0.5B-Instruct --base Qwen/Qwen2.5-1.5B-Instruct
    python examples/ultrafeedback.py --tiny --output-dir /tmp/arm-uf     # offline smoke test, a few seconds

At real scale it downloads the model(s) and the dataset, and wants a GPU (bf16 when supported). `--tiny` uses
the embedded fortune-cookie GPT-2 assets (their tokenizer gets a small Jinja chat template, since it has none)
with a few UltraFeedback-style rows, trains 3 steps on CPU and generates a few tokens, offline.
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

# A minimal chat template for the tiny tokenizer, which ships without one; <|endoftext|> ends each turn.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _tiny_row(prompt: str, chosen: str, rejected: str, index: int) -> dict:
    """One row in UltraFeedback-binarized's own format."""
    user = {"role": "user", "content": prompt}
    return {
        "prompt": prompt,
        "prompt_id": f"{index:064x}",
        "chosen": [user, {"role": "assistant", "content": chosen}],
        "rejected": [user, {"role": "assistant", "content": rejected}],
        "messages": [user, {"role": "assistant", "content": chosen}],
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }


TINY_ROWS = [
    _tiny_row("How do I bake bread?", "Mix flour, water, salt and yeast, then wait.", "Go away.", 0),
    _tiny_row("How was your day?", "Wonderful, thank you so much!", "Boring and far too long.", 1),
    _tiny_row("Any advice?", "Please be kind to each other, it costs nothing.", "Never trust anyone.", 2),
] * 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = recipe_parser(
        __doc__.splitlines()[0],
        model="Qwen/Qwen2.5-0.5B-Instruct",
        output_dir="arm-ultrafeedback",
        beta_r=0.1,
        max_new_tokens=256,
    )
    parser.add_argument("--dataset", default="HuggingFaceH4/ultrafeedback_binarized")
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
        tokenizer.chat_template = TINY_CHAT_TEMPLATE
        # No held-out split in the tiny data: evaluation runs on three training rows, only to exercise the path.
        train_rows, eval_rows, test_rows = TINY_ROWS, TINY_ROWS[:3], TINY_ROWS[: args.num_prompts]
    else:
        from datasets import load_dataset

        train_rows = load_dataset(args.dataset, split="train_prefs")
        if args.train_samples:
            train_rows = train_rows.select(range(min(args.train_samples, len(train_rows))))
        test_split = load_dataset(args.dataset, split="test_prefs")
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
    metrics = trainer.evaluate()
    print(
        f"Evaluation on {len(eval_rows)} pairs: preference accuracy {metrics['eval_preference_accuracy']:.3f}, "
        f"mean reward margin {metrics['eval_rewards/margins']:.3f}"
    )
    trainer.save_model(args.output_dir)  # adapter + genarm_config.json + model card
    reward_model = trainer.reward_model.eval()  # in memory; later: AutoregressiveRewardModel.from_pretrained(dir)

    # ------------------------------------------------------------------ guide the base chat model
    base = load_base(args)
    # Every message before the assistant's answer is the prompt; the template writes its own special tokens.
    prompts = [
        tokenizer.apply_chat_template(row["chosen"][:-1], tokenize=False, add_generation_prompt=True)
        for row in test_rows
    ]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(base.device)
    results: dict[str, list[str]] = {}
    processor = GenARMLogitsProcessor(
        reward_model, alpha=args.alpha, beta=args.beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    for name, processors in (("base", []), ("genarm", [processor])):
        torch.manual_seed(0)
        with torch.no_grad():
            output = base.generate(**inputs, logits_processor=processors, **generate_kwargs(args, tokenizer))
        results[name] = new_text(tokenizer, output, inputs["input_ids"].shape[1])
    for index, row in enumerate(test_rows):
        print(f"===== prompt {index} =====\n{row['prompt']}")
        print(f"----- base -----\n{results['base'][index]}")
        print(f"----- GenARM (alpha={args.alpha}, beta={args.beta}) -----\n{results['genarm'][index]}")
    return results


if __name__ == "__main__":
    main()

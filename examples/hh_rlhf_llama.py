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
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_genarm import ARMConfig, ARMTrainer, GenARMLogitsProcessor
from hf_genarm.assets import default_asset_path

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen2.5-0.5B", help="Backbone of the ARM (Hub id or folder).")
    parser.add_argument("--base", default=None, help="Base model to guide (defaults to --model); same tokenizer.")
    parser.add_argument("--dataset", default="Anthropic/hh-rlhf")
    parser.add_argument("--output-dir", default="arm-hh-rlhf")
    parser.add_argument("--tiny", action="store_true", help="Offline smoke test on the embedded fortune-cookie models.")
    parser.add_argument("--train-samples", type=int, default=None, help="Use only the first N training pairs.")
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--max-steps", type=int, default=-1, help="-1: train for --epochs.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta-r", type=float, default=0.05, help="ARM reward scale (the paper uses 0.05 on HH).")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=1.0, help="Weight of the ARM at decoding time.")
    parser.add_argument("--beta", type=float, default=1.0, help="KL strength at decoding time (weight alpha/beta).")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="Sample (top-p 0.9) instead of greedy decoding.")
    args = parser.parse_args(argv)
    if args.tiny:
        args.max_steps, args.batch_size, args.grad_accum, args.learning_rate = 3, 4, 1, 1e-2
        args.max_length, args.lora_r, args.max_new_tokens, args.num_prompts = 256, 4, 8, 2
    return args


def main(argv: list[str] | None = None) -> dict[str, list[str]]:
    """Train the ARM, guide the base model, print and return `{"base": texts, "genarm": texts}`."""
    args = parse_args(argv)
    use_gpu = torch.cuda.is_available() and not args.tiny
    bf16 = use_gpu and torch.cuda.is_bf16_supported()

    # ------------------------------------------------------------------ data, tokenizer and ARM backbone
    if args.tiny:
        torch.set_num_threads(1)  # tiny models run fastest on one thread; more just spin on shared cores
        tokenizer = AutoTokenizer.from_pretrained(default_asset_path("base"), padding_side="left")
        arm_backbone = str(default_asset_path("reward-backbone"))
        train_rows, eval_rows, test_rows = TINY_ROWS, None, TINY_ROWS[: args.num_prompts]
    else:
        from datasets import load_dataset

        tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
        if tokenizer.pad_token is None:  # Llama-style tokenizers have none; left padding with EOS is masked out
            tokenizer.pad_token = tokenizer.eos_token
        arm_backbone = args.model  # ARMTrainer loads it with `model_init_kwargs`
        train_rows = load_dataset(args.dataset, split="train")
        if args.train_samples:
            train_rows = train_rows.select(range(min(args.train_samples, len(train_rows))))
        test_split = load_dataset(args.dataset, split="test")
        eval_rows = test_split.select(range(min(args.eval_samples, len(test_split))))
        test_rows = test_split.select(range(len(test_split) - args.num_prompts, len(test_split)))

    # ------------------------------------------------------------------ train the ARM with LoRA
    config = ARMConfig(
        output_dir=args.output_dir,
        beta_r=args.beta_r,
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_length=args.max_length,
        bf16=bf16,
        model_init_kwargs={"dtype": "bfloat16"} if bf16 else None,
        logging_steps=1 if args.tiny else 10,
        eval_strategy="no" if eval_rows is None else "steps",
        eval_steps=500,
        save_strategy="no" if args.tiny else "steps",
        report_to=[] if args.tiny else "all",
        use_cpu=not use_gpu,
    )
    trainer = ARMTrainer(
        arm_backbone,
        args=config,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            target_modules=["c_attn"] if args.tiny else ["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    trainer.train()
    trainer.save_model(args.output_dir)  # adapter + genarm_config.json + model card
    reward_model = trainer.reward_model.eval()  # in memory; later: AutoregressiveRewardModel.from_pretrained(dir)

    # ------------------------------------------------------------------ guide the base model
    if args.tiny:
        base = AutoModelForCausalLM.from_pretrained(default_asset_path("base")).eval()
    else:
        dtype = torch.bfloat16 if bf16 else torch.float32
        base = AutoModelForCausalLM.from_pretrained(args.base or args.model, dtype=dtype)
        base.to("cuda" if use_gpu else "cpu").eval()
    prompts = [row["chosen"].rsplit(PROMPT_END, 1)[0] + PROMPT_END for row in test_rows]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(base.device)
    generate_kwargs = {
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.max_new_tokens if args.tiny else None,
        "do_sample": args.sample,
        "top_p": 0.9 if args.sample else None,
        "pad_token_id": tokenizer.pad_token_id,
    }
    results: dict[str, list[str]] = {}
    processor = GenARMLogitsProcessor(
        reward_model, alpha=args.alpha, beta=args.beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    for name, processors in (("base", []), ("genarm", [processor])):
        torch.manual_seed(0)
        with torch.no_grad():
            output = base.generate(**inputs, logits_processor=processors, **generate_kwargs)
        results[name] = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    for index, prompt in enumerate(prompts):
        print(f"===== prompt {index} =====\n{prompt.strip()}")
        print(f"----- base -----\n{results['base'][index]}")
        print(f"----- GenARM (alpha={args.alpha}, beta={args.beta}) -----\n{results['genarm'][index]}")
    return results


if __name__ == "__main__":
    main()

"""Train two GenARM reward models (helpfulness, harmlessness) on PKU-SafeRLHF and sweep their trade-off at decoding.

Recipe:

1. Load `PKU-Alignment/PKU-SafeRLHF`. Each row holds a `prompt`, two answers `response_0` / `response_1` and two
   labels: `better_response_id` (the more helpful answer) and `safer_response_id` (the more harmless one).
   Turn it into two explicit-prompt preference datasets (`prompt`, `chosen`, `rejected`), one per label, with
   the prompt written in the `BEGINNING OF CONVERSATION: USER: ... ASSISTANT:` format of the Safe-RLHF models.
2. Train one LoRA ARM per objective with `ARMTrainer` (same backbone `--model`, separate output folders).
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
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_genarm import ARMConfig, ARMTrainer, GenARMLogitsProcessor
from hf_genarm.assets import default_asset_path

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen2.5-0.5B", help="Backbone of both ARMs (Hub id or folder).")
    parser.add_argument("--base", default=None, help="Base model to guide (defaults to --model); same tokenizer.")
    parser.add_argument("--dataset", default="PKU-Alignment/PKU-SafeRLHF")
    parser.add_argument("--output-dir", default="arm-pku-saferlhf", help="ARMs go to <dir>/helpful, <dir>/harmless.")
    parser.add_argument("--tiny", action="store_true", help="Offline smoke test on the embedded fortune-cookie models.")
    parser.add_argument("--train-samples", type=int, default=None, help="Use only the first N training rows.")
    parser.add_argument("--max-steps", type=int, default=-1, help="-1: train for --epochs.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta-r", type=float, default=0.1, help="ARM reward scale.")
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--alpha-total", type=float, default=1.0, help="alpha_help + alpha_harm.")
    parser.add_argument("--sweep", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0], help="Slider w values.")
    parser.add_argument("--beta", type=float, default=1.0, help="KL strength at decoding time (weights alpha/beta).")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="Sample (top-p 0.9) instead of greedy decoding.")
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
    use_gpu = torch.cuda.is_available() and not args.tiny
    bf16 = use_gpu and torch.cuda.is_bf16_supported()

    # ------------------------------------------------------------------ data and tokenizer
    if args.tiny:
        torch.set_num_threads(1)  # tiny models run fastest on one thread; more just spin on shared cores
        tokenizer = AutoTokenizer.from_pretrained(default_asset_path("base"), padding_side="left")
        train_rows, test_rows = Dataset.from_list(TINY_ROWS), Dataset.from_list(TINY_ROWS[: args.num_prompts])
    else:
        from datasets import load_dataset

        tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
        if tokenizer.pad_token is None:  # Llama-style tokenizers have none; left padding with EOS is masked out
            tokenizer.pad_token = tokenizer.eos_token
        train_rows = load_dataset(args.dataset, split="train")
        if args.train_samples:
            train_rows = train_rows.select(range(min(args.train_samples, len(train_rows))))
        test_rows = load_dataset(args.dataset, split="test").select(range(args.num_prompts))

    # ------------------------------------------------------------------ one LoRA ARM per objective
    reward_models = []
    for objective, label in OBJECTIVES.items():
        output_dir = os.path.join(args.output_dir, objective)
        config = ARMConfig(
            output_dir=output_dir,
            beta_r=args.beta_r,
            learning_rate=args.learning_rate,
            num_train_epochs=args.epochs,
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.grad_accum,
            max_length=args.max_length,
            bf16=bf16,
            model_init_kwargs={"dtype": "bfloat16"} if bf16 else None,
            logging_steps=1 if args.tiny else 10,
            save_strategy="no" if args.tiny else "steps",
            report_to=[] if args.tiny else "all",
            use_cpu=not use_gpu,
        )
        trainer = ARMTrainer(
            str(default_asset_path("reward-backbone")) if args.tiny else args.model,
            args=config,
            train_dataset=preference_pairs(train_rows, label),
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=args.lora_r,
                lora_alpha=2 * args.lora_r,
                target_modules=["c_attn", "c_proj"] if args.tiny else ["q_proj", "k_proj", "v_proj", "o_proj"],
            ),
        )
        print(f"Training the {objective} ARM on `{label}`")
        trainer.train()
        trainer.save_model(output_dir)  # adapter + genarm_config.json + model card
        reward_models.append(trainer.reward_model.eval())

    # ------------------------------------------------------------------ decode with an alpha sweep
    if args.tiny:
        base = AutoModelForCausalLM.from_pretrained(default_asset_path("base")).eval()
    else:
        dtype = torch.bfloat16 if bf16 else torch.float32
        base = AutoModelForCausalLM.from_pretrained(args.base or args.model, dtype=dtype)
        base.to("cuda" if use_gpu else "cpu").eval()
    prompts = [PROMPT_TEMPLATE.format(prompt=prompt) for prompt in test_rows["prompt"]]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(base.device)
    generate_kwargs = {
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.max_new_tokens if args.tiny else None,
        "do_sample": args.sample,
        "top_p": 0.9 if args.sample else None,
        "pad_token_id": tokenizer.pad_token_id,
    }
    results: dict[float, list[str]] = {}
    for slider in args.sweep:
        alpha = [slider * args.alpha_total, (1.0 - slider) * args.alpha_total]  # [helpful, harmless]
        processor = GenARMLogitsProcessor(
            reward_models, alpha=alpha, beta=args.beta, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
        )
        torch.manual_seed(0)
        with torch.no_grad():
            output = base.generate(**inputs, logits_processor=[processor], **generate_kwargs)
        results[slider] = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    for index, prompt in enumerate(prompts):
        print(f"===== prompt {index} =====\n{prompt}")
        for slider, texts in results.items():
            alpha_help, alpha_harm = slider * args.alpha_total, (1.0 - slider) * args.alpha_total
            print(f"----- GenARM (alpha_helpful={alpha_help:.2f}, alpha_harmless={alpha_harm:.2f}) -----")
            print(texts[index])
    return results


if __name__ == "__main__":
    main()

"""The parts the example scripts share: options, tokenizer, ARM training settings, base model, decoding settings.

Each script keeps what makes it a recipe (its dataset, how rows become preference pairs, how it guides the base
model); this module holds the plumbing around it, so that the recipes differ only where they really differ.
`--tiny` swaps the Hub models for the small fortune-cookie models that ship with hf-genarm, offline.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from hf_genarm import ARMConfig
from hf_genarm.assets import default_asset_path

# What every real-scale recipe adapts with LoRA on LLaMA/Qwen-class models; the tiny GPT-2 names them differently.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def recipe_parser(
    description: str, *, model: str, output_dir: str, beta_r: float, **defaults: Any
) -> argparse.ArgumentParser:
    """Options of every recipe; `defaults` overrides others (`max_new_tokens`, `max_length`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=model, help="Backbone of the ARM (Hub id or folder).")
    parser.add_argument("--base", default=None, help="Base model to guide (defaults to --model); same tokenizer.")
    parser.add_argument("--output-dir", default=output_dir)
    parser.add_argument("--tiny", action="store_true", help="Offline smoke test on the embedded fortune-cookie models.")
    parser.add_argument("--train-samples", type=int, default=None, help="Use only the first N training rows.")
    parser.add_argument("--max-steps", type=int, default=-1, help="-1: train for --epochs.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta-r", type=float, default=beta_r, help="ARM reward scale (see ARMConfig.beta_r).")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--beta", type=float, default=1.0, help="KL strength at decoding time (weights alpha/beta).")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="Sample (top-p 0.9) instead of greedy decoding.")
    parser.set_defaults(**defaults)
    return parser


def shrink_for_tiny(args: argparse.Namespace) -> None:
    """The `--tiny` settings: 3 LoRA steps and 8 new tokens for 2 prompts, enough to run every step on CPU."""
    args.max_steps, args.batch_size, args.grad_accum, args.learning_rate = 3, 4, 1, 1e-2
    args.max_length, args.lora_r, args.max_new_tokens, args.num_prompts = 256, 4, 8, 2


def uses_gpu(args: argparse.Namespace) -> tuple[bool, bool]:
    """`(use_gpu, bf16)`: a GPU when there is one (never for `--tiny`), bf16 where it supports it."""
    use_gpu = torch.cuda.is_available() and not args.tiny
    return use_gpu, use_gpu and torch.cuda.is_bf16_supported()


def load_tokenizer(args: argparse.Namespace) -> PreTrainedTokenizerBase:
    """The ARM's tokenizer, left-padded for generation, with a pad token (Llama-style tokenizers have none)."""
    if args.tiny:
        torch.set_num_threads(1)  # tiny models run fastest on one thread; more just spin on shared cores
        return AutoTokenizer.from_pretrained(default_asset_path("base"), padding_side="left")
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    if tokenizer.pad_token is None:  # left padding with EOS is masked out by the attention mask
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def arm_backbone(args: argparse.Namespace) -> str:
    """What `ARMTrainer` loads (with `ARMConfig.model_init_kwargs`): `--model`, or the embedded backbone."""
    return str(default_asset_path("reward-backbone")) if args.tiny else args.model


def arm_config(args: argparse.Namespace, output_dir: str, *, evaluate: bool = False) -> ARMConfig:
    """Training settings of one ARM; `evaluate` adds an evaluation every 500 steps (real scale only)."""
    use_gpu, bf16 = uses_gpu(args)
    return ARMConfig(
        output_dir=output_dir,
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
        eval_strategy="steps" if evaluate and not args.tiny else "no",
        eval_steps=500,
        save_strategy="no" if args.tiny else "steps",
        report_to=[] if args.tiny else "all",
        use_cpu=not use_gpu,
    )


def lora_config(args: argparse.Namespace, tiny_targets: tuple[str, ...] = ("c_attn",)) -> LoraConfig:
    """LoRA of rank `--lora-r` on the attention projections."""
    targets = list(tiny_targets) if args.tiny else LORA_TARGETS
    return LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules=targets)


def load_base(args: argparse.Namespace) -> torch.nn.Module:
    """The frozen base model to guide: `--base` (or `--model`), in bf16 on the GPU when there is one."""
    if args.tiny:
        return AutoModelForCausalLM.from_pretrained(default_asset_path("base")).eval()
    use_gpu, bf16 = uses_gpu(args)
    base = AutoModelForCausalLM.from_pretrained(
        args.base or args.model, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    return base.to("cuda" if use_gpu else "cpu").eval()


def generate_kwargs(args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """`generate()` settings: greedy (or top-p 0.9 with `--sample`); `--tiny` writes exactly `--max-new-tokens`."""
    return {
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.max_new_tokens if args.tiny else None,
        "do_sample": args.sample,
        "top_p": 0.9 if args.sample else None,
        "pad_token_id": tokenizer.pad_token_id,
    }


def new_text(tokenizer: PreTrainedTokenizerBase, output: torch.Tensor, prompt_width: int) -> list[str]:
    """The generated part of each row, decoded without special tokens."""
    return tokenizer.batch_decode(output[:, prompt_width:], skip_special_tokens=True)

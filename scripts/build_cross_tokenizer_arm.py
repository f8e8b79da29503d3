"""Build a sentiment ARM with a second tokenizer, for the cross-tokenizer rows of the quality benchmark.

The demo assets' reward models share the base's byte-level BPE tokenizer. This script trains, on the same
training fortunes, a SentencePiece-style tokenizer (Metaspace `▁` words, BPE, byte fallback) of another size,
pretrains a reward backbone with it (the `reward-backbone` recipe), and trains the sentiment ARM on the same
preference pairs (the `arm-sentiment` recipe): the same data and recipe, another vocabulary. The result guides
the demo base only through `CrossTokenizerGenARMLogitsProcessor`.

Usage:

```bash
nice python scripts/build_cross_tokenizer_arm.py --output-dir /tmp/xtok-assets --threads 1
```

It writes `tokenizer/`, `reward-backbone/` and `arm-sentiment/` under the output folder, each with its
`training_info.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from build_demo_assets import (
    ARM_FULL_CONFIG,
    ARM_QUICK_CONFIG,
    ASSETS_DIR,
    REWARD_BACKBONE_FULL_CONFIG,
    REWARD_BACKBONE_QUICK_CONFIG,
    build_arm,
    build_reward_backbone,
    load_fortunes,
)

from hf_genarm.testing import END_OF_TEXT

SECOND_TOKENIZER_VOCAB_SIZE = 3000


def train_metaspace_tokenizer(texts: list[str], vocab_size: int = SECOND_TOKENIZER_VOCAB_SIZE):
    """A SentencePiece-style BPE (Metaspace, byte fallback) with `<|endoftext|>` as BOS, EOS and pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{byte:02X}>" for byte in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END_OF_TEXT, "<unk>", *byte_tokens], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # The byte tokens were reserved as special tokens to get ids; byte fallback reads them from the vocabulary,
    # and they must not be matched in text as added tokens.
    state = json.loads(tokenizer.to_str())
    state["added_tokens"] = [token for token in state["added_tokens"] if token["content"] not in byte_tokens]
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)),
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        unk_token="<unk>",
        padding_side="left",
        model_max_length=1024,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, type=pathlib.Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="Tiny configs, for a smoke run.")
    parser.add_argument(
        "--arm-only", action="store_true", help="Train only the ARM, from the reward backbone already built there."
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if not args.arm_only:
        tokenizer_dir = args.output_dir / "tokenizer"
        tokenizer_dir.mkdir(parents=True, exist_ok=True)
        train_metaspace_tokenizer(list(load_fortunes("train"))).save_pretrained(tokenizer_dir)
        # build_reward_backbone reads the tokenizer and the base's config (for its size ratio) from one folder.
        shutil.copy(ASSETS_DIR / "base" / "config.json", tokenizer_dir / "config.json")
        backbone_config = REWARD_BACKBONE_QUICK_CONFIG if args.quick else REWARD_BACKBONE_FULL_CONFIG
        build_reward_backbone(args.output_dir / "reward-backbone", backbone_config, base_dir=tokenizer_dir)
    build_arm(
        "sentiment",
        args.output_dir / "arm-sentiment",
        ARM_QUICK_CONFIG if args.quick else ARM_FULL_CONFIG,
        backbone_dir=args.output_dir / "reward-backbone",
    )
    print(f"built in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

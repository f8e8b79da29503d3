"""Tiny, offline building blocks for tests, doctests and examples.

Nothing here touches the Hugging Face Hub: the tokenizer is trained in well under a second on a
built-in corpus with the `tokenizers` library (the same recipe, `train_byte_level_bpe_tokenizer`, trains the
demo assets' tokenizer on the fortunes), and models are built from configs with random weights.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

__all__ = ["END_OF_TEXT", "TINY_CORPUS", "make_tiny_causal_lm", "make_tiny_tokenizer", "train_byte_level_bpe_tokenizer"]

END_OF_TEXT = "<|endoftext|>"

TINY_CORPUS = [
    "The weather is lovely today and everyone is happy.",
    "I hate waiting in long lines at the bank.",
    "What a wonderful surprise, thank you so much!",
    "This is the worst movie I have ever seen.",
    "The cat sat on the warm mat by the fire.",
    "Life is short; eat dessert first.",
    "A journey of a thousand miles begins with a single step.",
    "Never trust a computer you cannot throw out of a window.",
    "Good friends and good food make a good evening.",
    "The meeting was boring and far too long.",
    "Question: how do I bake bread? Answer: mix flour, water, salt and yeast, then wait.",
    "Please be kind to each other, it costs nothing.",
] * 4


def train_byte_level_bpe_tokenizer(texts: Sequence[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE tokenizer on `texts`: the recipe of the demo assets' tokenizer.

    `<|endoftext|>` is its only special token and serves as BOS, EOS and pad token; padding is on the
    left, as decoder-only generation wants.

    Args:
        texts (`Sequence[str]`): Training corpus.
        vocab_size (`int`, *optional*, defaults to `4096`):
            Target vocabulary size, including the 256 byte tokens and `<|endoftext|>`.

    Returns:
        `PreTrainedTokenizerFast`: the trained tokenizer.

    Examples:

    ```python
    >>> tokenizer = train_byte_level_bpe_tokenizer(["A fortune a day.", "Keeps the doctor away?"], vocab_size=300)
    >>> tokenizer.decode(tokenizer("A fortune")["input_ids"])
    'A fortune'
    ```
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        padding_side="left",
        model_max_length=1024,
    )


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(vocab_size: int) -> str:
    return train_byte_level_bpe_tokenizer(TINY_CORPUS, vocab_size=vocab_size).backend_tokenizer.to_str()


def make_tiny_tokenizer(vocab_size: int = 400, padding_side: str = "left") -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained locally on a tiny built-in corpus.

    `<|endoftext|>` is its BOS, EOS and pad token, as for GPT-2.

    Args:
        vocab_size (`int`, *optional*, defaults to `400`):
            Target vocabulary size (the byte alphabet alone is 256 tokens).
        padding_side (`str`, *optional*, defaults to `"left"`):
            Padding side; decoder-only generation wants `"left"`.

    Returns:
        `PreTrainedTokenizerFast`: a fresh tokenizer object (safe to modify).

    Examples:

    ```python
    >>> tokenizer = make_tiny_tokenizer()
    >>> tokenizer.decode(tokenizer("Hello world")["input_ids"])
    'Hello world'
    ```
    """
    from tokenizers import Tokenizer

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json(vocab_size)),
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        padding_side=padding_side,
    )


def make_tiny_causal_lm(
    architecture: str = "gpt2",
    vocab_size: int = 400,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 256,
    seed: int = 0,
    eos_token_id: int = 0,
) -> PreTrainedModel:
    """A randomly initialised causal LM of a given architecture, small enough for unit tests.

    Args:
        architecture (`str`, *optional*, defaults to `"gpt2"`):
            One of `"gpt2"`, `"llama"` or `"qwen2"`.
        vocab_size (`int`, *optional*, defaults to `400`):
            Rows of the embedding matrix; may exceed the tokenizer's size to mimic padded vocabularies.
        hidden_size (`int`, *optional*, defaults to `32`): Width of the model.
        num_layers (`int`, *optional*, defaults to `2`): Number of transformer blocks.
        num_heads (`int`, *optional*, defaults to `4`): Attention heads.
        max_positions (`int`, *optional*, defaults to `256`): Maximum sequence length.
        seed (`int`, *optional*, defaults to `0`): Seed of the random initialisation.
        eos_token_id (`int`, *optional*, defaults to `0`): EOS (and BOS/pad) id, `<|endoftext|>` in the tiny tokenizer.

    Returns:
        `PreTrainedModel`: the model in eval mode, float32.

    Examples:

    ```python
    >>> model = make_tiny_causal_lm("llama", vocab_size=416)
    >>> model.get_output_embeddings().weight.shape[0]
    416
    ```
    """
    torch.manual_seed(seed)
    special = {"bos_token_id": eos_token_id, "eos_token_id": eos_token_id, "pad_token_id": eos_token_id}
    if architecture == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            n_positions=max_positions,
            **special,
        )
        model = GPT2LMHeadModel(config)
    elif architecture in ("llama", "qwen2"):
        config_class, model_class = (
            (LlamaConfig, LlamaForCausalLM) if architecture == "llama" else (Qwen2Config, Qwen2ForCausalLM)
        )
        config = config_class(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=max(1, num_heads // 2),
            max_position_embeddings=max_positions,
            tie_word_embeddings=False,
            **special,
        )
        model = model_class(config)
    else:
        raise ValueError(f"`architecture` must be 'gpt2', 'llama' or 'qwen2', got {architecture!r}.")
    return model.eval()

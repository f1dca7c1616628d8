"""A built-in English text for language models: the Python documentation's topics that ship inside
Python itself (``pydoc_data.topics``, about 79 topics and 465,000 characters), so a language model can
be trained, and its perplexity and drift measured, with no download.

The topics are split, seeded, into training and held-out ones (whole topics, so no held-out text
was seen in training). Each split is its text cut into samples of ``sample_chars`` characters, in
order: joined, the held-out samples are the held-out text again, which perplexity reads as one
token stream. Samples are text; the model's own ``preprocess`` tokenizes them, and the dataset's
objective is next-token prediction (``next_token_loss``), so a trainable model learns the language.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.plugin.data import Split
from harness.plugin.language_model import next_token_loss
from harness.plugin.types import Dataset, DatasetSplits, Params


class TextSplit(Split):
    """A text cut into samples of equal length (the last one shorter), in order."""

    def __init__(self, text: str, sample_chars: int) -> None:
        self.text = text
        self.chunks = [text[i:i + sample_chars] for i in range(0, len(text), sample_chars)]

    def __len__(self) -> int:
        return len(self.chunks)

    def sample(self, index: int) -> tuple[Any, int | None]:
        return self.chunks[index], None

    @property
    def labels(self) -> None:
        return None

    @property
    def has_labels(self) -> bool:
        return False

    def collate(self, raw: list[Any]) -> Any:
        raise TypeError("this dataset's samples are text: the model must bring its tokenizer (a model plugin's "
                        "`preprocess`), e.g. model tiny-lm or transformers with a model_id or path")


class PythonDocsParams(Params):
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of the topics held out (whole topics)")
    sample_chars: int = Field(128, ge=8, le=1_000_000,
                              description="characters per training sample: about the model's seq_len in tokens "
                                          "times its characters per token (1 for a byte-level model)")
    max_train_chars: int | None = Field(None, ge=1, description="use only this many characters of the training text "
                                                                "(a quick run)")


def python_docs_text() -> dict[str, str]:
    """The topics, by name, as Python ships them."""
    from pydoc_data import topics

    return dict(topics.topics)


def load_python_docs(params: PythonDocsParams, seed: int) -> DatasetSplits:
    import random

    topics = python_docs_text()
    names = sorted(topics)
    random.Random(seed).shuffle(names)
    n_test = max(1, round(len(names) * params.test_fraction))
    held, train = sorted(names[:n_test]), sorted(names[n_test:])
    train_text = "\n\n".join(topics[n].strip() for n in train)
    if params.max_train_chars is not None:
        train_text = train_text[:params.max_train_chars]
    test_text = "\n\n".join(topics[n].strip() for n in held)
    return DatasetSplits(train=TextSplit(train_text, params.sample_chars),
                         test=TextSplit(test_text, params.sample_chars), objective=next_token_loss)


PYTHON_DOCS = Dataset(
    name="python-docs",
    description="English text that ships with Python (pydoc_data.topics), split by topic: for language models "
                "(next-token objective, perplexity; no download)",
    load=load_python_docs, params=PythonDocsParams,
)

"""Tiny corpora and tokenizers for the nlp tests; nothing may reach the network."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest

from mltricks.nlp import train_wordpiece_tokenizer

CORPUS = [
    "Return the number of items in the list.",
    "Open the file and return its contents as a string.",
    "Raise a value error when the key is missing from the mapping.",
    "Return a new list with the items sorted by their key.",
    "Close the file and release the lock held by the reader.",
    "The default value of the timeout is none, which waits forever.",
    "Read a line from the stream and return it without the newline.",
    "Write the string to the stream and flush the buffer.",
] * 4


@pytest.fixture(scope="session")
def tokenizer():
    return train_wordpiece_tokenizer(CORPUS, vocab_size=120, min_frequency=1, max_length=32)

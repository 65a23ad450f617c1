"""Surface statistics of (title, body) texts as nine numeric features.

The features of the fake-news system (docs/systems/fake-news.md).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

# a word: letters or digits, with inner apostrophes kept ("don't" is one word)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
PER_TEXT = ("words", "exclamation_marks", "question_marks", "lexical_diversity")
FEATURE_NAMES = (
    *(f"title_{name}" for name in PER_TEXT),
    *(f"body_{name}" for name in PER_TEXT),
    "title_word_share",
)


def _text(value: Any, row: int, column: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # a missing title or body (None, NaN from pandas) counts as empty
    if not isinstance(value, str):
        raise TypeError(
            f"X[{row}, {column}] must be a string (title, body); got {value!r} of type "
            f"{type(value).__name__}"
        )
    return value


def _statistics(text: str) -> tuple[int, int, int, float]:
    words = [w.lower() for w in _WORD.findall(text)]
    diversity = len(set(words)) / len(words) if words else 0.0
    return len(words), text.count("!"), text.count("?"), diversity


class TextStatistics(TransformerMixin, BaseEstimator):
    """(title, body) texts to nine features: for the title and the body, the number of words,
    of exclamation marks and of question marks and the lexical diversity (distinct words /
    words, lower-cased; 0 for a text without words), then the title's share of all words
    (title words / (title words + body words); 0 when both are empty).

    Words are runs of letters and digits with inner apostrophes. Stateless: ``fit`` only
    records the input's width (and column names of a DataFrame).

    Input ``X``: ``(n_samples, 2)`` array-like or DataFrame of strings, title then body; None
    and NaN count as empty text. Output: ``(n_samples, 9)`` float64, columns in
    ``get_feature_names_out()`` order.

    Example:
        >>> TextStatistics().fit_transform([["Big news!", "Is it true? It is."]]).round(3)
        array([[2.   , 1.   , 0.   , 1.   , 5.   , 0.   , 1.   , 0.6  , 0.286]])
    """

    def fit(self, X: Any, y: Any = None) -> TextStatistics:
        self._rows(X)
        self.n_features_in_ = 2
        columns = getattr(X, "columns", None)
        if columns is not None:
            self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        out = np.zeros((len(rows), len(FEATURE_NAMES)))
        for i, (title, body) in enumerate(rows):
            title_stats, body_stats = _statistics(title), _statistics(body)
            total = title_stats[0] + body_stats[0]
            out[i, :4], out[i, 4:8] = title_stats, body_stats
            out[i, 8] = title_stats[0] / total if total else 0.0
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The nine feature names (``title_words`` ... ``title_word_share``)."""
        return np.asarray(FEATURE_NAMES, dtype=object)

    def _rows(self, X: Any) -> list[tuple[str, str]]:
        values = X.to_numpy(dtype=object) if hasattr(X, "to_numpy") else X
        if isinstance(values, str) or not hasattr(values, "__len__"):
            raise TypeError(f"X must be (n_samples, 2) (title, body) texts; got {type(X).__name__}")
        array = np.empty((len(values), 2), dtype=object)
        for i, row in enumerate(values):
            if isinstance(row, str) or not hasattr(row, "__len__") or len(row) != 2:
                raise ValueError(
                    f"X must be (n_samples, 2) with a title and a body per row; row {i} is {row!r}"
                )
            array[i] = row
        return [(_text(t, i, 0), _text(b, i, 1)) for i, (t, b) in enumerate(array)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.requires_fit = False
        return tags

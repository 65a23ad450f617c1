import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mltricks.tabular import FEATURE_NAMES, TextStatistics


def _row(title, body):
    return dict(zip(FEATURE_NAMES, TextStatistics().fit_transform([[title, body]])[0]))


def test_hand_counted_example():
    row = _row("Breaking: Aliens land!", "Is it true? It is TRUE! Really?!")
    # title: breaking, aliens, land -> 3 words, all distinct, one "!"
    assert row["title_words"] == 3 and row["title_exclamation_marks"] == 1
    assert row["title_question_marks"] == 0 and row["title_lexical_diversity"] == 1.0
    # body: is it true it is true really -> 7 words, 4 distinct (case ignored)
    assert row["body_words"] == 7 and row["body_lexical_diversity"] == pytest.approx(4 / 7)
    assert row["body_exclamation_marks"] == 2 and row["body_question_marks"] == 2
    assert row["title_word_share"] == pytest.approx(3 / 10)


def test_empty_title_empty_body_and_missing_values():
    empty_title = _row("", "one two two")
    assert [empty_title[f"title_{n}"] for n in ("words", "lexical_diversity")] == [0, 0]
    assert empty_title["body_lexical_diversity"] == pytest.approx(2 / 3)
    assert empty_title["title_word_share"] == 0
    empty_body = _row("Why?", "")
    assert empty_body["title_word_share"] == 1 and empty_body["body_words"] == 0
    assert empty_body["body_lexical_diversity"] == 0 and empty_body["title_question_marks"] == 1
    assert all(value == 0 for value in _row("", "").values())
    # None and NaN (a missing cell of a DataFrame) count as empty text
    assert _row(None, math.nan) == _row("", "")
    # punctuation alone holds no word; inner apostrophes stay in the word
    assert _row("!!!", "don't don't stop")["body_words"] == 3
    assert _row("!!!", "")["title_exclamation_marks"] == 3


def test_shapes_names_dataframes_and_pipelines():
    import pandas as pd

    frame = pd.DataFrame({"title": ["A b", None], "text": ["c d e", "f"]})
    statistics = TextStatistics().fit(frame)
    out = statistics.transform(frame)
    assert out.shape == (2, 9) and out.dtype == np.float64
    assert list(statistics.get_feature_names_out()) == list(FEATURE_NAMES)
    assert list(statistics.feature_names_in_) == ["title", "text"]
    assert np.array_equal(out, TextStatistics().transform(frame.to_numpy()))
    pipeline = clone(make_pipeline(TextStatistics(), StandardScaler()))
    assert pipeline.fit_transform(frame).shape == (2, 9)
    assert TextStatistics().get_params() == {}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="title and a body"):
        TextStatistics().fit_transform([["only a title"]])
    with pytest.raises(TypeError, match=r"X\[0, 1\] must be a string"):
        TextStatistics().fit_transform([["title", 3]])
    with pytest.raises(TypeError, match="X must be"):
        TextStatistics().fit_transform("title and body")

"""Text corpora: the standard-library docstrings, CSV loaders, real vs generated docstrings."""

import csv
import itertools

import numpy as np
import pytest

from mltricks.data import (
    load_docstring_corpus,
    load_labeled_text_csv,
    load_real_vs_generated_docstrings,
    load_text_csv,
)
from mltricks.data.text import _docstrings_of

MODULES = ("argparse", "csv", "enum", "fnmatch", "glob", "json", "shlex", "string", "textwrap")


def test_docstring_cleaning_on_a_hand_written_module(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        '"""Tools for the :class:`Widget` and ``frobnicate``.\n\n'
        "Example::\n\n    x = frobnicate(1)\n    y = frobnicate(2)\n\n"
        ">>> frobnicate(3)\n4\n\n"
        'A second paragraph\nover two lines.\n\n{"a": [1, 2], "b": (3, 4)}\n"""\n\n'
        'class Widget:\n    """One widget."""\n\n'
        '    def spin(self):\n        """Spin it, fast."""\n'
    )
    docs = _docstrings_of(source, "sample")
    assert [d.name for d in docs] == ["", "Widget", "Widget.spin"]
    assert docs[0].paragraphs == (
        "Tools for the Widget and frobnicate.",
        "A second paragraph over two lines.",
    )
    assert docs[2].paragraphs == ("Spin it, fast.",)


def test_corpus_is_deduplicated_and_split_by_package():
    everything = load_docstring_corpus(modules=MODULES)
    train = load_docstring_corpus(split="train", modules=MODULES, random_state=1)
    test = load_docstring_corpus(split="test", modules=MODULES, random_state=1)
    assert len(train) + len(test) == len(everything) > 100
    assert not set(train.groups) & set(test.groups), "a package in both splits"
    assert set(train.groups) | set(test.groups) == set(MODULES)
    keys = [t.lower() for t in everything.texts]
    assert len(set(keys)) == len(keys)
    assert all(len(t.split()) >= 5 for t in everything.texts)
    assert not any(">>>" in t or "\n" in t or "``" in t for t in everything.texts)
    again = load_docstring_corpus(split="test", modules=MODULES, random_state=1)
    assert again.texts == test.texts
    assert 0.05 < len(test) / len(everything) < 0.6


def test_corpus_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        load_docstring_corpus(split="validation")
    with pytest.raises(ValueError, match="no standard-library docstrings"):
        load_docstring_corpus(modules=("no_such_module",))
    with pytest.raises(ValueError, match="2 or more modules"):
        load_docstring_corpus(split="train", modules=("json",))


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_text_csv_reads_a_column_and_names_the_columns_it_found(tmp_path):
    long = "word " * 40_000  # over the csv module's default field limit of 128 KiB
    path = _write_csv(
        tmp_path / "tweets.csv",
        ["id", "content"],
        [[1, "Earthquake felt in Gaziantep"], [2, ""], [3, long]],
    )
    assert load_text_csv(path) == ["Earthquake felt in Gaziantep", long.strip()]
    with pytest.raises(ValueError, match=r"text_column='text'.*columns found: 'id', 'content'"):
        load_text_csv(path, text_column="text")
    empty = _write_csv(tmp_path / "empty.csv", ["content"], [[""], [" "]])
    with pytest.raises(ValueError, match="no non-empty text"):
        load_text_csv(empty)
    with pytest.raises(FileNotFoundError, match="--data"):
        load_text_csv(tmp_path / "absent.csv")


def test_labeled_csv_maps_two_classes_and_refuses_more(tmp_path):
    rows = [["A title", "Some text", "FAKE"], ["B", "More", "REAL"], ["C", "", "FAKE"]]
    path = _write_csv(tmp_path / "news.csv", ["title", "text", "label"], rows)
    data = load_labeled_text_csv(path)
    assert data.labels.tolist() == [1, 0, 1] and data.label_names == ("REAL", "FAKE")
    assert data.pairs().tolist() == [["A title", "Some text"], ["B", "More"], ["C", ""]]
    numeric = _write_csv(
        tmp_path / "n.csv", ["title", "text", "label"], [["a", "b", 0], ["c", "d", 1]]
    )
    assert load_labeled_text_csv(numeric).labels.tolist() == [0, 1]
    three = _write_csv(
        tmp_path / "3.csv",
        ["title", "text", "label"],
        [["a", "b", 0], ["c", "d", 1], ["e", "f", 2]],
    )
    with pytest.raises(ValueError, match="exactly two classes"):
        load_labeled_text_csv(three)
    with pytest.raises(ValueError, match=r"label_column='kind'.*columns found"):
        load_labeled_text_csv(path, label_column="kind")


def test_generated_docstrings_are_balanced_chain_text_with_real_lengths():
    data = load_real_vs_generated_docstrings(num_per_class=40, random_state=0, modules=MODULES)
    assert len(data) == 80 and data.labels.sum() == 40
    real_titles = [t for t, y in zip(data.titles, data.labels) if y == 0]
    generated = [(t, b) for t, b, y in zip(data.titles, data.bodies, data.labels) if y == 1]
    # every generated word pair follows a pair seen in the real text, or restarts the chain
    pool = load_real_vs_generated_docstrings(num_per_class=40, random_state=1, modules=MODULES)
    assert pool.titles != data.titles  # another seed, another draw
    full = load_real_vs_generated_docstrings(
        num_per_class=_pool_size(), random_state=0, modules=MODULES
    )
    real_bodies = [b for b, y in zip(full.bodies, full.labels) if y == 0]
    seen = {pair for body in real_bodies for pair in itertools.pairwise(body.split())}
    starts = {body.split()[0] for body in real_bodies}
    lengths = {len(body.split()) for body in real_bodies}
    for _, body in generated:
        words = body.split()
        assert len(words) in lengths
        assert all(pair in seen or pair[1] in starts for pair in itertools.pairwise(words))
    assert set(real_titles) <= set(full.titles)
    again = load_real_vs_generated_docstrings(num_per_class=40, random_state=0, modules=MODULES)
    assert again.titles == data.titles and np.array_equal(again.labels, data.labels)
    with pytest.raises(ValueError, match="exceeds the"):
        load_real_vs_generated_docstrings(num_per_class=10**6, modules=MODULES)


def _pool_size():
    try:
        load_real_vs_generated_docstrings(num_per_class=10**6, modules=MODULES)
    except ValueError as error:
        return int(str(error).split("exceeds the ")[1].split()[0])
    raise AssertionError("expected an error")


def test_csv_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "news.csv"
    rows = "title,text,label\nA,fine,FAKE\nB,caf\u00e9 au lait,REAL\n"
    path.write_bytes(rows.encode("latin-1"))  # a spreadsheet's export in Latin-1
    with pytest.raises(ValueError, match=r"news\.csv' is not UTF-8 text: byte 0xe9 on line 3"):
        load_labeled_text_csv(path)
    with pytest.raises(ValueError, match=r"news\.csv' is not UTF-8 text.*iconv"):
        load_text_csv(path, text_column="text")
    path.write_bytes(rows.encode("utf-8-sig"))  # the same text as UTF-8 (with a BOM) reads
    assert load_text_csv(path, text_column="text") == ["fine", "caf\u00e9 au lait"]

"""Text data: the standard library's docstrings, CSV text loaders, and a labeled docstring corpus.

Nothing here downloads anything.

- ``load_docstring_corpus``: paragraphs of the docstrings of the Python standard library that
  runs this code (read from the ``.py`` sources with ``ast``, never imported), cleaned (doctest
  lines, code blocks and reST markup removed), deduplicated, and split by top-level package so
  that train and evaluation never share a module. Every Python install has this text, so it is
  the default corpus of masked-language-model fine-tuning.
- ``load_text_csv`` / ``load_labeled_text_csv``: one text column (tweets such as the earthquake
  tweets of docs/systems/bert-mlm.md) or title, text and binary label columns (the Kaggle
  fake/real news layout) from a CSV file; a missing column gives an error that lists the columns
  found.
- ``load_real_vs_generated_docstrings``: a labeled (title, body) corpus built offline. It is
  **not news**: class 0 are real standard-library docstrings (title = summary line, body = the
  rest), class 1 are machine-generated imitations of them from a word-bigram Markov chain fitted
  on the real titles and bodies, each as long (in words) as a randomly chosen real docstring. It
  stands in for the fake-news data of docs/systems/fake-news.md when no CSV is given; it tests
  whether surface statistics tell real text from generated text, not whether they detect
  misinformation.
"""

from __future__ import annotations

import ast
import csv
import itertools
import random
import re
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mltricks._utils.checks import check_choice, check_number
from mltricks.data.files import require_path

# folders of the standard library that hold tests, demos, generated tables or codec boilerplate
_SKIPPED_FOLDERS = frozenset(
    {"test", "tests", "idlelib", "turtledemo", "lib2to3", "pydoc_data", "encodings", "ensurepip"}
)
_SKIPPED_FOLDERS |= {"site-packages", "dist-packages", "__pycache__", "config-3"}


@dataclass(frozen=True)
class Docstring:
    """One cleaned docstring of the standard library."""

    module: str  # dotted module name, e.g. "json.decoder"
    group: str  # top-level package; train and evaluation never share one
    name: str  # qualified name of the documented object ("" for the module itself)
    paragraphs: tuple[str, ...]  # cleaned paragraphs, whitespace collapsed


@dataclass(frozen=True)
class TextCorpus:
    """Texts with the group (top-level package) each came from."""

    texts: list[str]
    groups: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class LabeledTexts:
    """(title, body) pairs with binary labels; ``label_names[k]`` names class ``k``."""

    titles: list[str]
    bodies: list[str]
    labels: np.ndarray  # (N,) int64 in {0, 1}
    label_names: tuple[str, str]

    def __len__(self) -> int:
        return len(self.labels)

    def pairs(self) -> np.ndarray:
        """``(N, 2)`` object array of (title, body): the input of ``tabular.TextStatistics``."""
        out = np.empty((len(self.titles), 2), dtype=object)
        out[:, 0], out[:, 1] = self.titles, self.bodies
        return out


# --- standard-library docstrings ------------------------------------------------------------------


def _group(top_level: str) -> str:
    # pure-Python twins share their text with the C module: _pydecimal -> decimal, _pyio -> io
    if top_level.startswith("_py") and top_level[3:] in sys.stdlib_module_names:
        top_level = top_level[3:]
    return top_level.strip("_") or top_level


_ROLE = re.compile(r":[\w.-]+(?::[\w.-]+)?:`~?([^`]*)`")
_BACKTICKS = re.compile(r"`+([^`]*)`+")


def _clean_paragraph(paragraph: str) -> str | None:
    lines = [line for line in paragraph.splitlines() if line.strip()]
    # doctests and indented blocks (code, option tables) are not prose
    if any(line.lstrip().startswith((">>>", "...")) for line in lines):
        return None
    if sum(line[:1].isspace() for line in lines) * 2 > len(lines):
        return None
    text = " ".join(" ".join(lines).split())
    text = _BACKTICKS.sub(r"\1", _ROLE.sub(r"\1", text))
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return text if text and letters >= 0.8 * len(text) else None


def _docstrings_of(path: Path, module: str) -> list[Docstring]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    found = []
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, name = stack.pop()
        doc = ast.get_docstring(node)  # type: ignore[arg-type]
        if doc:
            cleaned = [_clean_paragraph(p) for p in re.split(r"\n\s*\n", doc)]
            paragraphs = tuple(p for p in cleaned if p)
            if paragraphs:
                found.append(Docstring(module, _group(module.split(".")[0]), name, paragraphs))
        for child in reversed(getattr(node, "body", [])):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                stack.append((child, f"{name}.{child.name}".lstrip(".")))
    return found


@lru_cache(maxsize=8)
def stdlib_docstrings(modules: tuple[str, ...] | None = None) -> tuple[Docstring, ...]:
    """Every cleaned docstring of the standard library's Python sources, in file order.

    Args:
        modules: top-level module names to read (``("json", "argparse")``); None reads all
            except tests, demos, ``lib2to3``, codecs and generated tables.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    found: list[Docstring] = []
    for top in sorted(root.iterdir()) if root.is_dir() else []:
        name = top.name.removesuffix(".py")
        if name not in sys.stdlib_module_names or name in _SKIPPED_FOLDERS:
            continue
        if modules is not None and name not in modules:
            continue
        files = [top] if top.suffix == ".py" else sorted(top.rglob("*.py"))
        for path in files:
            parts = path.relative_to(root).with_suffix("").parts
            if not _SKIPPED_FOLDERS.intersection(parts):
                module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found += _docstrings_of(path, module)
    if not found:
        raise ValueError(
            f"no standard-library docstrings found under '{root}' for modules={modules!r}; "
            "this Python may ship without its sources: pass a CSV file with --data instead"
        )
    return tuple(found)


def _split_groups(groups: list[str], test_fraction: float, random_state: int) -> set[str]:
    """Groups drawn at random until they hold ``test_fraction`` of the items."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"a train/test split by module needs 2 or more modules; got {names}")
    counts = {name: groups.count(name) for name in names}
    order = np.random.default_rng(random_state).permutation(len(names))
    chosen: set[str] = set()
    held = 0
    for index in order:
        if held >= test_fraction * len(groups) or len(chosen) == len(names) - 1:
            break
        chosen.add(names[index])
        held += counts[names[index]]
    return chosen


def load_docstring_corpus(
    *,
    split: str = "all",
    test_fraction: float = 0.2,
    random_state: int = 0,
    modules: tuple[str, ...] | None = None,
    min_words: int = 5,
) -> TextCorpus:
    """Deduplicated docstring paragraphs of the standard library, split by top-level package.

    Args:
        split: ``"all"``, ``"train"`` or ``"test"``; a package's paragraphs are all in one split.
        test_fraction: share of paragraphs (about; whole packages move) in the test split.
        random_state: seed of the package draw.
        modules: top-level modules to read (None: all, see ``stdlib_docstrings``).
        min_words: shortest paragraph kept, in whitespace-separated words.

    Returns:
        ``TextCorpus`` with ``texts`` and the package (``groups``) of each.

    Example:
        >>> train = load_docstring_corpus(split="train", modules=("json", "csv", "textwrap"))
    """
    check_choice("split", split, ("all", "train", "test"))
    check_number("test_fraction", test_fraction, low=0.0, high=1.0, low_inclusive=False)
    check_number("min_words", min_words, low=1, integer=True)
    seen: set[str] = set()
    texts, groups = [], []
    for doc in stdlib_docstrings(None if modules is None else tuple(sorted(modules))):
        for paragraph in doc.paragraphs:
            key = paragraph.lower()
            if len(paragraph.split()) >= min_words and key not in seen:
                seen.add(key)
                texts.append(paragraph)
                groups.append(doc.group)
    if split != "all":
        test_groups = _split_groups(groups, test_fraction, random_state)
        keep = [(g in test_groups) == (split == "test") for g in groups]
        texts = [t for t, k in zip(texts, keep) if k]
        groups = [g for g, k in zip(groups, keep) if k]
    return TextCorpus(texts, groups)


# --- CSV files ------------------------------------------------------------------------------------


def _first_non_utf8(file: Path) -> str:
    """Where the first byte that is not UTF-8 is, in words (line numbers from 1)."""
    raw = file.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        return f"byte 0x{raw[error.start]:02x} on line {line} (offset {error.start})"
    return "a byte that is not UTF-8"


def _read_csv(path: str | Path, wanted: dict[str, str]) -> dict[str, list[str]]:
    """The ``wanted`` columns (argument name -> column) of a CSV file, as lists of strings."""
    file = require_path(path, "CSV file")
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # news articles exceed the default 128 KiB per field
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            found = list(reader.fieldnames or [])
            for argument, column in wanted.items():
                if column not in found:
                    raise ValueError(
                        f"{argument}={column!r} is not a column of '{file}'; columns found: "
                        f"{', '.join(map(repr, found)) or 'none'}"
                    )
            columns: dict[str, list[str]] = {column: [] for column in wanted.values()}
            for row in reader:
                for column in columns:
                    columns[column].append((row.get(column) or "").strip())
    except UnicodeDecodeError:
        raise ValueError(
            f"CSV file '{file}' is not UTF-8 text: {_first_non_utf8(file)}; save it as UTF-8 "
            "(a Latin-1 file, for example, with: iconv -f latin1 -t utf-8 in.csv > out.csv)"
        ) from None
    except csv.Error as error:
        raise ValueError(f"CSV file '{file}' cannot be parsed: {error}") from None
    finally:
        csv.field_size_limit(limit)
    return columns


def load_text_csv(path: str | Path, *, text_column: str = "content") -> list[str]:
    """The non-empty texts of one column of a CSV file (e.g. the ``content`` of tweets)."""
    texts = [t for t in _read_csv(path, {"text_column": text_column})[text_column] if t]
    if not texts:
        raise ValueError(f"column {text_column!r} of '{path}' holds no non-empty text")
    return texts


def _binary_labels(values: list[str], column: str) -> tuple[np.ndarray, tuple[str, str]]:
    classes = sorted(set(values))
    if len(classes) != 2:
        shown = ", ".join(map(repr, classes[:10])) + (" ..." if len(classes) > 10 else "")
        raise ValueError(
            f"label column {column!r} must hold exactly two classes (binary labels); found "
            f"{len(classes)}: {shown}"
        )
    fake = [c for c in classes if "fake" in c.lower()]
    positive = fake[0] if len(fake) == 1 else classes[1]  # "1" of 0/1, "FAKE" of FAKE/REAL
    negative = classes[0] if positive == classes[1] else classes[1]
    return np.array([v == positive for v in values], dtype=np.int64), (negative, positive)


def load_labeled_text_csv(
    path: str | Path,
    *,
    title_column: str = "title",
    text_column: str = "text",
    label_column: str = "label",
) -> LabeledTexts:
    """(title, body, label) rows of a CSV file such as the Kaggle fake/real news data.

    Labels must take exactly two values; class 1 is the one whose name contains "fake" (when
    exactly one does), else the larger in sorted order (``1`` of ``0``/``1``). Rows with an empty
    label are dropped.
    """
    wanted = {"title_column": title_column, "text_column": text_column}
    columns = _read_csv(path, {**wanted, "label_column": label_column})
    keep = [i for i, label in enumerate(columns[label_column]) if label]
    if not keep:
        raise ValueError(f"'{path}' has no rows with a label in column {label_column!r}")
    labels, names = _binary_labels([columns[label_column][i] for i in keep], label_column)
    return LabeledTexts(
        [columns[title_column][i] for i in keep],
        [columns[text_column][i] for i in keep],
        labels,
        names,
    )


# --- real vs generated docstrings ------------------------------------------------------------------


class _BigramChain:
    """A word-bigram Markov chain: the next word is drawn from the words that followed it."""

    def __init__(self, texts: list[str]) -> None:
        self.starts = [t.split()[0] for t in texts if t.split()]
        self.following: dict[str, list[str]] = {}
        for text in texts:
            words = text.split()
            for current, following in itertools.pairwise(words):
                self.following.setdefault(current, []).append(following)

    def generate(self, num_words: int, rng: random.Random) -> str:
        words = [rng.choice(self.starts)]
        while len(words) < num_words:
            # a word never followed by another (a text's last word) restarts the chain
            words.append(rng.choice(self.following.get(words[-1]) or self.starts))
        return " ".join(words)


def load_real_vs_generated_docstrings(
    *,
    num_per_class: int = 1000,
    random_state: int = 0,
    modules: tuple[str, ...] | None = None,
    min_words: int = 5,
) -> LabeledTexts:
    """Real standard-library docstrings (label 0) vs Markov-chain imitations of them (label 1).

    Not news: see the module docstring. Each real docstring gives a title (its summary
    paragraph) and a body (the other paragraphs, at least ``min_words`` words). The imitations
    come from word-bigram chains fitted on all real titles and all real bodies; each copies the
    title and body lengths (in words) of a randomly chosen real docstring, so length alone does
    not separate the classes.

    Args:
        num_per_class: real docstrings drawn, and imitations generated.
        random_state: seed of the draw and of the generator.
        modules: top-level modules to read (None: all).
        min_words: fewest words of a title's body.

    Returns:
        ``LabeledTexts`` in random order, ``label_names = ("real docstring", "generated")``.
    """
    check_number("num_per_class", num_per_class, low=1, integer=True)
    check_number("min_words", min_words, low=1, integer=True)
    seen: set[str] = set()
    pool: list[tuple[str, str]] = []
    for doc in stdlib_docstrings(None if modules is None else tuple(sorted(modules))):
        title, body = doc.paragraphs[0], " ".join(doc.paragraphs[1:])
        key = f"{title}\n{body}".lower()
        if len(body.split()) >= min_words and len(title.split()) >= 2 and key not in seen:
            seen.add(key)
            pool.append((title, body))
    if len(pool) < num_per_class:
        raise ValueError(
            f"num_per_class={num_per_class} exceeds the {len(pool)} docstrings with a title and a "
            f"body of >= {min_words} words in modules={modules!r}; ask for fewer"
        )
    rng = random.Random(random_state)
    titles_chain = _BigramChain([t for t, _ in pool])
    bodies_chain = _BigramChain([b for _, b in pool])
    real = rng.sample(pool, num_per_class)
    generated = []
    for _ in range(num_per_class):
        title, body = rng.choice(pool)
        generated.append(
            (
                titles_chain.generate(len(title.split()), rng),
                bodies_chain.generate(len(body.split()), rng),
            )
        )
    rows = [(t, b, 0) for t, b in real] + [(t, b, 1) for t, b in generated]
    rng.shuffle(rows)
    return LabeledTexts(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.array([r[2] for r in rows], dtype=np.int64),
        ("real docstring", "generated"),
    )

"""What a ``--data`` path holds: the formats experiments read, recognised from the file names.

An experiment declares the formats it reads in ``DATA_FORMATS`` (names of ``FORMATS``);
``resolve_config`` checks the path against them before any run folder exists, so that an empty
folder, or CIFAR-10 given to an experiment that reads MNIST only, is one line naming the path
and what is accepted. Recognising a format looks at names only; the loaders
(``mltricks.data``) check the contents when the run reads them.

Example:
    >>> describe(("mnist",))
    'an MNIST-format IDX folder (train-images-idx3-ubyte[.gz] and the three other IDX files)'
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from mltricks.data import is_mnist_folder
from mltricks.data.files import IMAGE_SUFFIXES

__all__ = ["FORMATS", "describe", "find_format", "holds", "mnist_folder", "refusal"]

FORMATS: dict[str, str] = {
    "mnist": "an MNIST-format IDX folder (train-images-idx3-ubyte[.gz] and the three other IDX "
    "files)",
    "cifar10": "the CIFAR-10 python batches (cifar-10-batches-py/data_batch_1, ...)",
    "image_folder": "an image folder (root/<class>/<image>)",
    "voc": "a Pascal VOC folder (one .xml per image, beside its image)",
    "coco": "a COCO JSON file",
    "csv": "a CSV file",
}


def mnist_folder(path: Path) -> Path | None:
    """The folder to give ``load_mnist`` for ``path``: ``path`` itself when the IDX files are
    in it (or in its ``MNIST/raw`` or ``raw`` subfolder, where ``load_mnist`` looks too; the
    published names or a mirror's, ``data.is_mnist_folder``), its ``mnist/`` subfolder when they
    are there; None when neither holds them."""
    for root in (path, path / "mnist"):
        if is_mnist_folder(root):
            return root
    return None


def _cifar10(path: Path) -> bool:
    return any(
        (folder / name).is_file()
        for folder in (path, path / "cifar-10-batches-py")
        for name in ("data_batch_1", "test_batch")
    )


def _image_folder(path: Path) -> bool:
    """Class folders of images, and no box annotations (a VOC or COCO folder keeps its photos
    in sub-folders too)."""
    if not path.is_dir() or _voc(path) or _coco(path):
        return False
    for folder in (d for d in path.iterdir() if d.is_dir()):
        # a look at the first files is enough to tell photos from IDX or pickle files
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in itertools.islice(folder.iterdir(), 50)):
            return True
    return False


def _voc(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".xml"
    return path.is_dir() and next(path.rglob("*.xml"), None) is not None


def _coco(path: Path) -> bool:
    """A JSON file, or a folder with exactly one and no VOC annotation (as
    ``load_detection_data`` reads it)."""
    if path.is_file():
        return path.suffix.lower() == ".json"
    return path.is_dir() and len(list(path.glob("*.json"))) == 1 and not _voc(path)


def _csv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".json", ".xml", ".gz")


_CHECKS: dict[str, Callable[[Path], bool]] = {
    "mnist": lambda path: path.is_dir() and mnist_folder(path) is not None,
    "cifar10": lambda path: path.is_dir() and _cifar10(path),
    "image_folder": _image_folder,
    "voc": _voc,
    "coco": _coco,
    "csv": _csv,
}


def holds(path: Path, name: str) -> bool:
    """Whether ``path`` looks like a data set of the format ``name`` (one of ``FORMATS``)."""
    if name not in _CHECKS:
        raise ValueError(f"name must be a format, one of {', '.join(FORMATS)}; got {name!r}")
    return _CHECKS[name](Path(path))


def find_format(path: Path, formats: Sequence[str] = tuple(FORMATS)) -> str | None:
    """The first of ``formats`` that ``path`` holds, or None."""
    return next((name for name in formats if holds(path, name)), None)


def describe(formats: Sequence[str]) -> str:
    """The formats as a reader would name them, joined by "or"."""
    return " or ".join(FORMATS[name] for name in formats)


def refusal(path: Path, formats: Sequence[str], reader: str) -> str | None:
    """None when ``path`` holds one of ``formats``; else the one-line reason ``reader`` (an
    experiment's name) cannot read it, naming the path and the formats it accepts."""
    if find_format(path, formats) is not None:
        return None
    other = find_format(path)
    if other is not None:
        found = f"holds {FORMATS[other]}"
    elif Path(path).is_dir():
        found = "is a folder that holds no data set in a format the lab reads"
    else:
        found = "is not a data set in a format the lab reads"
    only = " only" if len(formats) == 1 else ""
    return f"--data '{path}' {found}; {reader} reads {describe(formats)}{only}"

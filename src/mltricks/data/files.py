"""Loaders for real data sets in their published on-disk formats (nothing is downloaded).

- MNIST (and Fashion-MNIST, KMNIST, ...): the four IDX files (``train-images-idx3-ubyte`` ...),
  plain or gzip-compressed. ``path`` may also be a short name from ``DATA_SETS``
  (``"fashion-mnist"``: the folder of Debian's ``dataset-fashion-mnist`` package).
- CIFAR-10 / CIFAR-100: the "python version" batches. Those files are pickles; they are read
  with an unpickler that only accepts the plain containers and NumPy arrays they consist of, and
  only from a path the user gives, so a crafted file cannot run code.
- Image folders: ``root/<class name>/<image>``, the layout of the cotton disease images.

Every loader returns ``images`` as float32 ``(N, C, H, W)`` in [0, 1] and ``labels`` as int64.
A file that is damaged, truncated or holds something else raises a ``ValueError`` that names
the file and says what was expected there.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mltricks._utils.checks import check_choice, check_number
from mltricks.data.paths import require_path, resolve_data_path

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _check_labels(labels: np.ndarray, num_classes: int, file: Path, what: str) -> None:
    """Raise ``ValueError`` naming ``file`` unless every label is in ``0..num_classes - 1``."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"'{file}' holds {bad.size} label(s) outside 0..{num_classes - 1} (label "
            f"{labels[bad[0]]} at index {bad[0]}); {what} has labels 0..{num_classes - 1}"
        )


# --- MNIST ---------------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the format of MNIST), gzip-compressed or not.

    Compression is recognised from the content (the gzip magic bytes), not from the name, so a
    file decompressed by a download tool but still named ``.gz`` reads too.

    Args:
        path: the IDX file.

    Returns:
        The array, in the shape and type its header announces.

    Raises:
        ValueError: naming the file: a damaged or truncated gzip stream, no IDX magic number, an
            unknown data type, or a body shorter or longer than the header announces.
    """
    path = Path(path)
    raw = path.read_bytes()
    compressed = raw[:2] == _GZIP_MAGIC
    if compressed:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(
                f"'{path}' is a damaged or truncated gzip file ({error}); expected a "
                "gzip-compressed IDX file: download it again"
            ) from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        inside = "its decompressed content" if compressed else "it"
        raise ValueError(
            f"'{path}' is not an IDX file: expected the IDX magic number 00 00 <type> <ndim> "
            f"(or gzip data holding it), but {inside} starts with {raw[:4].hex(' ') or 'nothing'}"
        )
    if raw[2] not in _IDX_TYPES:
        known = ", ".join(f"0x{code:02x}" for code in _IDX_TYPES)
        raise ValueError(f"'{path}' has an unknown IDX data type 0x{raw[2]:02x}; known: {known}")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(
            f"'{path}' is truncated: its IDX header announces {ndim} dimensions but the file "
            f"ends after {len(raw)} bytes; download it again"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected, found = int(np.prod(shape)) * dtype.itemsize, len(raw) - offset
    if found < expected:
        raise ValueError(
            f"'{path}' is truncated: its header announces shape {shape} ({expected} bytes of "
            f"data) but the file holds {found}; download it again"
        )
    if found > expected:
        raise ValueError(
            f"'{path}' holds {found - expected} bytes beyond the shape {shape} its header "
            "announces: not a valid IDX file"
        )
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"MNIST file '{stem}' (or '{stem}.gz') not found under '{root}'; pass the folder that "
        "holds the four IDX files with --data PATH"
    )


def load_mnist(
    path: str | Path, *, split: str = "train", num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST, or any data set in its format, from the IDX files.

    Args:
        path: the folder of the IDX files (or its ``MNIST/raw`` parent), or a short name from
            ``mltricks.data.DATA_SETS`` such as ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        num_classes: labels must lie in ``0..num_classes - 1`` (10 for MNIST and Fashion-MNIST).

    Returns:
        images ``(N, 1, H, W)`` (28x28 for MNIST) in [0, 1] and labels ``(N,)``.

    Raises:
        FileNotFoundError: the folder or one of the two files of the split is missing.
        ValueError: naming the file: a file ``read_idx`` refuses, images that are not bytes of
            shape ``(N, H, W)``, labels that are not one integer per image, or a label out of
            range.

    Example:
        >>> images, labels = load_mnist("fashion-mnist", split="test")  # doctest: +SKIP
        >>> images.shape
        torch.Size([10000, 1, 28, 28])
    """
    check_choice("split", split, tuple(_MNIST_FILES))
    check_number("num_classes", num_classes, low=1, integer=True)
    root = require_path(resolve_data_path(path), "MNIST folder")
    image_file, label_file = (_find(root, stem) for stem in _MNIST_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"'{image_file}' holds {images.dtype} values of shape {images.shape}; expected "
            "MNIST images: unsigned bytes of shape (N, rows, columns)"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"'{label_file}' holds {labels.dtype} values of shape {labels.shape}; expected "
            "MNIST labels: one integer per image, shape (N,)"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"'{image_file}' holds {len(images)} images but '{label_file}' holds {len(labels)} "
            "labels; the two files of a split must have one label per image"
        )
    _check_labels(labels, num_classes, label_file, f"num_classes={num_classes}")
    tensor = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return tensor, torch.from_numpy(labels.astype(np.int64))


# --- CIFAR ---------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names code to run: refused, never a sign of a damaged file."""


class _DataOnlyUnpickler(pickle.Unpickler):
    """Loads dicts, lists, strings, numbers and NumPy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _RefusedGlobal(
                f"refusing to load '{module}.{name}': a CIFAR batch holds only arrays and lists"
            )
        return super().find_class(module, name)


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle a data-only file (CIFAR batches) without running any code it names.

    Raises:
        pickle.UnpicklingError: the file names a function or class other than NumPy's array
            reconstruction (a crafted file); nothing it names is run.
        ValueError: the file is not a complete pickle (truncated, or another kind of file).
    """
    path = Path(path)
    content = path.read_bytes()
    try:
        return _DataOnlyUnpickler(io.BytesIO(content), encoding="bytes").load()
    except _RefusedGlobal as error:
        raise pickle.UnpicklingError(f"'{path}': {error}") from None
    except Exception as error:  # a damaged pickle fails in many ways; all mean the same here
        raise ValueError(
            f"'{path}' is not a complete pickle ({type(error).__name__}: {error}); expected a "
            "data-only pickle such as a CIFAR python-version batch: the file may be truncated, "
            "download it again"
        ) from None


def _cifar_root(path: Path, folder: str) -> Path:
    return path / folder if (path / folder).is_dir() else path


def _cifar_batch(file: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one batch file, checked."""
    batch = load_data_pickle(file)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        found = sorted(map(repr, batch))[:10] if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"'{file}' is not a CIFAR-{num_classes} batch: expected a dict with the keys "
            f"b'data' and {label_key!r}; found {found}"
        )
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"'{file}': b'data' holds {data.dtype} values of shape {data.shape}; expected "
            "unsigned bytes of shape (N, 3072), one 32x32 RGB image per row"
        )
    labels = np.asarray(batch[label_key])
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(
            f"'{file}': {label_key!r} holds {labels.dtype} values of shape {labels.shape}; "
            "expected one integer label per image"
        )
    if len(labels) != len(data):
        raise ValueError(
            f"'{file}' holds {len(data)} images but {len(labels)} labels in {label_key!r}; a "
            "batch has one label per image"
        )
    _check_labels(labels, num_classes, file, f"CIFAR-{num_classes}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar(
    path: str | Path, *, split: str = "train", num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """CIFAR-10 or CIFAR-100 from the "python version" batches.

    Args:
        path: the ``cifar-10-batches-py`` / ``cifar-100-python`` folder or its parent.
        split: ``"train"`` or ``"test"``.
        num_classes: 10 or 100 (CIFAR-100 uses its fine labels).

    Returns:
        images ``(N, 3, 32, 32)``, labels ``(N,)`` and the class names.

    Raises:
        FileNotFoundError: the folder or a batch file of the split is missing.
        ValueError: naming the file: a damaged pickle, a batch without ``data`` and labels, a
            label count different from the image count, or a label out of range.
    """
    check_choice("split", split, ("train", "test"))
    check_choice("num_classes", num_classes, (10, 100))
    given = require_path(path, f"CIFAR-{num_classes} folder")
    if num_classes == 10:
        root = _cifar_root(given, "cifar-10-batches-py")
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_name, meta_key, label_key = "batches.meta", b"label_names", b"labels"
    else:
        root = _cifar_root(given, "cifar-100-python")
        names = [split]
        meta_name, meta_key, label_key = "meta", b"fine_label_names", b"fine_labels"
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-{num_classes} batch files {missing} not found under '{root}'; pass the "
            "folder of the python-version batches with --data PATH"
        )
    batches = [_cifar_batch(root / name, label_key, num_classes) for name in names]
    class_names = [str(i) for i in range(num_classes)]
    if (root / meta_name).exists():
        meta = load_data_pickle(root / meta_name)
        found = meta.get(meta_key) if isinstance(meta, dict) else None
        if not isinstance(found, list) or len(found) != num_classes:
            raise ValueError(
                f"'{root / meta_name}' is not the CIFAR-{num_classes} meta file: expected a dict "
                f"whose {meta_key!r} lists {num_classes} class names"
            )
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in found]
    images = np.concatenate([data for data, _ in batches]).astype(np.float32) / 255.0
    labels = np.concatenate([labels for _, labels in batches])
    return torch.from_numpy(images), torch.from_numpy(labels), class_names


# --- image files ---------------------------------------------------------------------------------


def read_image_file(path: str | Path, mode: str = "RGB") -> Image.Image:
    """One image file, fully decoded and converted to ``mode`` (``"RGB"`` or ``"L"``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file: it is truncated, damaged or not an image.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as opened:
            return opened.convert(mode)  # convert decodes every pixel: truncation shows here
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"image '{path}' cannot be read ({error}); expected a complete image file "
            f"({', '.join(IMAGE_SUFFIXES)}): it may be truncated or not an image"
        ) from None


def load_image_folder(
    path: str | Path, *, image_size: int = 64, channels: int = 3
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images under ``path/<class name>/``, resized to ``image_size`` squares.

    Classes are the sub-folders in sorted order (as in ``torchvision.datasets.ImageFolder``).

    Returns:
        images ``(N, channels, image_size, image_size)``, labels ``(N,)`` and class names.

    Raises:
        ValueError: no class folders, no images, or an image that cannot be read (named).
    """
    from PIL import Image

    check_number("image_size", image_size, low=1, integer=True)
    check_choice("channels", channels, (1, 3))
    root = require_path(path, "image folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not class_dirs:
        raise ValueError(f"image folder '{root}' has no class sub-folders (root/<class>/<image>)")
    images, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            converted = read_image_file(file, "L" if channels == 1 else "RGB")
            resized = converted.resize((image_size, image_size), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.float32) / 255.0
            images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise ValueError(f"image folder '{root}' holds no images with suffix {IMAGE_SUFFIXES}")
    return (
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels, dtype=torch.int64),
        [d.name for d in class_dirs],
    )

"""Loaders for real data sets in their published on-disk formats (nothing is downloaded).

- MNIST (and Fashion-MNIST, KMNIST, ...): the four IDX files (``train-images-idx3-ubyte`` ...,
  or ``train-images.idx3-ubyte`` ... as some mirrors name them), plain or gzip-compressed.
  ``path`` may also be a short name from ``DATA_SETS`` (``"fashion-mnist"``: the folder of
  Debian's ``dataset-fashion-mnist`` package).
- CIFAR-10 / CIFAR-100: the "python version" batches, with the ``bytes`` keys of the published
  files or the ``str`` keys of batches pickled again by Python 3. Those files are pickles; they
  are read with an unpickler that only accepts the plain containers and NumPy arrays they
  consist of, and only from a path the user gives, so a crafted file cannot run code.
- Image folders: ``root/<class name>/<image>``, the layout of the cotton disease images.

Every loader returns ``images`` as float32 ``(N, C, H, W)`` in [0, 1] and ``labels`` as int64.
A file that is damaged, truncated or holds something else raises a ``ValueError`` that names
the file and says what was expected there.
"""

from __future__ import annotations

import gzip
import io
import math
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
# where load_mnist looks under its folder: the files themselves, or torchvision's layout
_MNIST_SUBFOLDERS = (".", "MNIST/raw", "raw")
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
            unknown data type, a body shorter or longer than the header announces, or a shape
            no array can have.
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
    # Python's integers: numpy's product of sizes up to 2**32 - 1 overflows int64 and can wrap
    # to the body's length, which then fails to reshape without naming the file
    expected, found = math.prod(shape) * dtype.itemsize, len(raw) - offset
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
    try:
        return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    except ValueError as error:  # more than 64 dimensions, or sizes whose product overflows
        raise ValueError(
            f"'{path}': its IDX header announces shape {shape!s:.80}, which no array can have "
            f"({error}); not a valid IDX file"
        ) from None


def _mnist_names(stem: str) -> tuple[str, ...]:
    """A file's published name and the one some mirrors use (a dot before ``idx``:
    ``train-images.idx3-ubyte``), each plain or with ``.gz``."""
    dotted = stem.replace("-idx", ".idx")
    return tuple(name + suffix for name in (stem, dotted) for suffix in ("", ".gz"))


def _find_mnist_file(root: Path, stem: str) -> Path | None:
    for folder in _MNIST_SUBFOLDERS:
        for name in _mnist_names(stem):
            if (root / folder / name).is_file():
                return root / folder / name
    return None


def _find(root: Path, stem: str) -> Path:
    found = _find_mnist_file(root, stem)
    if found is None:
        names = ", ".join(f"'{name}'" for name in _mnist_names(stem))
        raise FileNotFoundError(
            f"MNIST file '{stem}' not found under '{root}' (looked for {names}, also in "
            "MNIST/raw and raw); pass the folder that holds the four IDX files with --data PATH"
        )
    return found


def is_mnist_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder ``load_mnist`` reads: it (or its ``MNIST/raw`` or ``raw``
    subfolder) holds at least one of the four IDX files under a name ``load_mnist`` accepts
    (``train-images-idx3-ubyte``, ``train-images.idx3-ubyte``, each plain or ``.gz``, and the
    same for the other three). Names only: the contents are checked when the files are read,
    and a missing file of the split read is named then.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mltricks.data import is_mnist_folder
        >>> folder = Path(tempfile.mkdtemp())
        >>> is_mnist_folder(folder)
        False
        >>> _ = (folder / "train-images.idx3-ubyte.gz").write_bytes(b"")
        >>> is_mnist_folder(folder)
        True
    """
    root = Path(path).expanduser()
    stems = [stem for pair in _MNIST_FILES.values() for stem in pair]
    return root.is_dir() and any(_find_mnist_file(root, stem) is not None for stem in stems)


def load_mnist(
    path: str | Path, *, split: str = "train", num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST, or any data set in its format, from the IDX files.

    Args:
        path: the folder of the IDX files (or its ``MNIST/raw`` parent), or a short name from
            ``mltricks.data.DATA_SETS`` such as ``"fashion-mnist"``. Files may carry their
            published names (``train-images-idx3-ubyte``) or the mirrors' (``train-images.idx3-
            ubyte``), plain or ``.gz``.
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
        ``load_mnist("fashion-mnist", split="test")`` reads Debian's Fashion-MNIST; any folder
        holding the split's two IDX files under their published names reads the same:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from mltricks.data import load_mnist
        >>> folder = Path(tempfile.mkdtemp())
        >>> def write_idx(name, array):  # header: 0, 0, type 0x08 (bytes), ndim, then each size
        ...     sizes = b"".join(n.to_bytes(4, "big") for n in array.shape)
        ...     data = bytes([0, 0, 8, array.ndim]) + sizes + array.astype(np.uint8).tobytes()
        ...     _ = (folder / name).write_bytes(data)
        >>> write_idx("t10k-images-idx3-ubyte", np.zeros((3, 28, 28)))
        >>> write_idx("t10k-labels-idx1-ubyte", np.array([7, 2, 1]))
        >>> images, labels = load_mnist(folder, split="test")
        >>> images.shape, labels.tolist()
        (torch.Size([3, 1, 28, 28]), [7, 2, 1])
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
    # pickle protocol 5 (Python 3's highest) stores an array as its buffer, read back by this
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
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


def _str_keys(content: Any) -> Any:
    """A dict's ``bytes`` keys as ``str`` (the published batches were pickled by Python 2, whose
    strings load as bytes; batches pickled again by Python 3 have ``str`` keys)."""
    if not isinstance(content, dict):
        return content
    return {
        key.decode("latin-1") if isinstance(key, bytes) else key: value
        for key, value in content.items()
    }


def _cifar_batch(file: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one batch file, checked."""
    batch = _str_keys(load_data_pickle(file))
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        found = sorted(map(repr, batch))[:10] if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"'{file}' is not a CIFAR-{num_classes} batch: expected a dict with the keys "
            f"b'data' and b{label_key!r} (or the str keys 'data' and {label_key!r}); found "
            f"{found}"
        )
    try:
        data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
    except (TypeError, ValueError) as error:  # e.g. ragged lists
        raise ValueError(
            f"'{file}': 'data' or {label_key!r} is not an array ({error}); expected a CIFAR "
            "batch's (N, 3072) bytes and N integer labels"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"'{file}': 'data' holds {data.dtype} values of shape {data.shape}; expected "
            "unsigned bytes of shape (N, 3072), one 32x32 RGB image per row"
        )
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
        pickle.UnpicklingError: naming the file: it names code to run (a crafted file; nothing
            it names is run).
    """
    check_choice("split", split, ("train", "test"))
    check_choice("num_classes", num_classes, (10, 100))
    given = require_path(path, f"CIFAR-{num_classes} folder")
    if num_classes == 10:
        root = _cifar_root(given, "cifar-10-batches-py")
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_name, meta_key, label_key = "batches.meta", "label_names", "labels"
    else:
        root = _cifar_root(given, "cifar-100-python")
        names = [split]
        meta_name, meta_key, label_key = "meta", "fine_label_names", "fine_labels"
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-{num_classes} batch files {missing} not found under '{root}'; pass the "
            "folder of the python-version batches with --data PATH"
        )
    batches = [_cifar_batch(root / name, label_key, num_classes) for name in names]
    class_names = [str(i) for i in range(num_classes)]
    if (root / meta_name).exists():
        meta = _str_keys(load_data_pickle(root / meta_name))
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

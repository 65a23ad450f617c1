"""Loaders for real data sets in their published on-disk formats (nothing is downloaded).

- MNIST: the four IDX files (``train-images-idx3-ubyte`` ...), plain or ``.gz``.
- CIFAR-10 / CIFAR-100: the "python version" batches. Those files are pickles; they are read
  with an unpickler that only accepts the plain containers and NumPy arrays they consist of, and
  only from a path the user gives, so a crafted file cannot run code.
- Image folders: ``root/<class name>/<image>``, the layout of the cotton disease images.

Every loader returns ``images`` as float32 ``(N, C, H, W)`` in [0, 1] and ``labels`` as int64.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smallml._utils.checks import check_choice, check_number

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def require_path(path: str | Path, what: str) -> Path:
    """Return ``path`` as a ``Path``; raise ``FileNotFoundError`` naming it and ``--data``."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(
            f"{what} not found: '{resolved}' does not exist; pass an existing path with --data PATH"
        )
    return resolved


# --- MNIST ---------------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the format of MNIST), gzip-compressed or not."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"'{path}' is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"'{path}' has an unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"'{path}' holds {data.size} values but its header says {shape}")
    return data.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).exists():
                return folder / name
    raise FileNotFoundError(
        f"MNIST file '{stem}' (or '{stem}.gz') not found under '{root}'; pass the folder that "
        "holds the four IDX files with --data PATH"
    )


def load_mnist(path: str | Path, *, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from its IDX files. Returns images ``(N, 1, 28, 28)`` and labels ``(N,)``."""
    check_choice("split", split, tuple(_MNIST_FILES))
    root = require_path(path, "MNIST folder")
    image_stem, label_stem = _MNIST_FILES[split]
    images = read_idx(_find(root, image_stem))
    labels = read_idx(_find(root, label_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"MNIST files under '{root}' do not match: images {images.shape}, labels {labels.shape}"
        )
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


class _DataOnlyUnpickler(pickle.Unpickler):
    """Loads dicts, lists, strings, numbers and NumPy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load '{module}.{name}': a CIFAR batch holds only arrays and lists"
            )
        return super().find_class(module, name)


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle a data-only file (CIFAR batches) without running any code it names."""
    with open(path, "rb") as handle:
        return _DataOnlyUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()


def _cifar_root(path: Path, folder: str) -> Path:
    return path / folder if (path / folder).is_dir() else path


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
    missing = [name for name in names if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-{num_classes} batch files {missing} not found under '{root}'; pass the "
            "folder of the python-version batches with --data PATH"
        )
    data, labels = [], []
    for name in names:
        batch = load_data_pickle(root / name)
        data.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    class_names = [str(i) for i in range(num_classes)]
    if (root / meta_name).exists():
        meta = load_data_pickle(root / meta_name)
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[meta_key]]
    images = torch.from_numpy(np.concatenate(data).astype(np.float32) / 255.0)
    return images, torch.from_numpy(np.concatenate(labels)), class_names


# --- image folders -------------------------------------------------------------------------------


def load_image_folder(
    path: str | Path, *, image_size: int = 64, channels: int = 3
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images under ``path/<class name>/``, resized to ``image_size`` squares.

    Classes are the sub-folders in sorted order (as in ``torchvision.datasets.ImageFolder``).

    Returns:
        images ``(N, channels, image_size, image_size)``, labels ``(N,)`` and class names.
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
            with Image.open(file) as opened:
                converted = opened.convert("L" if channels == 1 else "RGB")
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

"""Loaders read tiny files written in the exact published formats."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from smallml.data import load_cifar, load_data_pickle, load_image_folder, load_mnist, read_idx


def _write_idx(path, array, gz=False):
    codes = {np.uint8: 0x08}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype.type], array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    x, y = load_mnist(tmp_path, split="test")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(images).float())
    assert y.tolist() == [3, 1, 4, 1, 5]
    assert read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}").tolist() == labels.tolist()
    with pytest.raises(FileNotFoundError, match="--data"):
        load_mnist(tmp_path, split="train")


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


def _cifar_batch(n, labels_key, rng):
    return {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        labels_key: rng.integers(0, 10, size=n).tolist(),
        b"batch_label": b"x",
    }


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = [_cifar_batch(2, b"labels", rng) for _ in range(5)]
    for i, batch in enumerate(batches, 1):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (root / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, b"labels", rng)))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    x, y, classes = load_cifar(tmp_path, split="train")  # the parent folder works too
    assert x.shape == (10, 3, 32, 32) and y.shape == (10,)
    expected = batches[0][b"data"][0].reshape(3, 32, 32) / 255.0
    assert np.allclose(x[0].numpy(), expected)
    assert y[:2].tolist() == batches[0][b"labels"]
    assert classes[0] == "airplane"
    x_test, _, _ = load_cifar(root, split="test")
    assert len(x_test) == 3


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    batch = _cifar_batch(4, b"fine_labels", rng)
    (root / "train").write_bytes(pickle.dumps(batch))
    x, y, classes = load_cifar(tmp_path, split="train", num_classes=100)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == batch[b"fine_labels"]
    assert len(classes) == 100


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_crafted_pickle_cannot_run_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_data_pickle(path)


def test_missing_paths_name_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*--data"):
        load_cifar(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="--data"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="--data"):
        load_cifar(tmp_path)  # exists, but holds no batches


def test_image_folder(tmp_path):
    for cls, color in (("aphids", (255, 0, 0)), ("healthy", (0, 255, 0))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (20, 10), color).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "healthy" / "notes.txt").write_text("not an image")
    x, y, classes = load_image_folder(tmp_path, image_size=16)
    assert classes == ["aphids", "healthy"]
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]
    assert torch.allclose(x[0, 0], torch.ones(16, 16)) and torch.allclose(
        x[2, 1], torch.ones(16, 16)
    )
    gray, _, _ = load_image_folder(tmp_path, image_size=8, channels=1)
    assert gray.shape == (4, 1, 8, 8)

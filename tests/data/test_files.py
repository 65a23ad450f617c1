"""Loaders read tiny files written in the exact published formats."""

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mltricks.data import (
    is_mnist_folder,
    load_cifar,
    load_data_pickle,
    load_image_folder,
    load_mnist,
    read_idx,
    resolve_data_path,
)


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


# --- bad files: every error names the file and says what was expected ---------------------------


def _mnist_folder(tmp_path, images=None, labels=None, gz=True):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8) if images is None else images
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8) if labels is None else labels
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    return (
        tmp_path / f"train-images-idx3-ubyte{suffix}",
        tmp_path / f"train-labels-idx1-ubyte{suffix}",
    )


def test_mnist_label_out_of_range_names_the_labels_file(tmp_path):
    _mnist_folder(tmp_path, labels=np.array([3, 1, 200, 1, 5], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz'.*outside 0\.\.9.*200"):
        load_mnist(tmp_path)
    _, y = load_mnist(tmp_path, num_classes=201)  # a data set with more classes says so
    assert y.tolist() == [3, 1, 200, 1, 5]


def test_mnist_label_count_must_match_the_image_count(tmp_path):
    _mnist_folder(tmp_path, labels=np.array([3, 1, 4, 1], dtype=np.uint8))
    with pytest.raises(
        ValueError, match=r"images-idx3-ubyte\.gz' holds 5 images but .*labels-idx1.* holds 4"
    ):
        load_mnist(tmp_path)


def test_mnist_files_of_the_wrong_kind(tmp_path):
    image_file, label_file = _mnist_folder(tmp_path)
    label_file.write_bytes(image_file.read_bytes())  # images where labels belong
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte\.gz' holds .*expected MNIST labels"):
        load_mnist(tmp_path)


def _idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda raw: gzip.compress(raw)[:-20], "damaged or truncated gzip"),  # cut download
        (lambda raw: gzip.compress(raw)[:5], "damaged or truncated gzip"),
        (lambda raw: b"<html>Not Found</html>", r"not an IDX file.*starts with 3c 68 74 6d"),
        (lambda raw: gzip.compress(b"<html>"), r"not an IDX file.*decompressed"),
        (lambda raw: raw[:-7], r"truncated: .*shape \(5, 28, 28\) \(3920 bytes.*holds 3913"),
        (lambda raw: raw[:10], r"truncated: its IDX header announces 3 dimensions"),
        (lambda raw: gzip.compress(raw[:-1]), r"truncated"),
        (lambda raw: raw + b"\x00\x00", r"2 bytes beyond the shape \(5, 28, 28\)"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "unknown IDX data type 0x07"),
    ],
)
def test_damaged_idx_files_are_named(tmp_path, content, message):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content(_idx_bytes(images)))
    with pytest.raises(ValueError, match=message) as raised:
        read_idx(path)
    assert f"'{path}'" in str(raised.value)


def test_idx_compression_is_read_from_the_content(tmp_path):
    images = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    (tmp_path / "plain.gz").write_bytes(_idx_bytes(images))  # decompressed, name kept
    (tmp_path / "packed").write_bytes(gzip.compress(_idx_bytes(images)))
    assert np.array_equal(read_idx(tmp_path / "plain.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "packed"), images)


def _cifar10_folder(tmp_path, batches):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i, batch in enumerate(batches, 1):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    return root


def test_cifar_label_out_of_range_names_the_batch(tmp_path):
    rng = np.random.default_rng(0)
    batches = [_cifar_batch(2, b"labels", rng) for _ in range(5)]
    batches[2][b"labels"] = [4, 12]
    _cifar10_folder(tmp_path, batches)
    with pytest.raises(ValueError, match=r"data_batch_3' holds 1 label.*label 12 at index 1"):
        load_cifar(tmp_path)


def test_cifar100_fine_label_100_is_out_of_range(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    batch = _cifar_batch(3, b"fine_labels", np.random.default_rng(0))
    batch[b"fine_labels"] = [99, 0, 100]
    (root / "train").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=r"train' holds 1 label.*outside 0\.\.99"):
        load_cifar(tmp_path, num_classes=100)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update({b"labels": [1, 2, 3]}), "holds 2 images but 3 labels"),
        (lambda b: b.pop(b"data"), r"not a CIFAR-10 batch: expected a dict with the keys b'data'"),
        (lambda b: b.update({b"data": np.zeros((2, 100), np.uint8)}), r"shape \(2, 100\)"),
        (lambda b: b.update({b"labels": ["cat", "dog"]}), "one integer label per image"),
    ],
)
def test_cifar_batches_of_the_wrong_shape(tmp_path, change, message):
    rng = np.random.default_rng(0)
    batches = [_cifar_batch(2, b"labels", rng) for _ in range(5)]
    change(batches[0])
    _cifar10_folder(tmp_path, batches)
    with pytest.raises(ValueError, match=f"data_batch_1'.*{message}"):
        load_cifar(tmp_path)


def test_truncated_pickle_is_named(tmp_path):
    rng = np.random.default_rng(0)
    batches = [_cifar_batch(2, b"labels", rng) for _ in range(5)]
    root = _cifar10_folder(tmp_path, batches)
    full = (root / "data_batch_4").read_bytes()
    (root / "data_batch_4").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"data_batch_4' is not a complete pickle.*truncated"):
        load_cifar(tmp_path)
    (root / "data_batch_4").write_text("just some text\n")
    with pytest.raises(ValueError, match=r"data_batch_4' is not a complete pickle"):
        load_cifar(tmp_path)


def test_a_refused_pickle_names_the_file(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1': refusing .*system"):
        load_data_pickle(path)


def test_cifar_meta_file_must_list_the_classes(tmp_path):
    rng = np.random.default_rng(0)
    root = _cifar10_folder(tmp_path, [_cifar_batch(2, b"labels", rng) for _ in range(5)])
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog"]}))
    with pytest.raises(ValueError, match=r"batches\.meta' is not the CIFAR-10 meta file"):
        load_cifar(tmp_path)


def test_truncated_or_fake_images_are_named(tmp_path):
    (tmp_path / "healthy").mkdir()
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(
        buffer, "JPEG"
    )
    (tmp_path / "healthy" / "leaf.jpg").write_bytes(buffer.getvalue()[:-200])
    with pytest.raises(ValueError, match=r"image '.*leaf\.jpg' cannot be read.*truncated"):
        load_image_folder(tmp_path)
    (tmp_path / "healthy" / "leaf.jpg").write_text("not an image at all")
    with pytest.raises(ValueError, match=r"leaf\.jpg' cannot be read.*not an image"):
        load_image_folder(tmp_path)


# --- short names of packaged data sets ---------------------------------------------------------


def test_short_name_finds_the_packaged_folder(tmp_path, monkeypatch):
    from mltricks.data import paths

    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    monkeypatch.setitem(
        paths.DATA_SETS,
        "fashion-mnist",
        paths.DataSetLocation(folder, "sudo apt-get install dataset-fashion-mnist", "IDX files"),
    )
    with pytest.raises(FileNotFoundError) as missing:
        resolve_data_path("fashion-mnist")
    for part in ("'fashion-mnist' is not installed", str(folder), "apt-get install", "--data"):
        assert part in str(missing.value)
    folder.mkdir()
    _mnist_folder(folder)
    assert resolve_data_path("fashion-mnist") == folder
    assert resolve_data_path("Fashion-MNIST") == folder
    x, y = load_mnist("fashion-mnist")  # the loaders take the short name too
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [3, 1, 4, 1, 5]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fashion-mnist").mkdir()  # a local folder of that name wins: it is a path
    assert resolve_data_path("fashion-mnist") == Path("fashion-mnist")
    assert resolve_data_path(tmp_path / "elsewhere") == tmp_path / "elsewhere"  # left to loaders


def test_the_real_debian_folder_when_installed():
    from mltricks.data import paths

    folder = paths.DATA_SETS["fashion-mnist"].folder
    if not folder.is_dir():
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            resolve_data_path("fashion-mnist")
        if os.environ.get("MLTRICKS_REQUIRE_REAL_DATA") == "1":  # set by .ci/run
            pytest.fail(f"MLTRICKS_REQUIRE_REAL_DATA=1 but {folder} is missing")
        pytest.skip(f"{folder} is not installed")
    assert resolve_data_path("fashion-mnist") == folder
    _, labels = load_mnist("fashion-mnist", split="test")
    assert labels.shape == (10000,) and torch.bincount(labels).tolist() == [1000] * 10


def test_an_idx_header_whose_sizes_overflow_is_named(tmp_path):
    # issue 23: 65536**4 = 2**64 wrapped to 0 in numpy's int64 product, matching an empty body,
    # and the reshape failed with "cannot reshape array of size 0" naming no file
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">IIII", *[65536] * 4))
    with pytest.raises(ValueError, match=r"truncated: its header announces shape \(65536, "):
        read_idx(path)
    with pytest.raises(ValueError, match=f"'{path}'"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_files_named_as_some_mirrors_do(tmp_path, gz):
    # issue 23: train-images.idx3-ubyte (a dot before idx), as some mirrors distribute them
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    images = {
        s: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        for s, n in (("train", 4), ("t10k", 2))
    }
    labels = {"train": np.array([3, 1, 4, 1], np.uint8), "t10k": np.array([5, 9], np.uint8)}
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images.idx3-ubyte{suffix}", images[split], gz)
        _write_idx(tmp_path / f"{split}-labels.idx1-ubyte{suffix}", labels[split], gz)
    for split, stem in (("train", "train"), ("test", "t10k")):
        x, y = load_mnist(tmp_path, split=split)
        assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(images[stem]))
        assert y.tolist() == labels[stem].tolist()
    assert is_mnist_folder(tmp_path)


def test_is_mnist_folder_looks_where_load_mnist_does(tmp_path):
    assert not is_mnist_folder(tmp_path) and not is_mnist_folder(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("no IDX here")
    assert not is_mnist_folder(tmp_path) and not is_mnist_folder(tmp_path / "notes.txt")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((1, 2, 2), np.uint8))
    assert is_mnist_folder(tmp_path)
    _write_idx(raw / "t10k-labels.idx1-ubyte.gz", np.zeros(1, np.uint8), gz=True)
    x, y = load_mnist(tmp_path, split="test")  # the published and the mirrors' names mix
    assert x.shape == (1, 1, 2, 2) and y.tolist() == [0]
    with pytest.raises(FileNotFoundError, match=r"'train-images\.idx3-ubyte'.*--data"):
        load_mnist(tmp_path)  # the message lists the names it looked for


def _python3_cifar_batch(n, rng, labels_key="labels"):
    """A batch as Python 3 pickles it: str keys (the published files' keys load as bytes)."""
    return {
        "batch_label": "training batch 1 of 5",
        labels_key: rng.integers(0, 10, size=n).tolist(),
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        "filenames": [f"image_{i}.png" for i in range(n)],
    }


@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_cifar_batches_pickled_by_python3_with_str_keys(tmp_path, protocol):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = [_python3_cifar_batch(2, rng) for _ in range(5)]
    for i, batch in enumerate(batches, 1):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=protocol))
    (root / "test_batch").write_bytes(pickle.dumps(_python3_cifar_batch(3, rng), protocol))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    meta = {"label_names": [*names, "truck"], "num_cases_per_batch": 2, "num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    x, y, classes = load_cifar(tmp_path)
    expected = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32) / 255.0
    assert np.allclose(x.numpy(), expected)
    assert y.tolist() == [label for b in batches for label in b["labels"]]
    assert classes == [*names, "truck"]
    assert len(load_cifar(root, split="test")[0]) == 3
    # CIFAR-100 with str keys reads its fine labels
    root100 = tmp_path / "cifar-100-python"
    root100.mkdir()
    batch = _python3_cifar_batch(3, rng, labels_key="fine_labels")
    batch["fine_labels"] = [99, 0, 42]
    (root100 / "train").write_bytes(pickle.dumps(batch, protocol=protocol))
    assert load_cifar(tmp_path, num_classes=100)[1].tolist() == [99, 0, 42]

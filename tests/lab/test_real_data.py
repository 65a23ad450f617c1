"""Real data sets in their published formats: a bad file stops a run, and the run's error names
the file (issue 15 item 8: nothing runs to "done" on such data)."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from mltricks.lab import registry, runs
from mltricks.lab.config import resolve_config


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _mnist_folder(folder, labels):
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        images = rng.integers(0, 256, size=(len(labels), 28, 28))
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.asarray(labels))


def _run(name, data, out):
    module = registry.load(name)
    config = resolve_config(module, "smoke")
    return runs.execute(
        name, module, config, preset="smoke", seeds=(0,), out=out, data=data, command=name
    )


@pytest.mark.parametrize(
    ("damage", "named", "message"),
    [
        (lambda d: _mnist_folder(d, [3, 1, 200, 1]), "train-labels", "outside 0..9"),
        (
            lambda d: _mnist_folder(d, [3, 1, 4]) or _cut(d / "train-images-idx3-ubyte.gz"),
            "train-images",
            "damaged or truncated gzip",
        ),
    ],
)
def test_a_run_on_bad_mnist_files_fails_naming_the_file(tmp_path, damage, named, message):
    data = tmp_path / "data"
    data.mkdir()
    damage(data)
    path, state, error = _run("mc-dropout", data, tmp_path / "runs")
    assert state == "failed" and path is not None
    assert f"{named}-idx" in error and message in error, error


def _cut(file):
    file.write_bytes(file.read_bytes()[:-30])


def test_a_run_on_a_cifar_label_12_fails_naming_the_batch(tmp_path):
    root = tmp_path / "data" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [12, 0, 1] if name == "data_batch_2" else [0, 1, 2]
        batch = {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": labels}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    path, state, error = _run("mimo", tmp_path / "data", tmp_path / "runs")
    assert state == "failed" and path is not None
    assert "data_batch_2' holds 1 label(s) outside 0..9 (label 12" in error, error

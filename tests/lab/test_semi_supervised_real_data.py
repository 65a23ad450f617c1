"""The four semi-supervised experiments on a data folder given with ``--data`` (issue 15).

A tiny MNIST-format IDX folder is written in tmp_path in the published format (gzip IDX files);
its test split is one image repeated with one label, so any classifier's test accuracy on it is
exactly 0 or 1, which the digits' 360 varied test images never give: the runs read the folder.
"""

import gzip
import json
import math
import struct

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from mltricks.lab import registry, runs
from mltricks.lab.config import resolve_config
from mltricks.lab.data_sources import image_features, train_test_images
from mltricks.lab.semi_supervised import image_split

NUM_TRAIN, NUM_TEST = 400, 60


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _class_images(labels, rng):
    """28x28 noise with a bright 7x7 block at a position that codes the class."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 4)
        image[row * 7 : row * 7 + 7, col * 7 : col * 7 + 7] = 255
    return images


@pytest.fixture
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    train_labels = rng.permutation(np.arange(NUM_TRAIN) % 10)
    _write_idx(folder / "train-images-idx3-ubyte.gz", _class_images(train_labels, rng))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", train_labels)
    test_image = _class_images([3], rng)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", np.repeat(test_image, NUM_TEST, axis=0))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(NUM_TEST, 3))
    return folder


def _rows(images):
    return {tuple(row) for row in images.flatten(1).mul(255).round().int().tolist()}


def test_image_split_draws_its_parts_from_the_folders_capped_training_split(idx_folder):
    split = image_split(
        idx_folder,
        3,
        random_state=1,
        val_fraction=0.34,
        num_unlabeled=50,
        max_train=300,
        max_test=20,
    )
    assert split.labeled_x.shape[1:] == (1, 28, 28) and split.labeled_x.dtype == torch.float32
    assert torch.bincount(split.labeled_y, minlength=10).tolist() == [2] * 10
    assert torch.bincount(split.val_y, minlength=10).tolist() == [1] * 10
    assert len(split.unlabeled_x) == 50 and len(split.test_y) == 20
    # the parts are disjoint images of the 300 training images read (random noise: all distinct)
    x_train, _, _, _ = train_test_images(idx_folder, max_train=300, random_state=1)
    parts = [split.labeled_x, split.val_x, split.unlabeled_x]
    rows = [_rows(part) for part in parts]
    assert sum(len(r) for r in rows) == len(set().union(*rows)) == 20 + 10 + 50
    assert set().union(*rows) <= _rows(x_train)
    assert split.test_y.eq(3).all()
    # a seed draws the same split; another seed another one
    again = image_split(
        idx_folder,
        3,
        random_state=1,
        val_fraction=0.34,
        num_unlabeled=50,
        max_train=300,
        max_test=20,
    )
    assert torch.equal(again.unlabeled_x, split.unlabeled_x)
    other = image_split(idx_folder, 3, random_state=2, num_unlabeled=50, max_train=300)
    assert not torch.equal(other.unlabeled_x, split.unlabeled_x)


def test_the_caps_leave_the_digits_whole():
    capped = image_split(None, 10, random_state=3, val_fraction=0.3, max_train=100, max_test=10)
    plain = image_split(None, 10, random_state=3, val_fraction=0.3)
    assert len(capped.unlabeled_x) == 1437 - 100 and len(capped.test_y) == 360
    for name in ("labeled_x", "val_x", "unlabeled_x", "test_x"):
        assert torch.equal(getattr(capped, name), getattr(plain, name))


def test_image_features_fit_the_pca_on_the_pool_of_the_capped_folder(idx_folder):
    X_pool, y_pool, X_held, y_held, X_test, y_test = image_features(
        idx_folder,
        holdout_fraction=0.2,
        pca_components=5,
        random_state=0,
        max_train=300,
        max_test=20,
    )
    raw_pool, raw_y, _, _, raw_test, _ = image_features(
        idx_folder, holdout_fraction=0.2, random_state=0, max_train=300, max_test=20
    )
    assert raw_pool.shape == (240, 784) and raw_pool.dtype == np.float64
    assert X_pool.shape == (240, 5) and X_held.shape == (60, 5) and X_test.shape == (20, 5)
    np.testing.assert_array_equal(y_pool, raw_y)
    counts = np.bincount(np.concatenate([y_pool, y_held]), minlength=10)
    assert counts.sum() == 300 and len(y_held) == 60
    assert np.all(np.abs(np.bincount(y_held, minlength=10) - 0.2 * counts) <= 1)  # stratified
    pca = PCA(5, random_state=0).fit(raw_pool)
    np.testing.assert_allclose(X_test, pca.transform(raw_test), atol=1e-8)
    assert set(y_test.tolist()) == {3}


# per experiment: test-accuracy metrics that must be exactly 0 or 1 on the repeated test image
TEST_ACCURACIES = {
    "unsupervised-support": ("test_accuracy_ce", "test_accuracy_both", "test_accuracy_logreg"),
    "consistency-regularization": (
        "test_accuracy_lambda_0",
        "test_accuracy_chosen",
        "test_accuracy_logreg",
    ),
    "self-training": ("acc_logreg_2pct", "acc_self_training_2pct", "acc_label_spreading_2pct"),
    "cluster-then-label": ("acc_kmeans_vote_2pct", "acc_ctl_alpha0_2pct", "acc_logreg_2pct"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TEST_ACCURACIES))
def test_smoke_run_on_an_idx_folder_reads_it_and_finishes(name, idx_folder, tmp_path):
    module = registry.load(name)
    assert "mnist" in module.DATA_FORMATS and "MNIST" in module.DATA
    config = resolve_config(module, "smoke", data=idx_folder)
    path, state, error = runs.execute(
        name, module, config, preset="smoke", seeds=(0,), out=tmp_path / "runs", data=idx_folder
    )
    assert state == "done", error
    metrics = json.loads((path / "metrics.json").read_text())["per_seed"]["0"]
    for key in TEST_ACCURACIES[name]:
        assert metrics[key] in (0.0, 1.0), (key, metrics[key])
    figures = json.loads((path / "figures.json").read_text())
    assert figures and all((path / f["file"]).stat().st_size > 0 for f in figures)
    undefined = {
        key
        for key, value in metrics.items()
        if value is None or (isinstance(value, float) and not math.isfinite(value))
    }
    # self-training's pseudo-label accuracy is undefined (NaN) when the validation stop kept none
    assert {key for key in undefined if not key.startswith("pseudo_label_accuracy_")} == set()

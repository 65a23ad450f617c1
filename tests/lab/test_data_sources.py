"""The lab's image sources against references: the bundled digits, hand-written IDX files,
scikit-learn's split and PCA."""

import struct

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from mltricks.data import load_digits_images
from mltricks.lab.data_sources import digit_features, image_features, train_test_images


@pytest.mark.parametrize("caps", [{}, {"max_train": 10, "max_test": 5}])
def test_without_data_the_images_are_the_bundled_digits_fixed_split(caps):
    # the caps bound what is read from --data; the digits are always read whole
    x_train, y_train, x_test, y_test = train_test_images(None, **caps)
    reference = (*load_digits_images(split="train"), *load_digits_images(split="test"))
    for got, expected in zip((x_train, y_train, x_test, y_test), reference):
        assert torch.equal(got, expected)


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_an_mnist_idx_folder_is_read_as_the_data(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, prefix, count in (("train", "train", 12), ("test", "t10k", 5)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    x_train, y_train, x_test, y_test = train_test_images(tmp_path, source="mnist")
    assert x_train.shape == (12, 1, 28, 28) and x_test.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(x_train[:, 0].numpy() * 255, arrays["train"][0], atol=1e-3)
    np.testing.assert_array_equal(y_train.numpy(), arrays["train"][1])
    np.testing.assert_array_equal(y_test.numpy(), arrays["test"][1])
    capped = train_test_images(tmp_path, max_train=7, max_test=3, random_state=0)
    assert [len(t) for t in capped] == [7, 7, 3, 3]
    kept = {bytes(row) for row in (capped[0][:, 0].numpy() * 255).round().astype(np.uint8)}
    assert kept <= {bytes(row) for row in arrays["train"][0]}  # a subset, not new images


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        train_test_images(None, source="imagenet")


def test_digit_features_are_the_flat_pixels_cut_by_the_stratified_split():
    X_pool, y_pool, X_held, y_held, X_test, y_test = digit_features(
        holdout_fraction=0.2, random_state=5
    )
    images, labels = load_digits_images(split="train")
    X = images.reshape(len(images), -1).numpy().astype(np.float64)
    X_a, X_b, y_a, y_b = train_test_split(
        X, labels.numpy(), test_size=0.2, stratify=labels.numpy(), random_state=5
    )
    for got, expected in zip((X_pool, y_pool, X_held, y_held), (X_a, y_a, X_b, y_b)):
        np.testing.assert_array_equal(got, expected)
    assert X_pool.dtype == np.float64 and X_test.shape == (360, 64) and len(y_test) == 360


def test_digit_features_pca_is_fitted_on_the_pool_only():
    X_pool, _, X_held, _, X_test, _ = digit_features(
        holdout_fraction=0.2, pca_components=5, random_state=1
    )
    raw_pool, _, _, _, raw_test, _ = digit_features(holdout_fraction=0.2, random_state=1)
    pca = PCA(5, random_state=1).fit(raw_pool)
    assert X_pool.shape[1] == X_held.shape[1] == X_test.shape[1] == 5
    np.testing.assert_allclose(X_test, pca.transform(raw_test))


def _mnist_folder(folder, count, num_classes=10):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(count) % num_classes)
    return folder


def test_a_data_set_too_small_for_the_held_out_split_names_the_settings(tmp_path):
    # issue 23 item 7: cluster-then-label and self-training said scikit-learn's "the least
    # populated class in y has only 1 member"
    folder = _mnist_folder(tmp_path, 60)
    with pytest.raises(ValueError, match=r"class \d has 1 of 15 samples.*max_train=15.*"):
        image_features(folder, holdout_fraction=0.2, random_state=0, max_train=15)
    with pytest.raises(ValueError, match="pca_components=50 is more than the pool's"):
        image_features(folder, holdout_fraction=0.2, random_state=0, pca_components=50)


def test_a_folder_with_the_mnist_files_in_mnist_is_read_as_mnist(tmp_path):
    (tmp_path / "mnist").mkdir()
    _mnist_folder(tmp_path / "mnist", 12)
    x_train, _, x_test, _ = train_test_images(tmp_path)
    assert x_train.shape == (12, 1, 28, 28) and x_test.shape == (12, 1, 28, 28)


def test_a_folder_of_neither_source_names_the_path_and_both(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST-format IDX folder .* or the CIFAR-10"):
        train_test_images(tmp_path)

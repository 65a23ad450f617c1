"""The lab's shared recipes, against references: scikit-learn's split, a seeded permutation,
hand-written IDX files, mean_interval per column, and what matplotlib actually drew."""

import dataclasses
import math
import struct
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.semi_supervised import LabelSpreading

from mltricks.data import load_digits_images
from mltricks.lab import engine, recipes
from mltricks.lab.stats import Estimate, mean_interval
from mltricks.models import SmallCNN

# --- splits ------------------------------------------------------------------------------------


def test_stratified_split_equals_scikit_learns_split_of_the_arrays():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(103, 3)), rng.integers(0, 4, 103)
    train, val = recipes.validation_split(y, 0.3, random_state=7)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=7
    )
    np.testing.assert_array_equal(X[train], X_train)
    np.testing.assert_array_equal(X[val], X_val)
    np.testing.assert_array_equal(y[train], y_train)
    np.testing.assert_array_equal(y[val], y_val)


def test_stratified_split_is_a_partition_that_keeps_class_shares():
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    train, val = recipes.validation_split(y, 0.2, random_state=0)
    assert train.dtype == val.dtype == np.int64
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(y)))
    assert len(val) == math.ceil(0.2 * len(y))
    for label, count in enumerate([10, 20, 30, 40, 50]):
        assert abs(np.sum(y[val] == label) - 0.2 * count) <= 1


def test_unstratified_split_is_a_seeded_permutation():
    labels = torch.zeros(50, dtype=torch.long)
    train, val = recipes.validation_split(labels, 0.25, random_state=3, stratify=False)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(val, order[:12])  # int(0.25 * 50)
    np.testing.assert_array_equal(train, order[12:])
    again = recipes.validation_split(labels, 0.25, random_state=3, stratify=False)
    np.testing.assert_array_equal(again[1], val)
    other = recipes.validation_split(labels, 0.25, random_state=4, stratify=False)
    assert not np.array_equal(other[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_a_fraction_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="fraction"):
        recipes.validation_split(np.arange(10) % 2, fraction, random_state=0)


def test_split_rejects_labels_that_are_not_one_dimensional():
    with pytest.raises(ValueError, match=r"labels must be one-dimensional.*\(5, 2\)"):
        recipes.validation_split(np.zeros((5, 2)), 0.2, random_state=0)


def test_subsample_draws_matching_pairs_without_replacement():
    images = torch.arange(20.0)[:, None]
    labels = torch.arange(20)
    x, y = recipes.subsample(images, labels, 8, random_state=1)
    keep = torch.randperm(20, generator=torch.Generator().manual_seed(1))[:8]
    assert torch.equal(y, keep) and torch.equal(x[:, 0].long(), y)
    assert len(set(y.tolist())) == 8
    for size in (0, 20, 50):  # all of them, in their order
        x, y = recipes.subsample(images, labels, size, random_state=1)
        assert x is images and y is labels


@pytest.mark.parametrize(("fraction", "tag"), [(0.01, "1pct"), (0.02, "2pct"), (0.1, "10pct")])
def test_percent_tag(fraction, tag):
    assert recipes.percent_tag(fraction) == tag


# --- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("caps", [{}, {"max_train": 10, "max_test": 5}])
def test_without_data_the_images_are_the_bundled_digits_fixed_split(caps):
    # the caps bound what is read from --data; the digits are always read whole
    x_train, y_train, x_test, y_test = recipes.train_test_images(None, **caps)
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
    x_train, y_train, x_test, y_test = recipes.train_test_images(tmp_path, source="mnist")
    assert x_train.shape == (12, 1, 28, 28) and x_test.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(x_train[:, 0].numpy() * 255, arrays["train"][0], atol=1e-3)
    np.testing.assert_array_equal(y_train.numpy(), arrays["train"][1])
    np.testing.assert_array_equal(y_test.numpy(), arrays["test"][1])
    capped = recipes.train_test_images(tmp_path, max_train=7, max_test=3, random_state=0)
    assert [len(t) for t in capped] == [7, 7, 3, 3]
    kept = {bytes(row) for row in (capped[0][:, 0].numpy() * 255).round().astype(np.uint8)}
    assert kept <= {bytes(row) for row in arrays["train"][0]}  # a subset, not new images


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        recipes.train_test_images(None, source="imagenet")


def test_digit_features_are_the_flat_pixels_cut_by_the_stratified_split():
    X_pool, y_pool, X_held, y_held, X_test, y_test = recipes.digit_features(
        holdout=0.2, random_state=5
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
    X_pool, _, X_held, _, X_test, _ = recipes.digit_features(
        holdout=0.2, pca_components=5, random_state=1
    )
    raw_pool, _, _, _, raw_test, _ = recipes.digit_features(holdout=0.2, random_state=1)
    pca = PCA(5, random_state=1).fit(raw_pool)
    assert X_pool.shape[1] == X_held.shape[1] == X_test.shape[1] == 5
    np.testing.assert_allclose(X_test, pca.transform(raw_test))


def test_label_spreading_accuracy_is_its_score_without_the_warning():
    X_pool, y_pool, _, _, X_test, y_test = recipes.digit_features(holdout=0.2, random_state=0)
    y_semi = np.where(np.arange(len(y_pool)) % 10 == 0, y_pool, -1)
    spreading = LabelSpreading(kernel="knn", n_neighbors=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accuracy = recipes.label_spreading_accuracy(spreading, X_pool, y_semi, X_test, y_test)
    expected = LabelSpreading(kernel="knn", n_neighbors=3).fit(X_pool, y_semi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert accuracy == expected.score(X_test, y_test)


# --- models ------------------------------------------------------------------------------------


def test_train_small_cnn_reports_the_accuracy_of_its_validation_split():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.rand(200, 1, 8, 8, generator=generator) * 0.3 + 0.6 * labels[:, None, None, None]
    torch.manual_seed(0)
    model, training = recipes.train_small_cnn(
        images, labels, width=4, epochs=5, batch_size=16, lr=3e-3, val_fraction=0.25,
        random_state=2, num_classes=2,
    )  # fmt: skip
    assert isinstance(model, SmallCNN) and not model.training
    _, val = recipes.validation_split(labels, 0.25, random_state=2, stratify=False)
    loader = engine.make_loader(images[val], labels[val], batch_size=256)
    assert training["val_accuracy"] == pytest.approx(engine.evaluate(model, loader)["accuracy"])
    assert training["val_accuracy"] > 0.9  # the classes differ by brightness


def test_recalibrated_batch_norm_holds_the_exact_statistics_of_the_images():
    torch.manual_seed(0)
    model = SmallCNN(1, 3, width=4, dropout=0.5)
    images = torch.rand(70, 1, 8, 8) * 2 + 1  # far from the initial running statistics (0, 1)
    model.eval()
    recipes.recalibrate_batch_norm(model, images, batch_size=16)  # 5 batches, the last short
    assert not model.training  # the mode it came in
    first = model.features[1]
    with torch.no_grad():  # brute force: the first BatchNorm's input, batch by batch
        inputs = [model.features[0](batch) for batch in images.split(16)]
    mean = torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0)
    var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in inputs]).mean(0)
    assert torch.allclose(first.running_mean, mean, atol=1e-5)
    assert torch.allclose(first.running_var, var, rtol=1e-4)
    assert first.momentum == 0.1  # restored after the cumulative pass


def test_train_small_cnn_measures_validation_after_recalibration():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    images = torch.rand(120, 1, 8, 8, generator=generator) * 0.3 + 0.6 * labels[:, None, None, None]
    torch.manual_seed(0)
    kwargs = dict(width=4, epochs=2, batch_size=16, lr=3e-3, val_fraction=0.25, random_state=2)
    model, training = recipes.train_small_cnn(
        images, labels, num_classes=2, recalibrate_bn=True, **kwargs
    )
    train, val = recipes.validation_split(labels, 0.25, random_state=2, stratify=False)
    reference = SmallCNN(1, 2, width=4)
    reference.load_state_dict(model.state_dict())
    recipes.recalibrate_batch_norm(reference, images[train])  # idempotent on the same images
    for key, value in model.state_dict().items():
        assert torch.allclose(value.float(), reference.state_dict()[key].float(), atol=1e-6), key
    loader = engine.make_loader(images[val], labels[val], batch_size=256)
    assert training["val_accuracy"] == pytest.approx(engine.evaluate(model, loader)["accuracy"])


def test_lr_range_problem_is_reproducible_and_keeps_its_initial_weights():
    kwargs = dict(width=2, batch_size=64, val_fraction=0.25, seed=3, device=torch.device("cpu"))
    problem = recipes.lr_range_problem(**kwargs)
    again = recipes.lr_range_problem(**kwargs)
    assert len(problem.train_labels) + len(problem.val.dataset) == 1437
    assert len(problem.val.dataset) == int(0.25 * 1437)
    for key, value in problem.model.state_dict().items():
        assert torch.equal(value, problem.initial[key])
        assert torch.equal(value, again.initial[key])
    batches = recipes.batch_stream(problem)
    first_epoch = len(problem.train)
    seen = [next(batches) for _ in range(first_epoch + 1)]  # runs on into a second epoch
    assert len(seen) == first_epoch + 1 and all(len(b[0]) == 64 for b in seen)


def test_trained_val_losses_are_reproducible_and_leave_the_initial_weights():
    problem = recipes.lr_range_problem(
        width=4, batch_size=64, val_fraction=0.25, seed=0, device=torch.device("cpu")
    )
    kwargs = dict(lrs=(1e-5, 3e-3), optimizer="adam", epochs=1, repeats=1, batch_size=64, seed=0)
    losses = recipes.trained_val_losses(problem, **kwargs)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0]  # one epoch at 1e-5 barely moves the weights
    for key, value in problem.model.state_dict().items():
        assert torch.equal(value, problem.initial[key])
    assert recipes.trained_val_losses(problem, **kwargs) == losses


def test_trained_val_losses_rejects_an_unknown_optimizer():
    problem = recipes.lr_range_problem(
        width=2, batch_size=64, val_fraction=0.25, seed=0, device=torch.device("cpu")
    )
    with pytest.raises(ValueError, match="optimizer"):
        recipes.trained_val_losses(
            problem, lrs=(1e-3,), optimizer="lion", epochs=1, repeats=1, batch_size=64, seed=0
        )


# --- intervals in figures ----------------------------------------------------------------------


def test_column_estimates_are_mean_intervals_of_the_columns():
    rows = [[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 9.0, float("nan")]]
    estimates = recipes.column_estimates(rows)
    for k, estimate in enumerate(estimates):
        assert estimate == mean_interval([row[k] for row in rows])
    assert estimates[2].n == 2  # a non-finite value is left out, as mean_interval does
    with pytest.raises(ValueError, match="rows"):
        recipes.column_estimates([[1.0, 2.0], [3.0]])


def test_interval_errors_are_distances_to_the_interval_ends():
    estimates = [Estimate(1.0, 0.5, 2.0, 0.1, 3), Estimate(4.0, None, None, None, 1)]
    np.testing.assert_allclose(recipes.interval_errors(estimates), [[0.5, 0.0], [1.0, 0.0]])


def test_errorbar_draws_means_and_interval_ends():
    estimates = [Estimate(1.0, 0.5, 2.0, 0.1, 3), Estimate(3.0, 2.0, 3.5, 0.1, 3)]
    fig, ax = plt.subplots()
    container = recipes.errorbar(ax, [0, 1], estimates, fmt="o")
    np.testing.assert_allclose(container.lines[0].get_ydata(), [1.0, 3.0])
    segments = container.lines[2][0].get_segments()  # one vertical bar per point
    np.testing.assert_allclose([s[:, 1] for s in segments], [[0.5, 2.0], [2.0, 3.5]])
    plt.close(fig)


def test_band_fills_between_the_interval_ends_and_clips():
    estimates = [Estimate(0.9, 0.8, 1.1, 0.1, 3), Estimate(0.5, -0.2, 0.7, 0.1, 3)]
    fig, ax = plt.subplots()
    band = recipes.band(ax, [0, 1], estimates, clip=(0, 1))
    y = band.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(0.0) and y.max() == pytest.approx(1.0)
    free = recipes.band(ax, [0, 1], estimates).get_paths()[0].vertices[:, 1]
    assert free.min() == pytest.approx(-0.2) and free.max() == pytest.approx(1.1)
    plt.close(fig)


def test_for_data_applies_the_nonzero_data_fields_only_with_data(tmp_path):
    @dataclasses.dataclass
    class Config:
        epochs: int = 30
        width: int = 32
        data_epochs: int = 10
        data_width: int = 0  # 0: as on the digits
        data_only: int = 5  # no field 'only' to replace: left alone

    cfg = Config()
    assert recipes.for_data(cfg, None) is cfg
    assert recipes.for_data(cfg, tmp_path) == Config(epochs=10, width=32)


@pytest.mark.parametrize("name", ["mc_dropout", "fgsm", "carlini_wagner"])
def test_batch_norm_is_recalibrated_on_real_data_only(name):
    import importlib
    from pathlib import Path

    config = importlib.import_module(f"mltricks.lab.experiments.{name}").Config()
    assert recipes.for_data(config, None).recalibrate_bn is False  # the digits' numbers stay
    assert recipes.for_data(config, Path("fashion-mnist")).recalibrate_bn is True

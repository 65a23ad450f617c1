"""The vae experiment's baseline: k-NN on a PCA of the same size as the latent space."""

import pytest
from sklearn.neighbors import KNeighborsClassifier

from mltricks.data import load_digits_images
from mltricks.lab.experiments import vae


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = load_digits_images(split="train")
    x_test, y_test = load_digits_images(split="test")
    return x_train, y_train, x_test, y_test


def test_a_pca_keeping_every_dimension_gives_the_knn_accuracy_of_the_pixels(digits):
    # all 64 components: a rotation of the centred pixels, which keeps every distance
    x_train, y_train, x_test, y_test = digits
    knn = KNeighborsClassifier(n_neighbors=5).fit(x_train.flatten(1).numpy(), y_train.numpy())
    pixels = (knn.predict(x_test.flatten(1).numpy()) == y_test.numpy()).mean()
    cfg = vae.Config(latent_dim=64, knn_neighbors=5)
    assert vae.pca_knn_accuracy(cfg, *digits, seed=0) == pytest.approx(pixels)


def test_fewer_components_keep_less_of_what_separates_the_classes(digits):
    accuracy = [
        vae.pca_knn_accuracy(vae.Config(latent_dim=dim), *digits, seed=0) for dim in (1, 2, 8)
    ]
    assert accuracy == sorted(accuracy) and accuracy[0] < 0.5 < accuracy[-1]

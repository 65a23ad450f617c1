"""The strong simple baselines an experiment reports beside its technique.

A technique is worth using when it beats what a practitioner would try first on the same data
and labels, not only its own ablation. The one every image experiment shares is logistic
regression on the labelled images' pixels (scikit-learn's ``LogisticRegression``, standardised
pixels, L2, lbfgs): ``logistic_regression_accuracy``. Experiment-specific baselines (the same
network trained on the labelled images alone, a network trained on the whole training set) are
trained by the experiments themselves, with the lab's training helpers.

Example:
    >>> from mltricks.data import load_digits_images
    >>> x, y = load_digits_images(split="train")
    >>> x_test, y_test = load_digits_images(split="test")
    >>> round(logistic_regression_accuracy(x[:200], y[:200], x_test, y_test), 2) > 0.85
    True
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["logistic_regression", "logistic_regression_accuracy"]


def logistic_regression(*, C: float = 1.0, max_iter: int = 2000) -> object:
    """The lab's logistic-regression baseline: standardised pixels, then multinomial L2
    logistic regression (lbfgs). ``C`` is the inverse regularisation strength."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def logistic_regression_accuracy(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    test_images: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> float:
    """Test accuracy of ``logistic_regression`` fitted on the labelled ``images`` (any shape
    ``(N, ...)``, flattened) and ``labels`` ``(N,)``.

    A fit that stops at ``max_iter`` before converging still counts (its accuracy is what a
    practitioner would get); the warning is not repeated.
    """
    x = _flat(images)
    x_test = _flat(test_images)
    y, y_test = np.asarray(labels).reshape(-1), np.asarray(test_labels).reshape(-1)
    if len(x) != len(y) or len(x_test) != len(y_test):
        raise ValueError(
            f"images and labels must have the same length; got {len(x)} and {len(y)} "
            f"(test: {len(x_test)} and {len(y_test)})"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = logistic_regression(C=C, max_iter=max_iter).fit(x, y)
    return float(model.score(x_test, y_test))


def _flat(images: torch.Tensor | np.ndarray) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(len(array), -1)

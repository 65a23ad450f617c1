"""The lab's figure helpers: mean_interval per column, and what matplotlib actually drew."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mltricks.lab.plots import band, column_estimates, errorbar, interval_errors, show_image
from mltricks.lab.stats import Estimate, mean_interval


def test_column_estimates_are_mean_intervals_of_the_columns():
    rows = [[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 9.0, float("nan")]]
    estimates = column_estimates(rows)
    for k, estimate in enumerate(estimates):
        assert estimate == mean_interval([row[k] for row in rows])
    assert estimates[2].n == 2  # a non-finite value is left out, as mean_interval does
    with pytest.raises(ValueError, match="rows"):
        column_estimates([[1.0, 2.0], [3.0]])


def test_interval_errors_are_distances_to_the_interval_ends():
    estimates = [Estimate(1.0, 0.5, 2.0, 0.1, 3), Estimate(4.0, None, None, None, 1)]
    np.testing.assert_allclose(interval_errors(estimates), [[0.5, 0.0], [1.0, 0.0]])


def test_errorbar_draws_means_and_interval_ends():
    estimates = [Estimate(1.0, 0.5, 2.0, 0.1, 3), Estimate(3.0, 2.0, 3.5, 0.1, 3)]
    fig, ax = plt.subplots()
    container = errorbar(ax, [0, 1], estimates, fmt="o")
    np.testing.assert_allclose(container.lines[0].get_ydata(), [1.0, 3.0])
    segments = container.lines[2][0].get_segments()  # one vertical bar per point
    np.testing.assert_allclose([s[:, 1] for s in segments], [[0.5, 2.0], [2.0, 3.5]])
    plt.close(fig)


def test_band_fills_between_the_interval_ends_and_clips():
    estimates = [Estimate(0.9, 0.8, 1.1, 0.1, 3), Estimate(0.5, -0.2, 0.7, 0.1, 3)]
    fig, ax = plt.subplots()
    drawn = band(ax, [0, 1], estimates, clip=(0, 1))
    y = drawn.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(0.0) and y.max() == pytest.approx(1.0)
    free = band(ax, [0, 1], estimates).get_paths()[0].vertices[:, 1]
    assert free.min() == pytest.approx(-0.2) and free.max() == pytest.approx(1.1)
    plt.close(fig)


def test_show_image_draws_one_channel_gray_and_three_in_colour():
    fig, axes = plt.subplots(1, 2)
    gray = torch.rand(1, 5, 4)
    colour = torch.rand(3, 5, 4) * 1.2  # above 1 is clipped for matplotlib's RGB floats
    gray_image = show_image(axes[0], gray)
    colour_image = show_image(axes[1], colour)
    assert np.allclose(gray_image.get_array(), gray[0].numpy())
    assert gray_image.get_cmap().name == "gray" and gray_image.get_clim() == (0, 1)
    expected = colour.permute(1, 2, 0).clamp(0, 1).numpy()
    assert np.allclose(colour_image.get_array(), expected)
    assert not list(axes[0].get_xticks()) and not list(axes[1].get_yticks())
    with pytest.raises(ValueError, match=r"\(C, H, W\) with C in \(1, 3\); got shape \(2, 5, 4\)"):
        show_image(axes[0], torch.rand(2, 5, 4))
    plt.close(fig)

"""Temperature scaling, the calibration baseline of the mc-dropout experiment, against a
brute-force search and a known answer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mltricks.lab.baselines import fit_temperature


def _calibrated_sample(num_samples=20000, seed=0):
    """Logits and labels drawn from the logits' own softmax: calibrated at T = 1."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(num_samples, 10, generator=generator)
    labels = torch.multinomial(logits.softmax(1), 1, generator=generator)[:, 0]
    return logits, labels


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_it_undoes_a_known_over_or_under_confidence(scale):
    logits, labels = _calibrated_sample()
    assert fit_temperature(scale * logits, labels) == pytest.approx(scale, rel=0.05)


def test_it_is_the_minimum_of_a_brute_force_search():
    logits, labels = _calibrated_sample(2000, seed=1)
    logits = 2.5 * logits
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 801))
    nll = [float(F.cross_entropy(logits.double() / t, labels)) for t in grid]
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(grid[int(np.argmin(nll))], rel=5e-3)  # the grid's spacing: 0.75%
    assert float(F.cross_entropy(logits.double() / fitted, labels)) <= min(nll) + 1e-9


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(3), bounds=(0.0, 2.0))
    with pytest.raises(ValueError, match=r"logits must be \(N, K\) .* \(3, 2\) and \(4,\)"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(4))

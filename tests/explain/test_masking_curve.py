import inspect
import warnings

import pytest
import torch
from torch import nn

from mltricks.explain import deletion_curve, masking_curve


class RegionSum(nn.Module):
    """Class 0 scores the sum of the pixels in ``weights``; class 1 scores minus that."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, x):
        total = (x[:, 0] * self.weights).flatten(1).sum(1)
        return torch.stack([total, -total], dim=1)


def test_scores_fall_with_the_masked_share_and_masking_grows_from_the_centre():
    weights = torch.zeros(8, 8)
    weights[2:6, 1:5] = 1.0  # the object: rows 2..5, columns 1..4 (16 pixels)
    model = RegionSum(weights)
    x = torch.ones(1, 1, 8, 8)
    box = torch.tensor([1.0, 2.0, 5.0, 6.0])
    curve = masking_curve(model, x, 0, box, steps=4, output="logits").scores
    assert curve.shape == (1, 5)
    assert curve[0].tolist() == [16.0, 12.0, 8.0, 4.0, 0.0]
    other = masking_curve(model, x, 1, box, steps=4, output="logits").scores
    assert other[0].tolist() == [-16.0, -12.0, -8.0, -4.0, 0.0]
    # the first quarter masked is the 2x2 centre: a model reading only the centre drops to 0 there
    centre = torch.zeros(8, 8)
    centre[3:5, 2:4] = 1.0
    assert masking_curve(RegionSum(centre), x, 0, box, 4, output="logits").scores[0].tolist() == [
        4.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ]
    # a mask covering the same pixels gives the same curve; probabilities sum with the other class
    mask = weights.bool()
    assert torch.equal(masking_curve(model, x, 0, mask, 4, output="logits").scores, curve)
    probs = masking_curve(model, x, 0, box, steps=4, output="probs").scores
    assert torch.allclose(probs, torch.sigmoid(2 * curve))


def test_per_sample_regions_and_fill():
    weights = torch.ones(6, 6)
    model = RegionSum(weights)
    x = torch.full((2, 1, 6, 6), 0.5)
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 6.0, 6.0]])
    curve = masking_curve(model, x, 0, boxes, steps=2, fill=1.5, output="logits").scores
    # masking n pixels at 0.5 -> 1.5 adds n to the sum
    assert curve.tolist() == [[18.0, 20.0, 22.0], [18.0, 36.0, 54.0]]


def test_bad_input_gives_errors_naming_the_argument():
    # leaving the model as found is checked for every technique in tests/test_common_checks.py
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Dropout(0.5))
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="region boxes must have x2 > x1"):
        masking_curve(model, x, 1, torch.tensor([2, 0, 2, 2]), output="probs")
    with pytest.raises(ValueError, match="region boxes must cover"):
        masking_curve(model, x, 1, torch.tensor([10.0, 10.0, 12.0, 12.0]), output="probs")
    with pytest.raises(ValueError, match="region masks must have shape"):
        masking_curve(model, x, 1, torch.ones(3, 3, dtype=torch.bool), output="probs")
    with pytest.raises(ValueError, match="region must mark at least one pixel"):
        masking_curve(model, x, 1, torch.zeros(4, 4, dtype=torch.bool), output="probs")
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 2\]"):
        masking_curve(model, x, 3, torch.tensor([0, 0, 2, 2]), output="probs")
    with pytest.raises(ValueError, match="steps"):
        masking_curve(model, x, 1, torch.tensor([0, 0, 2, 2]), steps=0, output="probs")
    with pytest.raises(ValueError, match="x must be images"):
        masking_curve(model, torch.rand(2, 16), 1, torch.tensor([0, 0, 2, 2]), output="probs")
    with pytest.raises(ValueError, match="output must be one of 'logits', 'probs'; got 'softmax'"):
        masking_curve(model, x, 1, torch.tensor([0, 0, 2, 2]), output="softmax")


def test_output_left_out_reads_logits_with_a_warning_until_probs_become_the_default():
    # deletion_curve already reads probabilities by default; masking_curve follows in 0.3.0
    assert inspect.signature(deletion_curve).parameters["output"].default == "probs"
    model = RegionSum(torch.ones(4, 4))
    x = torch.rand(2, 1, 4, 4)
    box = torch.tensor([0, 0, 2, 2])
    logits = masking_curve(model, x, 0, box, steps=2, output="logits").scores
    with pytest.warns(
        DeprecationWarning,
        match=r"masking_curve\(\) will read probabilities by default.*Deprecated in 0\.2\.0; "
        r"the old form will be removed in 0\.3\.0",
    ) as seen:
        old = masking_curve(model, x, 0, box, steps=2)
    assert seen[0].filename == __file__  # points at the caller's line
    assert torch.equal(old.scores, logits)
    probs = masking_curve(model, x, 0, box, steps=2, output="probs").scores
    assert torch.allclose(probs, torch.sigmoid(2 * logits))  # two classes: +total and -total
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit output never warns
        masking_curve(model, x, 0, box, steps=2, output="probs")


def test_the_curve_holds_the_masked_shares_and_its_area():
    weights = torch.ones(4, 4)
    x = torch.ones(2, 1, 4, 4)
    curve = masking_curve(RegionSum(weights), x, 0, torch.tensor([0, 0, 4, 4]), 4, output="logits")
    assert curve.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.scores.tolist() == [[16.0, 12.0, 8.0, 4.0, 0.0]] * 2
    # trapezoids under a straight line from 16 to 0 over [0, 1]
    assert curve.auc.tolist() == [8.0, 8.0]


def test_using_the_curve_as_the_old_tensor_still_works_with_a_deprecation_warning():
    x = torch.ones(2, 1, 4, 4)
    box = torch.tensor([0, 0, 2, 2])
    curve = masking_curve(RegionSum(torch.ones(4, 4)), x, 0, box, steps=2, output="logits")
    scores = curve.scores
    with pytest.warns(
        DeprecationWarning, match=r"returns a MaskingCurve: use its \.scores"
    ) as seen:
        assert torch.equal(curve[0], scores[0])
    assert seen[0].filename == __file__  # points at the caller's line
    with pytest.warns(DeprecationWarning):
        assert torch.equal(curve.mean(0), scores.mean(0)) and curve.shape == (2, 3)
    with pytest.warns(DeprecationWarning):
        assert torch.equal(curve - 1, scores - 1) and torch.equal(1 - curve, 1 - scores)
    with pytest.warns(DeprecationWarning):
        assert bool((curve == scores).all()) and len(curve) == 2
    with pytest.warns(DeprecationWarning, match=r"pass its \.scores to equal\(\)"):
        assert torch.equal(curve, scores)
    with pytest.warns(DeprecationWarning):
        assert torch.equal(torch.stack([curve, curve]), torch.stack([scores, scores]))
    with pytest.raises(AttributeError):
        curve._private

"""SemiSupervisedStep against its formula: CE on the labeled samples plus the ramped, weighted
unlabeled losses, computed from one forward pass."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.data import semi_supervised_loader
from mltricks.semi_supervised import (
    SemiSupervisedStep,
    consistency_loss,
    mutual_exclusivity_loss,
    sigmoid_rampup,
    stability_loss,
)
from tests.semi_supervised.recorder import Recorder


class _Shift:
    """A deterministic 'augmentation': a different constant added at every call."""

    def __init__(self):
        self.count = 0

    def __call__(self, x):
        self.count += 1
        return x + 0.1 * self.count


def test_sigmoid_rampup_follows_laine_and_aila():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == sigmoid_rampup(50, 10) == 1.0
    assert sigmoid_rampup(0, 0) == 1.0
    values = [sigmoid_rampup(t, 20) for t in range(25)]
    assert all(a <= b for a, b in itertools.pairwise(values))
    with pytest.raises(ValueError, match="step must be a number >= 0"):
        sigmoid_rampup(-1, 10)


def _batch(seed=0, labeled=4, ratio=2):
    generator = torch.Generator().manual_seed(seed)
    x_l = torch.rand(labeled, 1, 6, 6, generator=generator)
    y_l = torch.randint(0, 3, (labeled,), generator=generator)
    x_u = torch.rand(labeled, ratio, 1, 6, 6, generator=generator)
    return x_l, y_l, x_u


def test_step_loss_is_ce_plus_ramped_weighted_terms_in_one_forward_pass():
    torch.manual_seed(0)
    model = Recorder()
    step = SemiSupervisedStep(
        num_classes=3,
        stability=0.7,
        exclusivity=0.3,
        consistency=2.0,
        num_views=3,
        rampup_steps=10,
        augment=_Shift(),
    )
    x_l, y_l, x_u = _batch()
    step(model, (x_l, y_l, x_u))  # step 0
    loss, logs = step(model, (x_l, y_l, x_u))  # step 1: ramp exp(-5 * 0.9^2)
    # one forward pass: 4 labeled + 8 clean unlabeled + 3 views of the 8 unlabeled
    assert model.calls == [4 + 8 + 24] * 2
    # recompute with the same inputs (the shift of call c is 0.1 c; calls 5..8 in step 1)
    unlabeled = x_u.flatten(0, 1)
    inputs = torch.cat([x_l + 0.5, unlabeled] + [unlabeled + 0.1 * c for c in (6, 7, 8)])
    logits = model.net(inputs)
    views = logits[12:].reshape(3, 8, 3)
    expected_terms = {
        "stability": stability_loss(views),
        "exclusivity": mutual_exclusivity_loss(views),
        "consistency": consistency_loss(logits[4:12], views[0]),
    }
    ramp = math.exp(-5 * 0.9**2)
    unsupervised = 0.7 * expected_terms["stability"] + 0.3 * expected_terms["exclusivity"]
    unsupervised = unsupervised + 2.0 * expected_terms["consistency"]
    expected = F.cross_entropy(logits[:4], y_l) + ramp * unsupervised
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert logs["ramp"] == pytest.approx(ramp)
    assert logs["unsup_loss"] == pytest.approx(float(unsupervised.detach()), rel=1e-5)
    for name, value in expected_terms.items():
        assert logs[name] == pytest.approx(float(value.detach()), rel=1e-5, abs=1e-7)
    assert step.steps_done == 2


@pytest.mark.parametrize(
    "weights",
    [{"stability": 1.0}, {"exclusivity": 1.0}, {"consistency": 1.0}],
)
def test_step_uses_the_unlabeled_samples(weights):
    # fails if the step ignored the unlabeled part of the batch: other unlabeled images must
    # change the loss and the gradients, and the unlabeled images must receive a gradient.
    # No BatchNorm here: through batch statistics the unlabeled images would change the
    # supervised loss too, and the test would pass even if the unsupervised terms were dropped
    torch.manual_seed(0)
    model = Recorder(batch_norm=False)
    x_l, y_l, x_u = _batch(0)
    _, _, other_u = _batch(1)

    def gradient(unlabeled):
        torch.manual_seed(5)  # same augmentation draws and dropout for both calls
        step = SemiSupervisedStep(num_classes=3, **weights)
        model.zero_grad()
        loss, _ = step(model, (x_l, y_l, unlabeled))
        loss.backward()
        return float(loss.detach()), model.net[1].weight.grad.clone()

    loss_a, grad_a = gradient(x_u)
    loss_b, grad_b = gradient(other_u)
    assert loss_a != pytest.approx(loss_b, rel=1e-6)
    assert not torch.allclose(grad_a, grad_b)
    probe = x_u.clone().requires_grad_(True)
    loss, _ = SemiSupervisedStep(num_classes=3, **weights)(model, (x_l, y_l, probe))
    loss.backward()
    assert probe.grad is not None and probe.grad.abs().sum() > 0


def test_supervised_baseline_forwards_only_the_labeled_samples():
    torch.manual_seed(0)
    model = Recorder()
    x_l, y_l, x_u = _batch()
    step = SemiSupervisedStep(num_classes=3, augment=lambda x: x)
    loss, logs = step(model, (x_l, y_l, x_u))
    assert model.calls == [4]
    assert float(loss.detach()) == pytest.approx(
        float(F.cross_entropy(model.net(x_l), y_l).detach()), rel=1e-6
    )
    assert "unsup_loss" not in logs and logs["sup_loss"] == pytest.approx(float(loss.detach()))


def test_step_bad_input_names_the_argument():
    model = Recorder()
    x_l, _, x_u = _batch()
    step = SemiSupervisedStep(num_classes=3, exclusivity=1.0)
    with pytest.raises(ValueError, match=r"labeled targets .*0\.\.2.*to 7"):
        step(model, (x_l, torch.tensor([0, 1, 7, 2]), x_u))
    with pytest.raises(ValueError, match=r"x_unlabeled .*empty"):
        step(model, (x_l, torch.tensor([0, 1, 2, 2]), x_u[:, :0]))
    with pytest.raises(ValueError, match="batch must be"):
        step(model, (x_l, torch.tensor([0, 1, 2, 2])))
    with pytest.raises(ValueError, match="num_views must be >= 2 when the stability loss"):
        SemiSupervisedStep(num_classes=3, stability=1.0, num_views=1)
    with pytest.raises(ValueError, match="consistency must be a number >= 0"):
        SemiSupervisedStep(num_classes=3, consistency=-1.0)
    with pytest.raises(ValueError, match="num_classes is 5 but the model outputs 3"):
        SemiSupervisedStep(num_classes=5, exclusivity=1.0)(model, _batch())


def test_batchnorm_sees_labeled_and_unlabeled_samples_in_one_batch():
    # the running mean after one step is the momentum share of the mean over ALL the inputs
    # (labeled, then two views of the unlabeled ones): one forward pass, one set of statistics
    labeled_x, unlabeled_x = torch.rand(6, 1, 6, 6), torch.rand(30, 1, 6, 6)
    loader = semi_supervised_loader(
        labeled_x, torch.arange(6) % 3, unlabeled_x, batch_size=3, unlabeled_ratio=2, random_state=0
    )
    x_l, y_l, x_u = next(iter(loader))
    model = Recorder()
    step = SemiSupervisedStep(num_classes=3, stability=1.0, augment=lambda x: x)
    step(model, (x_l, y_l, x_u))
    unlabeled = x_u.flatten(0, 1)
    inputs = torch.cat([x_l, unlabeled, unlabeled])
    assert model.calls == [3 + 2 * 6]
    hidden = model.net[1](model.net[0](inputs)).detach()
    momentum = model.net[2].momentum
    torch.testing.assert_close(model.net[2].running_mean, momentum * hidden.mean(0))


class _TwoHeads(nn.Module):
    """Returns ``(logits, features)``, as a multi-head model does."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))

    def forward(self, x):
        return self.net(x), x.flatten(1)


def test_step_takes_the_first_output_as_logits_and_ramps_per_call():
    torch.manual_seed(0)
    model = _TwoHeads()
    step = SemiSupervisedStep(num_classes=3, exclusivity=1.0, rampup_steps=4)
    ramps = [step(model, _batch(seed))[1]["ramp"] for seed in range(6)]
    assert ramps == pytest.approx([sigmoid_rampup(t, 4) for t in range(6)])
    assert ramps[-2:] == [1.0, 1.0] and step.steps_done == 6
    assert "exclusivity=1" in repr(step) and "steps_done=6" in repr(step)

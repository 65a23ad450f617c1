import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from smallml.lab import engine
from smallml.lab.semi_supervised import (
    LabeledUnlabeledDataset,
    RandomShiftRotate,
    SemiSupervisedStep,
    UnlabeledDiagnostics,
    affine_batch,
    augmentation,
    choose_on_validation,
    digits_split,
    fit_semi_supervised,
    rampup,
    semi_supervised_loader,
)
from smallml.semi_supervised import consistency_loss, mutual_exclusivity_loss, stability_loss


def _images(num, seed=0):
    return torch.rand(num, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


class _Recorder(nn.Module):
    """A small classifier that records the batch sizes of its forward passes."""

    def __init__(self, batch_norm=True):
        super().__init__()
        norm = nn.BatchNorm1d(16) if batch_norm else nn.Identity()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), norm, nn.ReLU(), nn.Linear(16, 3))
        self.calls = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.net(x)


class _Shift:
    """A deterministic 'augmentation': a different constant added at every call."""

    def __init__(self):
        self.count = 0

    def __call__(self, x):
        self.count += 1
        return x + 0.1 * self.count


# ---------------------------------------------------------------- loader


def test_loader_batches_pair_labeled_samples_with_ratio_times_as_many_unlabeled():
    labeled_x, unlabeled_x = _images(10, 0), _images(37, 1)
    labeled_y = torch.arange(10) % 3
    loader = semi_supervised_loader(
        labeled_x, labeled_y, unlabeled_x, batch_size=4, unlabeled_ratio=3, num_classes=3, seed=0
    )
    batches = list(loader)
    assert len(loader.dataset) == max(10, math.ceil(37 / 3)) == 13
    assert len(batches) == 3  # 13 items, the incomplete last batch is dropped
    for x_l, y_l, x_u in batches:
        assert x_l.shape == (4, 1, 6, 6) and y_l.shape == (4,) and x_u.shape == (4, 3, 1, 6, 6)
        for image, label in zip(x_l, y_l):  # each image keeps its own label
            index = int(((labeled_x - image).abs().flatten(1).sum(1) == 0).nonzero())
            assert int(labeled_y[index]) == int(label)


def test_one_pass_over_the_dataset_sees_every_unlabeled_and_labeled_sample():
    labeled_x, unlabeled_x = _images(5, 0), _images(23, 1)
    dataset = LabeledUnlabeledDataset(
        labeled_x, torch.arange(5) % 2, unlabeled_x, unlabeled_ratio=4, seed=3
    )
    seen_unlabeled, seen_labeled = set(), set()
    for k in range(len(dataset)):
        x_l, _, x_u = dataset[k]
        seen_labeled.add(int(((labeled_x - x_l).abs().flatten(1).sum(1) == 0).nonzero()))
        for image in x_u:
            seen_unlabeled.add(int(((unlabeled_x - image).abs().flatten(1).sum(1) == 0).nonzero()))
    assert seen_unlabeled == set(range(23)) and seen_labeled == set(range(5))


def test_loader_order_is_reproducible_and_depends_on_the_seed():
    args = (_images(8), torch.arange(8) % 2, _images(30, 1))

    def first_unlabeled(seed):
        loader = semi_supervised_loader(*args, batch_size=4, unlabeled_ratio=2, seed=seed)
        return next(iter(loader))[2]

    assert torch.equal(first_unlabeled(0), first_unlabeled(0))
    assert not torch.equal(first_unlabeled(0), first_unlabeled(1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"unlabeled_x": torch.zeros(0, 1, 6, 6)}, ValueError, "unlabeled_x .*empty unlabeled"),
        ({"labeled_y": torch.tensor([0, 1, 5, 1])}, ValueError, r"labeled_y .*0\.\.2.*to 5"),
        ({"labeled_y": torch.tensor([0, -1, 2, 1])}, ValueError, "labeled_y .*from -1"),
        (
            {"labeled_y": torch.tensor([0.0, 1.0, 2.0, 1.0])},
            ValueError,
            "labeled_y must be integer",
        ),
        ({"unlabeled_x": torch.zeros(5, 1, 7, 7)}, ValueError, "unlabeled_x samples must have"),
        ({"unlabeled_ratio": 0}, ValueError, "unlabeled_ratio must be an integer >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_loader_bad_input_names_the_argument(kwargs, error, match):
    args = {
        "labeled_x": _images(4),
        "labeled_y": torch.tensor([0, 1, 2, 1]),
        "unlabeled_x": _images(9, 1),
        "batch_size": 2,
        "unlabeled_ratio": 1,
        "num_classes": 3,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        semi_supervised_loader(
            args.pop("labeled_x"), args.pop("labeled_y"), args.pop("unlabeled_x"), **args
        )


# ---------------------------------------------------------------- augmentation


def test_batched_affine_equals_torchvision_per_sample():
    images = torch.rand(3, 2, 6, 10, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([7.0, -33.0, 90.0])
    shifts = torch.tensor([[1.0, -2.0], [0.0, 0.0], [-1.0, 1.0]])
    out = affine_batch(images, angles, shifts)
    for i in range(3):
        reference = TF.affine(
            images[i],
            angle=float(angles[i]),
            translate=shifts[i].tolist(),
            scale=1.0,
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
        assert torch.allclose(out[i], reference, atol=1e-5)


def test_random_shift_rotate_draws_per_sample_integer_shifts():
    torch.manual_seed(0)
    image = torch.zeros(1, 8, 8)
    image[0, 3:5, 3:5] = 1.0
    out = RandomShiftRotate(degrees=0.0, translate=0.25)(image.expand(64, 1, 8, 8).clone())
    # without rotation every output is the image moved by whole pixels: values stay 0 or 1
    assert torch.all((out == 0) | (out == 1))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 5  # one draw per sample, not one per batch
    single = RandomShiftRotate()(image)
    assert single.shape == image.shape


def test_augmentation_keeps_shape_and_range_and_changes_the_images():
    torch.manual_seed(0)
    images = _images(16)
    out = augmentation(degrees=10, translate=0.2, noise=0.1)(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)
    # no rotation, no shift, no noise: the images come back unchanged
    assert torch.allclose(augmentation(0, 0, 0)(images), images, atol=1e-6)
    with pytest.raises(ValueError, match="noise"):
        augmentation(noise=-0.1)
    with pytest.raises(ValueError, match="degrees"):
        RandomShiftRotate(degrees=200)


# ---------------------------------------------------------------- ramp-up and step


def test_rampup_follows_the_sigmoid_shape():
    assert rampup(0, 10) == pytest.approx(math.exp(-5))
    assert rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert rampup(10, 10) == rampup(50, 10) == 1.0
    assert rampup(0, 0) == 1.0
    values = [rampup(t, 20) for t in range(25)]
    assert all(a <= b for a, b in itertools.pairwise(values))


def _batch(seed=0, labeled=4, ratio=2):
    generator = torch.Generator().manual_seed(seed)
    x_l = torch.rand(labeled, 1, 6, 6, generator=generator)
    y_l = torch.randint(0, 3, (labeled,), generator=generator)
    x_u = torch.rand(labeled, ratio, 1, 6, 6, generator=generator)
    return x_l, y_l, x_u


def test_step_loss_is_ce_plus_ramped_weighted_terms_in_one_forward_pass():
    torch.manual_seed(0)
    model = _Recorder()
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
    model = _Recorder(batch_norm=False)
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
    model = _Recorder()
    x_l, y_l, x_u = _batch()
    step = SemiSupervisedStep(num_classes=3, augment=lambda x: x)
    loss, logs = step(model, (x_l, y_l, x_u))
    assert model.calls == [4]
    assert float(loss.detach()) == pytest.approx(
        float(F.cross_entropy(model.net(x_l), y_l).detach()), rel=1e-6
    )
    assert "unsup_loss" not in logs and logs["sup_loss"] == pytest.approx(float(loss.detach()))


def test_step_bad_input_names_the_argument():
    model = _Recorder()
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


# ---------------------------------------------------------------- diagnostics and engine.fit


class _Constant(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_diagnostics_show_a_collapse_to_one_class():
    row = {}
    UnlabeledDiagnostics(_Constant([0.0, 0.0, 9.0, 0.0]), _images(20), num_classes=4)(1, row)
    assert row["unlabeled_top_share"] == 1.0 and row["unlabeled_share_2"] == 1.0
    assert row["unlabeled_share_0"] == 0.0
    probabilities = torch.tensor([0.0, 0.0, 9.0, 0.0]).softmax(0)
    entropy = float(-(probabilities * probabilities.log()).sum())
    assert row["unlabeled_entropy"] == pytest.approx(entropy, rel=1e-5)
    uniform = {}
    UnlabeledDiagnostics(_Constant([0.0, 0.0, 0.0]), _images(5), num_classes=3)(1, uniform)
    assert uniform["unlabeled_entropy"] == pytest.approx(math.log(3), rel=1e-6)
    with pytest.raises(ValueError, match=r"unlabeled_x .*empty"):
        UnlabeledDiagnostics(_Constant([0.0, 1.0]), torch.zeros(0, 1, 6, 6), num_classes=2)


def test_fit_trains_on_unlabeled_data_and_records_diagnostics():
    labeled_x, unlabeled_x = _images(12, 0), _images(40, 1)
    labeled_y = torch.arange(12) % 3

    def train(weights):
        engine.seed_everything(0)
        model = _Recorder(batch_norm=False)  # only the unsupervised terms couple the samples
        loader = semi_supervised_loader(
            labeled_x, labeled_y, unlabeled_x, batch_size=4, unlabeled_ratio=2, seed=0
        )
        # identity augmentation: with the unsupervised terms dropped, both runs would be equal
        step = SemiSupervisedStep(num_classes=3, rampup_steps=4, augment=lambda x: x, **weights)
        history, diagnostics = fit_semi_supervised(
            model, loader, step, unlabeled_x, epochs=2, lr=1e-2
        )
        return model, history, diagnostics

    baseline, _, _ = train({})
    model, history, diagnostics = train({"stability": 1.0, "exclusivity": 1.0})
    assert len(history.epochs) == 2 and len(diagnostics.shares) == 2
    for name in ("train_sup_loss", "train_unsup_loss", "train_stability", "train_exclusivity"):
        assert len(history.column(name)) == 2
    row = history.last
    assert 0 < row["unlabeled_top_share"] <= 1 and row["unlabeled_entropy"] > 0
    assert sum(row[f"unlabeled_share_{k}"] for k in range(3)) == pytest.approx(1.0)
    # every step forwarded the unlabeled views too, and training used them
    assert model.calls[:5] == [4 + 8 * 2] * 5  # 5 steps per epoch, then the diagnostics
    assert not torch.allclose(model.net[1].weight, baseline.net[1].weight)


def test_digits_split_keeps_labeled_validation_unlabeled_and_test_apart():
    data = digits_split(10, seed=3, val_fraction=0.3)
    assert len(data.labeled_y) == 70 and len(data.val_y) == 30
    assert torch.bincount(data.val_y, minlength=10).tolist() == [3] * 10
    assert len(data.unlabeled_x) == 1437 - 100 and len(data.test_y) == 360
    # the 1,437 training images are all distinct: disjoint parts have 1,437 distinct rows
    everything = torch.cat([data.labeled_x, data.val_x, data.unlabeled_x]).flatten(1)
    assert len(torch.unique(everything, dim=0)) == 1437
    with_test = torch.cat([everything, data.test_x.flatten(1)])
    assert len(torch.unique(with_test, dim=0)) > 1437  # the test split is not the training split
    shares = digits_split(0.1, seed=0, num_unlabeled=50)
    assert len(shares.unlabeled_x) == 50 and len(shares.val_y) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        digits_split(1, seed=0, val_fraction=0.5)


def test_lambda_is_chosen_on_validation_never_on_test():
    # the seed picked lambda on the test set; here test numbers that disagree must not matter
    scores = [
        {"val_accuracy": 0.80, "val_nll": 0.5, "test_accuracy": 0.99},
        {"val_accuracy": 0.90, "val_nll": 0.4, "test_accuracy": 0.10},
        {"val_accuracy": 0.90, "val_nll": 0.3, "test_accuracy": 0.20},
        {"val_accuracy": 0.85, "val_nll": 0.1, "test_accuracy": 0.95},
    ]
    assert choose_on_validation(scores) == 2
    no_test = [{k: v for k, v in s.items() if not k.startswith("test")} for s in scores]
    assert choose_on_validation(no_test) == 2
    with pytest.raises(ValueError, match="scores"):
        choose_on_validation([])

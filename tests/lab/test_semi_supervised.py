import json
import math

import pytest
import torch
from torch import nn

from mltricks.data import semi_supervised_loader
from mltricks.lab import engine, registry, runs
from mltricks.lab.baselines import logistic_regression_accuracy
from mltricks.lab.config import ConfigError, resolve_config
from mltricks.lab.semi_supervised import (
    ImageSplit,
    SemiSupervisedTraining,
    UnlabeledDiagnostics,
    choose_on_validation,
    fit_semi_supervised,
    image_split,
    train_from,
)
from mltricks.models import SmallCNN
from mltricks.semi_supervised import SemiSupervisedStep
from tests.semi_supervised.recorder import Recorder, images


class _Constant(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_diagnostics_show_a_collapse_to_one_class():
    row = {}
    UnlabeledDiagnostics(_Constant([0.0, 0.0, 9.0, 0.0]), images(20), num_classes=4)(1, row)
    assert row["unlabeled_top_share"] == 1.0 and row["unlabeled_share_2"] == 1.0
    assert row["unlabeled_share_0"] == 0.0
    probabilities = torch.tensor([0.0, 0.0, 9.0, 0.0]).softmax(0)
    entropy = float(-(probabilities * probabilities.log()).sum())
    assert row["unlabeled_entropy"] == pytest.approx(entropy, rel=1e-5)
    uniform = {}
    UnlabeledDiagnostics(_Constant([0.0, 0.0, 0.0]), images(5), num_classes=3)(1, uniform)
    assert uniform["unlabeled_entropy"] == pytest.approx(math.log(3), rel=1e-6)
    with pytest.raises(ValueError, match=r"unlabeled_x .*empty"):
        UnlabeledDiagnostics(_Constant([0.0, 1.0]), torch.zeros(0, 1, 6, 6), num_classes=2)


def test_fit_trains_on_unlabeled_data_and_records_diagnostics():
    labeled_x, unlabeled_x = images(12, 0), images(40, 1)
    labeled_y = torch.arange(12) % 3

    def train(weights):
        engine.seed_everything(0)
        model = Recorder(batch_norm=False)  # only the unsupervised terms couple the samples
        loader = semi_supervised_loader(
            labeled_x, labeled_y, unlabeled_x, batch_size=4, unlabeled_ratio=2, random_state=0
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
    data = image_split(None, 10, random_state=3, val_fraction=0.3)
    assert len(data.labeled_y) == 70 and len(data.val_y) == 30
    assert torch.bincount(data.val_y, minlength=10).tolist() == [3] * 10
    assert len(data.unlabeled_x) == 1437 - 100 and len(data.test_y) == 360
    # the 1,437 training images are all distinct: disjoint parts have 1,437 distinct rows
    everything = torch.cat([data.labeled_x, data.val_x, data.unlabeled_x]).flatten(1)
    assert len(torch.unique(everything, dim=0)) == 1437
    with_test = torch.cat([everything, data.test_x.flatten(1)])
    assert len(torch.unique(with_test, dim=0)) > 1437  # the test split is not the training split
    shares = image_split(None, 0.1, random_state=0, num_unlabeled=50)
    assert len(shares.unlabeled_x) == 50 and len(shares.val_y) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        image_split(None, 1, random_state=0, val_fraction=0.5)


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


def _tiny_split(num_labeled=12, num_unlabeled=40):
    labeled_y = torch.arange(num_labeled) % 3
    return ImageSplit(
        images(num_labeled, 0),
        labeled_y,
        images(3, 2),
        torch.arange(3),
        images(num_unlabeled, 1),
        torch.zeros(num_unlabeled, dtype=torch.int64),
        images(5, 3),
        torch.arange(5) % 3,
    )


def _settings(**values):
    base = {"batch_size": 4, "unlabeled_ratio": 2, "width": 2, "rampup_epochs": 0}
    return SemiSupervisedTraining(**{**base, **values})


def test_steps_set_the_budget_and_the_cosine_schedule_ends_at_them():
    data = _tiny_split()  # 40 unlabeled / 2 per item = 20 items: 5 batches of 4 per epoch
    initial = SmallCNN(1, 10, width=2).state_dict()
    _, history, _ = train_from(
        _settings(steps=7, epochs=1), data, initial, random_state=0, desc="t", consistency=1.0
    )
    # 7 steps need two passes, the second cut after 2 of its 5 batches; epochs is ignored
    assert len(history.steps) == 7 and len(history.epochs) == 2
    assert history.column("step") == [5, 7]
    assert history.last["lr"] == pytest.approx(0.0, abs=1e-12)  # annealed to 0 at step 7
    _, by_epochs, _ = train_from(_settings(epochs=2), data, initial, random_state=0, desc="t")
    assert len(by_epochs.steps) == 10 and by_epochs.last["lr"] == pytest.approx(0.0, abs=1e-12)


def test_recalibration_recomputes_the_statistics_on_the_labeled_images():
    data = _tiny_split()
    initial = SmallCNN(1, 10, width=2).state_dict()
    model, _, _ = train_from(
        _settings(steps=3, recalibrate_bn=True), data, initial, random_state=0, desc="t"
    )
    # reference: the first BatchNorm's mean is the mean of the first convolution's output
    # over the labeled images (one batch), per channel
    conv, norm = model.features[0], model.features[1]
    with torch.no_grad():
        expected = conv(data.labeled_x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(norm.running_mean, expected, rtol=1e-5, atol=1e-6)
    plain, _, _ = train_from(_settings(steps=3), data, initial, random_state=0, desc="t")
    assert not torch.allclose(plain.features[1].running_mean, expected, atol=1e-4)


@pytest.mark.slow
def test_a_budget_sweep_keeps_ce_and_both_and_trains_only_those(tmp_path):
    module = registry.load("unsupervised-support")
    with pytest.raises(ConfigError, match=r"variants=ce,stability: must include both"):
        resolve_config(module, "smoke", assignments=["variants=ce,stability"])
    config = resolve_config(module, "smoke", assignments=["variants=both,ce"])
    path, state, error = runs.execute(
        "unsupervised-support", module, config, preset="smoke", seeds=(0,), out=tmp_path
    )
    assert state == "done", error
    metrics = json.loads((path / "metrics.json").read_text())["per_seed"]["0"]
    trained = {key.removeprefix("test_accuracy_") for key in metrics if key.startswith("test_acc")}
    assert trained == {"ce", "both", "logreg"}
    gain = metrics["test_accuracy_both"] - metrics["test_accuracy_ce"]
    assert metrics["accuracy_gain_both"] == pytest.approx(gain)


def test_an_image_split_scores_a_model_on_its_parts_and_fits_its_baseline_on_every_label():
    data = _tiny_split()
    model = SmallCNN(1, 10, width=2).eval()
    for part, (x, y) in {
        "val": (data.val_x, data.val_y),
        "test": (data.test_x, data.test_y),
    }.items():
        expected = engine.evaluate(model, engine.make_loader(x, y, batch_size=512))
        assert data.evaluate(model, part) == pytest.approx(expected)
    with pytest.raises(ValueError, match="part"):
        data.evaluate(model, "train")
    # the validation images count: logistic regression sees the split's whole label budget
    every_label = logistic_regression_accuracy(
        torch.cat([data.labeled_x, data.val_x]),
        torch.cat([data.labeled_y, data.val_y]),
        data.test_x,
        data.test_y,
    )
    assert data.logistic_regression_accuracy() == every_label

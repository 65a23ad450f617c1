import math

import pytest
import torch

from mltricks.ensembles import (
    brier_score,
    disagreement,
    ensemble_accuracy,
    ensemble_metrics,
    expected_calibration_error,
    member_accuracy,
    mutual_information,
    negative_log_likelihood,
    predictive_entropy,
)

# two members, two examples, two classes; targets 0 and 1
PROBS = torch.tensor(
    [
        [[0.9, 0.1], [0.6, 0.4]],
        [[0.5, 0.5], [0.2, 0.8]],
    ],
    dtype=torch.float64,
)
TARGETS = torch.tensor([0, 1])
# mean prediction: [[0.7, 0.3], [0.4, 0.6]]


def _h(*p):
    return -sum(x * math.log(x) for x in p)


def test_hand_computed_values():
    assert ensemble_accuracy(PROBS, TARGETS) == 1.0
    assert negative_log_likelihood(PROBS, TARGETS) == pytest.approx(
        -(math.log(0.7) + math.log(0.6)) / 2
    )
    assert brier_score(PROBS, TARGETS) == pytest.approx((0.09 + 0.09 + 0.16 + 0.16) / 2)
    assert predictive_entropy(PROBS).tolist() == pytest.approx([_h(0.7, 0.3), _h(0.4, 0.6)])
    expected_mi = [
        _h(0.7, 0.3) - (_h(0.9, 0.1) + _h(0.5, 0.5)) / 2,
        _h(0.4, 0.6) - (_h(0.6, 0.4) + _h(0.2, 0.8)) / 2,
    ]
    assert mutual_information(PROBS).tolist() == pytest.approx(expected_mi)
    # member 0 predicts (0, 0), member 1 predicts (0 or 1 at a tie -> 0, 1)
    assert member_accuracy(PROBS, TARGETS).tolist() == [0.5, 1.0]
    assert disagreement(PROBS) == 0.5
    # ECE: confidences 0.7 and 0.6, both right -> (|1 - 0.7| + |1 - 0.6|) / 2
    assert expected_calibration_error(PROBS, TARGETS) == pytest.approx(0.35)


def test_ece_matches_a_binned_loop_and_disagreement_matches_all_pairs():
    generator = torch.Generator().manual_seed(0)
    probs = torch.randn(4, 300, 5, generator=generator).mul(2).softmax(-1)
    targets = torch.randint(0, 5, (300,), generator=generator)
    mean = probs.mean(0)
    confidence, predicted = mean.max(-1)
    correct = (predicted == targets).double()
    ece = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            gap = abs(confidence[inside].double().mean() - correct[inside].mean())
            ece += float(inside.double().mean() * gap)
    assert expected_calibration_error(probs, targets) == pytest.approx(ece, abs=1e-6)
    labels = probs.argmax(-1)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    loop = sum(float((labels[i] != labels[j]).double().mean()) for i, j in pairs) / len(pairs)
    assert disagreement(probs) == pytest.approx(loop)


def test_degenerate_cases():
    one_hot = torch.eye(3)[None].repeat(4, 1, 1)  # four identical, certain members
    targets = torch.arange(3)
    metrics = ensemble_metrics(one_hot, targets)
    assert metrics["accuracy"] == 1.0 and metrics["member_accuracy"] == 1.0
    assert metrics["nll"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["brier"] == 0.0 and metrics["ece"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["entropy"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["mutual_information"] == 0.0 and metrics["disagreement"] == 0.0
    uniform = torch.full((1, 2, 4), 0.25)
    assert predictive_entropy(uniform).tolist() == pytest.approx([math.log(4)] * 2)
    assert mutual_information(uniform).tolist() == [0.0, 0.0]  # one member: no disagreement
    assert disagreement(uniform) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(M, B, K\); got \(2, 2\)"):
        negative_log_likelihood(PROBS[0], TARGETS)
    with pytest.raises(ValueError, match="did you pass logits"):
        ensemble_accuracy(torch.randn(2, 2, 2), TARGETS)
    with pytest.raises(ValueError, match="targets must have shape"):
        brier_score(PROBS, torch.tensor([0, 1, 1]))

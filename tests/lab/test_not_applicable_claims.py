"""Claims that cannot apply to the data given say so ("not applicable: ..."), never a KeyError."""

import pytest

from mltricks.lab import registry
from mltricks.lab.experiment import NotApplicable
from mltricks.lab.stats import mean_interval, proportion_interval
from mltricks.lab.verdicts import judge


def _claim(name, words):
    (claim,) = [c for c in registry.load(name).CLAIMS if words in c.text]
    return claim


def test_faster_rcnn_confounder_claim_is_not_applicable_on_a_data_set_without_confounders():
    claim = _claim("faster-rcnn", "confounders")
    summary = {"planted_confounders": proportion_interval(0, 3), "map_50": mean_interval([0.5])}
    with pytest.raises(NotApplicable, match="does not annotate confounders"):
        claim.holds(summary)
    (verdict,) = judge([claim], summary, "full", 3)
    assert verdict["verdict"] == "not applicable" and verdict["held"] is None
    assert verdict["reason"].startswith("not applicable: the --data set does not annotate")


def test_faster_rcnn_confounder_claim_is_judged_on_generated_scenes():
    claim = _claim("faster-rcnn", "confounders")
    summary = {
        "planted_confounders": proportion_interval(3, 3),
        "confounder_fp_peak": mean_interval([0.2, 0.3, 0.1]),
        "confounder_fp_final": mean_interval([0.0, 0.1, 0.0]),
    }
    assert claim.holds(summary) is True
    summary["confounder_fp_final"] = mean_interval([0.5, 0.5, 0.5])
    assert claim.holds(summary) is False


def test_fake_news_gap_claim_is_not_applicable_when_no_gap_exists():
    claim = _claim("fake-news", "gap")
    summary = {
        "forest_beats_all_positive": proportion_interval(2, 3),
        "single_gap_closed": mean_interval([0.95, 0.97]),
        "f1_all_positive": mean_interval([0.6, 0.6, 0.6]),
        "f1_best_single": mean_interval([0.9, 0.9, 0.9]),
        "f1_forest": mean_interval([0.91, 0.92, 0.9]),
    }
    (verdict,) = judge([claim], summary, "full", 3)
    assert verdict["verdict"] == "not applicable"
    assert "no F1 gap" in verdict["reason"]
    summary["forest_beats_all_positive"] = proportion_interval(3, 3)
    (verdict,) = judge([claim], summary, "full", 3)
    assert verdict["held"] is True


@pytest.mark.parametrize(
    ("words", "metric", "ratio"),
    [
        ("more parameters", "params_ratio_m3", 1.001),
        ("1.3x the inference time", "time_ratio_m3", 1.05),
        ("deep ensemble of 3 ResNet-18s", "time_ratio_de3", 2.9),
    ],
)
def test_mimo_cost_claims_apply_to_the_resnet18_backbone_only(words, metric, ratio):
    """``--set cost_backbone=cnn`` times the small CNN (its input and output layers are a larger
    share of it): the claims speak of ResNet-18, so they say "not applicable", not "not held"."""
    claim = _claim("mimo", words)
    summary = {metric: mean_interval([ratio] * 5), "cost_on_resnet18": mean_interval([0.0] * 5)}
    (verdict,) = judge([claim], summary, "full", 5)
    assert verdict["verdict"] == "not applicable"
    assert "cost_backbone" in verdict["reason"]
    summary["cost_on_resnet18"] = mean_interval([1.0] * 5)
    (verdict,) = judge([claim], summary, "full", 5)
    assert verdict["held"] is True

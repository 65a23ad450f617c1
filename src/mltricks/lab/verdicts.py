"""From a run's per-seed metrics to its summary and its claims' verdicts.

``summarize_metrics`` turns each scalar metric of the seeds into an ``Estimate`` (a mean with an
interval); ``judge`` evaluates an experiment's ``CLAIMS`` on that summary, on the presets and
seed counts each claim asks for. Both are pure functions of what the run folder will hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mltricks.lab.experiment import Claim, NotApplicable
from mltricks.lab.stats import (
    Estimate,
    in_range,
    mean_interval,
    metric_range,
    proportion_interval,
)

__all__ = ["VERDICT_LABELS", "judge", "summarize_metrics"]


def summarize_metrics(per_seed: Sequence[dict[str, Any]]) -> dict[str, Estimate]:
    """Mean and 95% interval over seeds of every scalar metric.

    A metric returned as a boolean in every seed (a hit, a success) is a proportion: its interval
    is Wilson's, which stays inside [0, 1]; numbers get Student's t interval, clipped to the
    range the metric's name implies (``stats.metric_range``: an accuracy's to [0, 1], a
    duration's to [0, inf)).
    """
    names: list[str] = []
    for metrics in per_seed:
        names += [k for k, v in metrics.items() if _is_scalar(v) and k not in names]
    summary = {}
    for name in names:
        raw = [m[name] for m in per_seed if _is_scalar(m.get(name))]
        values = [float(v) for v in raw]
        if len(values) > 1 and all(isinstance(v, bool | np.bool_) for v in raw):
            summary[name] = proportion_interval(int(sum(values)), len(values))
        else:
            summary[name] = in_range(mean_interval(values), metric_range(name))
    return summary


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.number) or (
        isinstance(value, torch.Tensor) and value.numel() == 1
    )


VERDICT_LABELS = {True: "held", False: "not held", None: "not judged"}


def judge(
    claims: Sequence[Claim],
    summary: dict[str, Estimate],
    preset: str,
    num_seeds: int,
    *,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each claim's verdict with the numbers it rests on.

    ``held`` is True/False when judged, None otherwise; ``verdict`` is the label a reader sees:
    ``held``, ``not held``, ``not judged`` (another preset, too few seeds), ``not applicable``
    (the claim raised ``NotApplicable``: ``reason`` says why) or ``defect`` (the claim reads a
    metric the run did not produce: a bug of the experiment, also written to ``log``).
    """
    verdicts = []
    for claim in claims:
        verdict = _judge_one(claim, summary, preset, num_seeds)
        missing = [m for m in claim.metrics if m not in summary]
        if log is not None and verdict["verdict"] == "defect":
            log(f"claim {claim.text!r}: {verdict['reason']}")
        elif log is not None and missing and verdict["verdict"] != "not applicable":
            log(
                f"claim {claim.text!r}: experiment defect: it lists metric(s) "
                f"{', '.join(map(repr, missing))}, which the run did not produce"
            )
        verdicts.append(verdict)
    return verdicts


def _judge_one(claim: Claim, summary: dict[str, Estimate], preset: str, num_seeds: int) -> dict:
    verdict: dict[str, Any] = {
        "text": claim.text,
        "held": None,
        "verdict": "not judged",
        "numbers": {m: summary[m].as_dict() for m in claim.metrics if m in summary},
        "presets": list(claim.presets),
    }
    if preset not in claim.presets:
        verdict["reason"] = f"judged on {' / '.join(claim.presets)} only"
        return verdict
    if num_seeds < claim.min_seeds:
        verdict["reason"] = f"needs at least {claim.min_seeds} seeds, got {num_seeds}"
        return verdict
    missing = [m for m in claim.metrics if m not in summary]
    try:
        held = bool(claim.holds(summary))
    except NotApplicable as error:
        verdict.update(verdict="not applicable", reason=f"not applicable: {error}")
        return verdict
    except KeyError as error:
        key = error.args[0] if error.args else None
        if isinstance(key, str) and key not in summary:
            missing = [*missing, key] if key not in missing else missing
        else:
            verdict["reason"] = f"could not be judged: KeyError: {error}"
            return verdict
    except (TypeError, ValueError, ZeroDivisionError) as error:
        verdict["reason"] = f"could not be judged: {type(error).__name__}: {error}"
        return verdict
    if missing:
        verdict.update(
            verdict="defect",
            reason="experiment defect: the claim reads metric(s) "
            f"{', '.join(map(repr, missing))}, which the run did not produce",
        )
        return verdict
    verdict.update(held=held, verdict=VERDICT_LABELS[held])
    return verdict

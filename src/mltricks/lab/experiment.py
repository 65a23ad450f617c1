"""What an experiment module is made of, and what its ``run`` function sees.

An experiment module (``mltricks/lab/experiments/<name>.py``) defines:

- ``SYSTEM``: the system it reproduces (one of ``registry.SYSTEMS``; docs/systems/);
- ``DESCRIPTION``: one line for ``mltricks list``;
- ``DATA``: what ``--data PATH`` means for it, or None when it reads no real data set;
- ``DATA_FORMATS``: the formats ``--data`` may hold (names of ``data_formats.FORMATS``),
  checked before the run;
- ``Config``: a dataclass holding every knob, with defaults (the ``quick`` preset); an
  experiment that reads images from ``--data`` includes ``config.DataSubset``;
- ``PRESETS``: ``{"smoke": Preset(...), "quick": Preset(...), "full": Preset(...)}``;
- optionally ``DATA_CONFIG``: the ``Config`` values with ``--data``, in every preset;
- optionally ``validate(cfg)``: cross-field rules, raising ``ValueError`` (a usage error);
- ``CLAIMS``: checkable statements about the summarised metrics (``Claim``): at least one
  judged on the ``quick`` preset (a stated, weaker bar with quick's seeds), so that every run
  of ``make demo`` gives every system a verdict, and one against the strong simple baseline a
  practitioner would try first;
- optionally ``BASELINES``: ``Baseline`` pairs (a network's metric, the strong baseline's on the
  same data) checked after each run: a network below its baseline gets one line naming the fix;
- ``run(cfg, ctx) -> dict``: one seed's metrics (the lab seeds everything before calling it);
  ``cfg`` is resolved once for the run, ``--data`` included (``config.resolve_config``);
- optionally ``summarize(cfg, summary, results, ctx) -> dict``: figures and metrics across all
  seeds. ``summary`` maps every scalar metric to its ``Estimate`` over the seeds (already
  computed: do not recompute it), ``results`` holds the per-seed metric dicts in seed order.

Scalar metrics (numbers and booleans) are summarised over seeds as a mean with a 95% interval;
other values (lists of per-epoch numbers, tables) are kept per seed in ``metrics.json``.

A claim that cannot apply to the data a run was given (a confounder test on a real data set
that has no confounders) raises ``NotApplicable("reason")`` from its ``holds`` function; the
report shows "not applicable: reason". A claim that reads a metric the run did not produce is a
defect of the experiment and is reported as such, naming the metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltricks.lab.stats import Estimate

if TYPE_CHECKING:
    from mltricks.lab.run_folder import Run

__all__ = ["Baseline", "Claim", "NotApplicable", "Preset", "RunContext", "Summary"]

Summary = Mapping[str, Estimate]


class NotApplicable(Exception):
    """Raised by a claim's ``holds`` when the claim cannot apply to this run's data.

    The message is the reason a reader sees: ``raise NotApplicable("--data gives real images,
    which have no planted confounders")`` is reported as "not applicable: --data gives ...".
    """


@dataclass(frozen=True)
class Preset:
    """Default seeds and config overrides of one preset.

    Args:
        seeds: the seeds run when ``--seeds`` is not given.
        config: ``Config`` values of this preset, with or without ``--data``.
        data_config: values of this preset with ``--data`` only, over ``config`` and the
            module's ``DATA_CONFIG`` (a smoke preset's cap on the images read, fewer epochs on
            a larger data set); the bundled data's numbers do not depend on them.
        format_config: ``{format: values}`` with ``--data`` of that format only (a name of
            ``data_formats.FORMATS``), over ``data_config``.
    """

    seeds: tuple[int, ...] = (0,)
    config: Mapping[str, Any] = field(default_factory=dict)
    data_config: Mapping[str, Any] = field(default_factory=dict)
    format_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A statement judged on the summarised metrics of a run.

    Args:
        text: the statement as a reader should see it.
        holds: ``holds(summary) -> bool`` with ``summary[name]`` an ``Estimate`` (``.mean``,
            ``.low``, ``.high``) of each scalar metric; it raises ``NotApplicable(reason)``
            when the claim cannot apply to the run's data.
        metrics: the metric names whose numbers are shown next to the verdict.
        presets: presets that judge the claim; other presets show it as not judged.
        min_seeds: fewest seeds a judgement needs.
    """

    text: str
    holds: Callable[[Summary], bool]
    metrics: tuple[str, ...]
    presets: tuple[str, ...] = ("full",)
    min_seeds: int = 1


@dataclass(frozen=True)
class Baseline:
    """A network the run trained, and the strong simple baseline it should beat on the same data.

    After a run, a summary whose ``metric`` mean is below its ``baseline`` mean gets one line at
    the end of the run (console, ``log.txt``, ``status.json``'s ``warnings``): not an error, but
    a preset or ``--set`` that leaves the network below what a practitioner would try first
    (logistic regression on the same labelled images) must say so, and say what closes the gap.

    Args:
        metric: the network's metric (higher is better), such as ``test_accuracy_ce``.
        baseline: the baseline's metric on the same data and labels, such as
            ``test_accuracy_logreg``.
        what: the network, as a reader names it ("the CNN trained on the labelled images").
        fix: the setting that closes the gap ("more steps (--set steps=2000)").
        data_only: check only runs on ``--data`` (the bundled digits are a smoke signal).
        preset: the preset that closes it too (a run on a smaller preset is told
            "--preset full, or ..."; None: no preset does).
    """

    metric: str
    baseline: str
    what: str
    fix: str
    data_only: bool = True
    preset: str | None = None


@dataclass
class RunContext:
    """What ``run(cfg, ctx)`` gets: the seed, device, data path, and the run folder's writers."""

    seed: int
    seeds: tuple[int, ...]
    preset: str
    device: torch.device
    data: Path | None
    run: Run

    @property
    def first_seed(self) -> bool:
        """True for the first seed: draw per-seed figures only then."""
        return self.seed == self.seeds[0]

    @property
    def path(self) -> Path:
        """Where this seed writes (only through ``savefig``/``log``, or atomically): a scratch
        folder of its task, whose files reach the run folder (``run.folder``) when it ends."""
        return self.run.path

    def savefig(self, figure: Any, name: str, caption: str = "") -> None:
        """Save a matplotlib figure as ``<name>.png`` in the run folder and close it."""
        self.run.savefig(figure, name, caption)

    def log(self, message: str) -> None:
        """Append a line to the run's ``log.txt``."""
        self.run.log(message)

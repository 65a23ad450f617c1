"""The plumbing shared by the budget scripts ``scripts/budget_*.py`` (issue 26, item 4).

Each budget script measures how one lab experiment's metric moves with its budget (optimizer
steps, epochs, width, clusters, patience) on Fashion-MNIST: it runs the experiment once per
setting of its grid through the lab's command line, reads the runs' metrics back, prints a
Markdown table and draws a figure for ``docs/figures/budget-<experiment>.png``. This module holds
what they share; a script keeps only its grid, its metrics, its table's columns and its figure.

A setting's run lives in a folder of its own under ``--out``
(``<out>/<tag>/<experiment>/<run id>/``, as the lab lays it out), and a finished run found there
is read again rather than rerun: a script can be stopped and started again, or given more
settings, and only what is missing is trained (delete a folder to measure it again). Example::

    import _budget

    args = _budget.parser(__doc__, "mc-dropout", seeds="0,1,2").parse_args()
    for epochs in (5, 10):
        result = _budget.measure(args, "mc-dropout", f"epochs{epochs}", {"epochs": epochs})
        print(epochs, result.values("nll_mc50").mean(), result.cpu_s)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # scripts write files only, also where a display is set
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "FIGURES",
    "MAX_FIGURE_BYTES",
    "MarkdownTable",
    "Measurement",
    "cpu_footer",
    "find_or_run",
    "finished_run",
    "lab_command",
    "log_axes",
    "log_axis",
    "mean_and_seeds",
    "measure",
    "parser",
    "save_figure",
    "seed_values",
]

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
MAX_FIGURE_BYTES = 200_000  # a figure of the documentation stays small in the repository
DPI = 80


def _seeds_argument(text: str) -> str:
    """``--seeds``: comma-separated non-negative integers, passed on to the lab as given."""
    parts = text.split(",")
    if not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated non-negative integers such as 0,1,2; got {text!r}"
        )
    return text


def _set_argument(text: str) -> str:
    """``--set``: one ``KEY=VALUE`` assignment of the lab's ``--set``."""
    key, equals, _ = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as width=16; got {text!r}")
    return text


def parser(
    doc: str, experiment: str, *, seeds: str, seeds_help: str | None = None
) -> argparse.ArgumentParser:
    """The command line every budget script has; a script adds its own options to it.

    Args:
        doc: the script's docstring; its first line describes the command.
        experiment: the lab experiment the script runs; it names the default ``--out``
            (``runs-budget/<experiment>``) and ``--figure``
            (``docs/figures/budget-<experiment>.png``).
        seeds: the default ``--seeds``.
        seeds_help: the ``--seeds`` help, where the seeds are not those of every run.

    Returns:
        A parser of ``--data``, ``--seeds``, ``--out``, ``--figure`` and ``--set KEY=VALUE``
        (repeatable: more lab settings for every run; a key of the grid is overridden).
    """
    result = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    result.add_argument("--data", default="fashion-mnist", help="the lab's --data")
    result.add_argument(
        "--seeds", type=_seeds_argument, default=seeds, help=seeds_help or "the runs' seeds"
    )
    result.add_argument(
        "--out", default=f"runs-budget/{experiment}", help="folder of the runs, reused"
    )
    result.add_argument(
        "--figure",
        default=str(FIGURES / f"budget-{experiment}.png"),
        help="the PNG written (under 200 KB)",
    )
    result.add_argument(
        "--set",
        type=_set_argument,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more --set KEY=VALUE for every run",
    )
    return result


def lab_command(
    experiment: str, folder: Path, sets: Mapping[str, object], *, data: str, seeds: str
) -> list[str]:
    """The lab command line that runs ``experiment`` on its full preset into ``folder``.

    Example:
        >>> command = lab_command("mil", Path("runs"), {"width": 8}, data="fashion", seeds="0")
        >>> " ".join(command[1:])
        '-m mltricks.lab run mil --preset full --data fashion --seeds 0 --out runs --set width=8'
    """
    command = [sys.executable, "-m", "mltricks.lab", "run", experiment, "--preset", "full"]
    command += ["--data", data, "--seeds", seeds, "--out", str(folder)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    return command


def finished_run(folder: Path, experiment: str) -> Path | None:
    """The first finished run (``status.json`` state ``done``) of ``experiment`` under
    ``folder``, or None."""
    for status in sorted(Path(folder).glob(f"{experiment}/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    return None


def find_or_run(
    experiment: str, folder: Path, sets: Mapping[str, object], *, data: str, seeds: str
) -> Path:
    """The finished run of ``experiment`` under ``folder``; without one, the lab runs it there
    first (one thread per process: the runs are measured on a shared machine).

    Raises:
        subprocess.CalledProcessError: the lab failed.
        RuntimeError: the lab exited without a finished run under ``folder``.
    """
    run = finished_run(folder, experiment)
    if run is not None:
        return run
    command = lab_command(experiment, folder, sets, data=data, seeds=seeds)
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    run = finished_run(folder, experiment)
    if run is None:
        raise RuntimeError(
            f"the lab exited without a finished {experiment} run under {folder}: "
            "its log.txt says why"
        )
    return run


@dataclass(frozen=True)
class Measurement:
    """The finished runs of one setting, read back.

    Attributes:
        runs: the run folders: one, or one per seed.
        per_seed: each seed's metrics as the run recorded them, in seed order.
        means: the mean over seeds of every scalar metric the lab summarised, those of the
            experiment's ``summarize`` included (empty with one run per seed).
        cpu_s: the CPU seconds of all the runs (``status.json``; NaN where one has none).
    """

    runs: tuple[Path, ...]
    per_seed: tuple[dict[str, Any], ...]
    means: dict[str, float]
    cpu_s: float

    def values(self, name: str) -> np.ndarray:
        """The metric ``name`` of each seed: ``(seeds,)``, or ``(seeds, ...)`` for a curve."""
        return np.array([metrics[name] for metrics in self.per_seed], dtype=float)

    @property
    def cpu_min_per_seed(self) -> float:
        """The runs' CPU minutes per seed."""
        return self.cpu_s / 60 / len(self.per_seed)


def _read(run: Path) -> tuple[list[dict[str, Any]], dict[str, float], float]:
    """A run's per-seed metrics, summary means and CPU seconds."""
    metrics = json.loads((run / "metrics.json").read_text())
    summary = metrics.get("summary") or {}
    means = {name: value["mean"] for name, value in summary.items() if isinstance(value, dict)}
    cpu_s = json.loads((run / "status.json").read_text()).get("cpu_s", float("nan"))
    return list(metrics["per_seed"].values()), means, cpu_s


def measure(
    args: argparse.Namespace,
    experiment: str,
    tag: str,
    sets: Mapping[str, object],
    *,
    seeds: str | None = None,
    one_run_per_seed: bool = False,
) -> Measurement:
    """Find or run one setting of a budget grid and read its metrics.

    Args:
        args: the parsed command line of :func:`parser` (``--data``, ``--seeds``, ``--out``,
            ``--set``).
        experiment: the lab experiment.
        tag: the setting's folder under ``--out``.
        sets: the setting's lab settings; ``--set`` adds to them (and wins on a shared key).
        seeds: the seeds of this setting, where they are not ``--seeds``.
        one_run_per_seed: a run per seed, in ``<tag>/seed<seed>``, so that a later call with
            more seeds reuses the runs of the earlier ones.

    Returns:
        The setting's :class:`Measurement`.
    """
    seeds = args.seeds if seeds is None else seeds
    sets = {**sets, **dict(item.split("=", 1) for item in args.set)}
    folder = Path(args.out) / tag
    if one_run_per_seed:
        jobs = [(folder / f"seed{int(seed)}", str(int(seed))) for seed in seeds.split(",")]
    else:
        jobs = [(folder, seeds)]
    runs, per_seed, cpu_s = [], [], 0.0
    for run_folder, run_seeds in jobs:
        run = find_or_run(experiment, run_folder, sets, data=args.data, seeds=run_seeds)
        seed_metrics, means, seconds = _read(run)
        runs.append(run)
        per_seed += seed_metrics
        cpu_s += seconds
    return Measurement(tuple(runs), tuple(per_seed), {} if one_run_per_seed else means, cpu_s)


class MarkdownTable:
    """A Markdown table built a row at a time; the first row's keys name the columns.

    Args:
        spec: the format of a float cell (any other cell is written with ``str``).

    Example:
        >>> table = MarkdownTable()
        >>> table.add({"clusters": 10, "accuracy": 0.51549, "CPU min": f"{0.0912:.2f}"})
        >>> print(table)
        | clusters | accuracy | CPU min |
        |---|---|---|
        | 10 | 0.515 | 0.09 |
    """

    def __init__(self, spec: str = ".3f") -> None:
        self.spec = spec
        self.rows: list[dict[str, object]] = []

    def add(self, row: Mapping[str, object]) -> None:
        """Append a row: ``{column: cell}``, the columns of the first row in their order."""
        if self.rows and list(row) != list(self.rows[0]):
            raise ValueError(
                f"row columns {list(row)} differ from the table's {list(self.rows[0])}"
            )
        self.rows.append(dict(row))

    def _cell(self, value: object) -> str:
        return f"{value:{self.spec}}" if isinstance(value, float) else str(value)

    def __str__(self) -> str:
        if not self.rows:
            return ""
        columns = list(self.rows[0])
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(map(self._cell, row.values())) + " |" for row in self.rows]
        return "\n".join(lines)


def seed_values(values: Iterable[float], spec: str = ".3f") -> str:
    """The seeds' values, comma-separated: ``0.812, 0.790``."""
    return ", ".join(f"{value:{spec}}" for value in values)


def mean_and_seeds(values: np.ndarray, spec: str = "+.3f") -> str:
    """The mean over seeds and, in brackets, each seed's value: ``+0.012 (+0.020, +0.004)``.

    Example:
        >>> mean_and_seeds(np.array([0.02, 0.004]))
        '+0.012 (+0.020, +0.004)'
    """
    return f"{values.mean():{spec}} ({seed_values(values, spec)})"


def cpu_footer(cpu_s: float, seeds: str | None = None) -> str:
    """The line under a table that gives the CPU time of all its runs (and their seeds)."""
    which = f" ({seeds})" if seeds is not None else ""
    return f"CPU time of the runs: {cpu_s / 60:.1f} min{which}."


def log_axes(axes: Iterable[Axes], ticks: Sequence[float], *, legend_size: int = 8) -> None:
    """The finish of a budget figure's panels: :func:`log_axis` at the grid's values, a light
    grid and the legend (in ``legend_size`` points)."""
    for ax in axes:
        log_axis(ax, ticks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)


def log_axis(ax: Axes, ticks: Sequence[float]) -> None:
    """A log-scale x axis labelled at the grid's values only.

    Its minor ticks are turned off: over a grid that spans a decade or two, matplotlib labels
    them too (``3x10^1`` beside ``40``), over the grid's own labels.
    """
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(tick) for tick in ticks])
    ax.minorticks_off()


def save_figure(fig: Figure, path: str | Path, title: str) -> None:
    """Title, lay out and write ``fig`` as a PNG under :data:`MAX_FIGURE_BYTES`, then close it.

    The figure is written at 80 dpi; a larger file is written again at a lower resolution.

    Raises:
        ValueError: the figure stays too large at 40 dpi.
    """
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        for dpi in (DPI, DPI * 3 // 4, DPI // 2):
            fig.savefig(path, dpi=dpi)
            size = Path(path).stat().st_size
            if size < MAX_FIGURE_BYTES:
                return
        raise ValueError(
            f"figure {path} is {size} bytes at {dpi} dpi; a budget figure must stay under "
            f"{MAX_FIGURE_BYTES} bytes: draw fewer points or a smaller figure"
        )
    finally:
        plt.close(fig)

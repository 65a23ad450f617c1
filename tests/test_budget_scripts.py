"""The budget scripts (``scripts/budget_*.py``, issue 26 item 4) without training anything.

``subprocess.run`` is replaced by a fake lab that writes a finished run folder where the lab
would (``<out>/<experiment>/<run id>/`` with ``status.json`` and ``metrics.json``), with metrics
made up from the seed and the ``--set`` values, so each script's ``main`` runs end to end: the
commands it gives the lab, the reuse of finished runs, its table and its figure are checked.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
MAX_FIGURE_BYTES = 200_000
SHARES = ("1%", "2%", "5%", "10%")
TAGS = ("1pct", "2pct", "5pct", "10pct")


@dataclass(frozen=True)
class Case:
    """What one script must do with its default grid.

    Attributes:
        script: the file's stem under ``scripts/``.
        experiment: the lab experiment it runs.
        runs: ``(--seeds, {--set key: value})`` of each lab run, in order.
        rows: the first cells of each table row, in order (one row per setting).
    """

    script: str
    experiment: str
    runs: tuple[tuple[str, dict[str, str]], ...]
    rows: tuple[tuple[str, ...], ...]


def _grid(seeds: str, *sets: dict[str, Any]) -> tuple[tuple[str, dict[str, str]], ...]:
    return tuple((seeds, {key: str(value) for key, value in s.items()}) for s in sets)


MIL_STEPS = ("150", "300", "600", "1200", "2400")  # the curve points the fake lab records
CASES = (
    Case(
        "budget_autoencoder",
        "autoencoder",
        _grid(
            "0,1",
            *(
                {"ae_epochs": ae, "max_train": n, "clf_epochs": 60}
                for ae, n in ((10, 2000), (30, 2000), (10, 8000))
            ),
        ),
        tuple(
            (ae, n, str(budget))
            for ae, n in (("10", "2000"), ("30", "2000"), ("10", "8000"))
            for budget in (10, 20, 30, 40, 60)
        ),
    ),
    Case(
        "budget_cluster_then_label",
        "cluster-then-label",
        _grid("0,1,2", *({"n_clusters": k} for k in (10, 20, 40, 80))),
        tuple((str(k), share) for k in (10, 20, 40, 80) for share in SHARES),
    ),
    Case(
        "budget_consistency_regularization",
        "consistency-regularization",
        _grid(
            "0,1",
            *({"lambdas": "0,1", "sweep_shares": 0.14, "steps": s} for s in (250, 500, 1000, 2000)),
        ),
        tuple((str(s),) for s in (250, 500, 1000, 2000)),
    ),
    Case(
        "budget_fgsm",
        "fgsm",
        tuple(
            (seed, {"max_test": "2000", "epochs": str(e)})
            for e in (2, 4, 8, 16)
            for seed in ("0", "1")  # a run per seed
        ),
        tuple((str(e),) for e in (2, 4, 8, 16)),
    ),
    Case(
        "budget_mc_dropout",
        "mc-dropout",
        _grid("0,1,2", *({"epochs": e} for e in (5, 10, 20, 40, 80))),
        tuple((str(e),) for e in (5, 10, 20, 40, 80)),
    ),
    Case(
        "budget_mil",
        "mil",
        _grid(
            "0,1,2",
            *(
                {
                    "poolings": "attention",
                    "train_bags": bags,
                    "width": width,
                    "steps": 2400,
                    "curve_steps": "150,300,600,1200",
                }
                for bags, width in (("200", 8), ("200,500,1000", 16), ("200", 32))
            ),
        ),
        tuple(
            (width, bags, step)
            for width, bag_counts in (
                ("8", ("200",)),
                ("16", ("200", "500", "1000")),
                ("32", ("200",)),
            )
            for bags in bag_counts
            for step in MIL_STEPS
        ),
    ),
    Case(
        "budget_mimo",
        "mimo",
        tuple(
            (
                seed,
                {
                    "members": "1,3",
                    "deep_ensemble_size": "1",
                    "cost_backbone": "cnn",
                    "timing_repeats": "1",
                    "width": str(width),
                    "epochs": str(epochs),
                },
            )
            for width, counts in ((16, (4, 10, 20, 40, 80)), (32, (4, 10, 20, 40)))
            for epochs in counts
            for seed in ("0", "1")
        ),
        tuple(
            (str(width), str(epochs))
            for width, counts in ((16, (4, 10, 20, 40, 80)), (32, (4, 10, 20, 40)))
            for epochs in counts
        ),
    ),
    Case(
        "budget_self_training",
        "self-training",
        _grid("0,1,2", *({"patience": p, "compare_unweighted": "false"} for p in (3, 10, 30, 100))),
        tuple((str(p), share) for p in (3, 10, 30, 100) for share in SHARES),
    ),
    Case(
        "budget_triplet_embeddings",
        "triplet-embeddings",
        tuple(
            (seeds, {key: str(value) for key, value in sets.items()})
            for seeds, sets in (
                ("0,1", {"epochs": 40, "width": 16}),  # --seeds: the width-16 runs
                ("0", {"epochs": 20, "width": 32}),  # --wide-seeds
            )
            for sets in [
                {
                    **sets,
                    "methods": "hard,semi_hard,random,softmax",
                    "projection_dim": 0,
                    "curve_every": 1,
                }
            ]
        ),
        tuple(("16", str(b)) for b in (5, 10, 15, 20, 30, 40))
        + tuple(("32", str(b)) for b in (5, 10, 15, 20)),
    ),
    Case(
        "budget_unsupervised_support",
        "unsupervised-support",
        _grid(
            "0,1",
            *(
                {"variants": "ce,both", "width": width, "steps": steps}
                for width, steps in (
                    (32, 250),
                    (32, 500),
                    (32, 1000),
                    (32, 2000),
                    (16, 1000),
                    (16, 2000),
                )
            ),
        ),
        (
            ("32", "250"),
            ("32", "500"),
            ("32", "1000"),
            ("32", "2000"),
            ("16", "1000"),
            ("16", "2000"),
        ),
    ),
)


def _value(seed: str, sets: dict[str, str], name: str) -> float:
    """A made-up metric in [0.5, 0.75): fixed by the seed, the settings and the name, so
    that two settings (or seeds) give different numbers."""
    key = f"{seed}|{sorted(sets.items())}|{name}".encode()
    return 0.5 + (zlib.crc32(key) % 1000) / 4000


def _curve(start: float, length: int) -> list[float]:
    return [start + 0.002 * epoch for epoch in range(length)]


def _seed_metrics(experiment: str, seed: str, sets: dict[str, str]) -> dict[str, Any]:
    """One seed's metrics as the lab's ``metrics.json`` holds them, for what the scripts read."""

    def value(name: str) -> float:
        return _value(seed, sets, name)

    if experiment == "autoencoder":
        epochs = int(sets["clf_epochs"])
        return {
            "accuracy_curve_scratch": _curve(value("scratch"), epochs),
            "accuracy_curve_pretrained": _curve(value("pretrained"), epochs),
            "accuracy_logreg": value("accuracy_logreg"),
        }
    if experiment == "mil":
        steps = [int(s) for s in sets["curve_steps"].split(",")] + [int(sets["steps"])]
        return {
            f"curve_attention_{bags}": [
                [step, value(f"bag{bags}-{step}"), value(f"instance{bags}-{step}")]
                for step in steps
            ]
            for bags in sets["train_bags"].split(",")
        }
    if experiment == "triplet-embeddings":
        epochs = int(sets["epochs"])
        metrics: dict[str, Any] = {
            f"val_knn_curve_{method}": _curve(value(method), epochs)
            for method in sets["methods"].split(",")
        }
        return {**metrics, "mean_pairwise_distance_hard": value("distance")}
    names = {
        "cluster-then-label": [
            f"{key}_{tag}"
            for key in ("acc_ctl_best", "acc_ctl_alpha0", "acc_logreg")
            for tag in TAGS
        ]
        + ["acc_kmeans_all_labels"],
        "consistency-regularization": [
            "test_accuracy_lambda_0",
            "test_accuracy_lambda_1",
            "test_accuracy_chosen",
            "accuracy_gain_chosen",
            "test_accuracy_logreg",
        ],
        "fgsm": [
            "robustness_gap_at_compare_eps",
            "accuracy_ratio_at_compare_eps",
            "lenet_accuracy_ratio_at_compare_eps",
            "accuracy_ratio_at_claim_eps",
            "clean_accuracy",
            "lenet_clean_accuracy",
        ],
        "mc-dropout": [
            "nll_diff_mc50",
            "nll_diff_mc50_vs_ts",
            "nll_std",
            "nll_mc50",
            "nll_ts",
            "ece_std",
            "ece_mc50",
            "temperature",
            "acc_std",
            "acc_mc50",
            "acc_logreg",
            "train_loss",
        ],
        "mimo": ["nll_diff_m3", "nll_m1", "nll_m3", "acc_m1", "acc_m3", "member_acc_m3"],
        "self-training": [
            f"{key}_{tag}"
            for key in (
                "acc_self_training",
                "acc_sklearn_self_training",
                "diff_vs_sklearn",
                "acc_logreg",
                "rounds_kept",
            )
            for tag in TAGS
        ],
        "unsupervised-support": [
            "test_accuracy_ce",
            "test_accuracy_both",
            "test_accuracy_logreg",
            "accuracy_gain_both",
        ],
    }[experiment]
    metrics = {name: value(name) for name in names}
    if experiment == "consistency-regularization":
        share = float(sets["sweep_shares"])
        metrics["sweep"] = [
            {
                "share": share,
                "lambda_0": {"test_accuracy": value("sweep_lambda_0")},
                "chosen": {"test_accuracy": value("sweep_chosen")},
                "logreg": value("sweep_logreg"),
            }
        ]
    return metrics


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _sets(command: list[str]) -> dict[str, str]:
    """The command's ``--set key=value`` items (a later one wins, as in the lab)."""
    items = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
    return dict(item.split("=", 1) for item in items)


class FakeLab:
    """Stands in for ``subprocess.run``: records each command and writes the finished run
    folder the lab would write for it."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        assert kwargs.get("check") is True  # a failed run must stop the script
        assert kwargs["env"]["OMP_NUM_THREADS"] == "1"
        self.commands.append(list(command))
        experiment = _option(command, "run")
        seeds, sets = _option(command, "--seeds"), _sets(command)
        per_seed = {s: _seed_metrics(experiment, s, sets) for s in seeds.split(",")}
        scalars = [
            name for name, v in next(iter(per_seed.values())).items() if isinstance(v, float)
        ]
        summary = {
            name: {"mean": sum(m[name] for m in per_seed.values()) / len(per_seed)}
            for name in scalars
        }
        run = Path(_option(command, "--out")) / experiment / "20260101-000000"
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"state": "done", "cpu_s": 1.0}))
        metrics = {"per_seed": per_seed, "summary": summary}
        (run / "metrics.json").write_text(json.dumps(metrics))
        return subprocess.CompletedProcess(command, 0)


def _load(script: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``scripts/<script>.py`` (not a package) as a fresh module."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_test_{script}", SCRIPTS / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # as an import would (dataclasses)
    spec.loader.exec_module(module)
    return module


def _table_rows(table: str) -> list[list[str]]:
    """The cells of the table's data rows (the header and the ``|---|`` line left out)."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[1].startswith("|---|"), table
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    lab = FakeLab()
    monkeypatch.setattr(subprocess, "run", lab)
    return lab


@pytest.mark.parametrize("case", CASES, ids=[case.script for case in CASES])
def test_budget_script_runs_its_grid_then_reuses_it(
    case: Case, fake_lab: FakeLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _load(case.script, monkeypatch)
    data, out, figure = str(tmp_path / "fashion data"), tmp_path / "runs", tmp_path / "fig.png"
    argv = ["--data", data, "--out", str(out), "--figure", str(figure), "--set", "max_test=500"]
    table = module.main(argv)

    assert len(fake_lab.commands) == len(case.runs)
    for command, (seeds, sets) in zip(fake_lab.commands, case.runs):
        assert command[:5] == [sys.executable, "-m", "mltricks.lab", "run", case.experiment]
        assert _option(command, "--preset") == "full"
        assert _option(command, "--data") == data
        assert _option(command, "--seeds") == seeds
        assert Path(_option(command, "--out")).is_relative_to(out)
        assert _sets(command) == {**sets, "max_test": "500"}  # the grid's, then --set's
    assert len({_option(c, "--out") for c in fake_lab.commands}) == len(case.runs)

    rows = _table_rows(table)
    assert [tuple(row[: len(case.rows[0])]) for row in rows] == list(case.rows)
    assert all(len(row) == len(rows[0]) for row in rows)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size < MAX_FIGURE_BYTES

    # again: the finished runs are read, not rerun (the figure is drawn but not written: time)
    saved = []
    monkeypatch.setattr(sys.modules["_budget"], "save_figure", lambda *args: saved.append(args))
    assert module.main(argv) == table
    assert len(fake_lab.commands) == len(case.runs)
    assert [path for _, path, _ in saved] == [str(figure)]


def test_budget_mimo_runs_only_the_widths_asked(
    fake_lab: FakeLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    module = _load("budget_mimo", monkeypatch)
    argv = ["--out", str(tmp_path / "runs"), "--figure", str(tmp_path / "fig.png")]
    table = module.main([*argv, "--widths", "16"])
    assert {_sets(c)["width"] for c in fake_lab.commands} == {"16"}
    assert len(fake_lab.commands) == 2 * len(module.EPOCHS[16])  # two seeds per epoch count
    assert [row[0] for row in _table_rows(table)] == ["16"] * len(module.EPOCHS[16])
    for bad in ("8", "16,", "sixteen"):
        with pytest.raises(SystemExit):
            module.main([*argv, "--widths", bad])
        assert f"argument --widths: expected widths of [16, 32], comma-separated; got {bad!r}" in (
            capsys.readouterr().err
        )


def test_budget_scripts_are_all_covered() -> None:
    assert {case.script for case in CASES} == {p.stem for p in SCRIPTS.glob("budget_*.py")}


def test_budget_helpers_docstring_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = _load("_budget", monkeypatch)
    results = doctest.testmod(budget)
    assert results.attempted >= 3 and results.failed == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "width"], "argument --set: expected KEY=VALUE such as width=16; got 'width'"),
        (["--set", "=3"], "argument --set: expected KEY=VALUE"),
        (["--seeds", "0,a"], "argument --seeds: expected comma-separated non-negative integers"),
        (["--seeds", ""], "argument --seeds: expected comma-separated"),
    ],
)
def test_budget_parser_names_the_bad_argument(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    budget = _load("_budget", monkeypatch)
    with pytest.raises(SystemExit):
        budget.parser("Doc.", "mil", seeds="0").parse_args(argv)
    assert message in capsys.readouterr().err


def test_budget_run_that_never_finishes_is_an_error_not_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = _load("_budget", monkeypatch)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    failed = tmp_path / "mil" / "20260101-000000"
    failed.mkdir(parents=True)
    (failed / "status.json").write_text(json.dumps({"state": "failed"}))
    with pytest.raises(RuntimeError, match="without a finished mil run under"):
        budget.find_or_run("mil", tmp_path, {"width": 8}, data="d", seeds="0")
    assert len(calls) == 1  # a failed run is not reused, and the lab runs once


def test_budget_figure_too_large_is_written_smaller_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = _load("_budget", monkeypatch)
    import matplotlib.pyplot as plt
    import numpy as np

    def noisy_figure():  # noise does not compress: the file grows with the pixels
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(np.random.default_rng(0).random((200, 200, 3)), interpolation="nearest")
        return fig

    path = tmp_path / "figure.png"
    noisy_figure().savefig(path, dpi=budget.DPI)
    full_size = path.stat().st_size
    monkeypatch.setattr(budget, "MAX_FIGURE_BYTES", int(full_size * 0.9))
    budget.save_figure(noisy_figure(), path, "title")
    assert path.stat().st_size < budget.MAX_FIGURE_BYTES
    width = int.from_bytes(path.read_bytes()[16:20], "big")  # the PNG header's pixel width
    assert width < 4 * budget.DPI

    monkeypatch.setattr(budget, "MAX_FIGURE_BYTES", 1000)
    with pytest.raises(ValueError, match="must stay under 1000 bytes"):
        budget.save_figure(noisy_figure(), path, "title")

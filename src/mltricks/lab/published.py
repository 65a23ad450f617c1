"""The published results: the verdicts of the full runs the documentation reports, packaged with
mltricks so that every report can show them beside a run's own (never as its verdict).

The repository's ``results/<data set>/<experiment>/<run>/`` holds the run folders of the
published full runs (``results/digits/`` from ``mltricks run all --preset full``,
``results/fashion-mnist/`` from the same with ``--data fashion-mnist``; each run's command is in
its ``config.json``). ``python -m mltricks.lab.published results`` condenses their claims into
``published.json`` beside this module: a snapshot, named as such, with the date and command of
every run. A quick run of ``make demo`` judges the claims its preset can judge; for a claim
judged on full only, the report shows what the published full run found.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from mltricks.lab.run_records import collect_runs

__all__ = ["SNAPSHOT", "condense", "data_set_of", "load", "published_claim"]

SNAPSHOT = "published.json"
# the data set of a run: the bundled digits without --data, else the name of its --data folder
# (Debian's Fashion-MNIST lives in .../fashion-mnist)
DIGITS = "digits"


def data_set_of(config: dict[str, Any]) -> str:
    """``digits`` for a run without ``--data``, else the name of its data folder."""
    data = config.get("data")
    return DIGITS if not data else Path(str(data)).name


def condense(results: Path) -> dict[str, Any]:
    """The snapshot of the run folders under ``results/<data set>/``: for each data set and
    experiment, its latest finished run's command, date, seeds and claims."""
    sets: dict[str, Any] = {}
    for folder in sorted(p for p in Path(results).iterdir() if p.is_dir()):
        experiments = {}
        for name, records in sorted(collect_runs(folder).items()):
            done = [r for r in records if r.state == "done" and not r.problem]
            if not done:
                continue
            record = done[0]
            experiments[name] = {
                "run": f"{folder.name}/{name}/{record.path.name}",
                "preset": record.config.get("preset"),
                "seeds": record.config.get("seeds"),
                "command": record.config.get("command", ""),
                "finished": record.status.get("finished"),
                "claims": [
                    {
                        "text": claim.get("text", ""),
                        "verdict": claim.get("verdict") or "not judged",
                        "numbers": claim.get("numbers") or {},
                    }
                    for claim in record.claims
                ],
            }
        if experiments:
            sets[folder.name] = experiments
    return {
        "about": "verdicts of the published full runs (results/ in the repository); a snapshot, "
        "not the verdict of the run it is shown beside",
        "sets": sets,
    }


def load() -> dict[str, Any]:
    """The packaged snapshot (empty when none was published)."""
    try:
        text = resources.files("mltricks.lab").joinpath(SNAPSHOT).read_text(encoding="utf-8")
        snapshot = json.loads(text)
    except (OSError, ValueError):
        return {"sets": {}}
    return snapshot if isinstance(snapshot, dict) else {"sets": {}}


def published_claim(
    snapshot: dict[str, Any], data_set: str, experiment: str, text: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The published run of ``experiment`` on ``data_set`` and its claim with this ``text``."""
    run = (snapshot.get("sets") or {}).get(data_set, {}).get(experiment)
    if not isinstance(run, dict):
        return None
    for claim in run.get("claims") or []:
        if isinstance(claim, dict) and claim.get("text") == text:
            return run, claim
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m mltricks.lab.published RESULTS``: write the snapshot of ``RESULTS``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m mltricks.lab.published RESULTS_FOLDER", file=sys.stderr)
        return 2
    target = Path(__file__).with_name(SNAPSHOT)
    snapshot = condense(Path(args[0]))
    target.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    runs = sum(len(experiments) for experiments in snapshot["sets"].values())
    print(f"wrote {target} ({runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

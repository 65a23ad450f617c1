"""MkDocs hook: the results of the published runs, generated at build time from their run folders.

The published runs live in the repository under ``results/<data set>/<experiment>/<run>/`` (the
run folders ``mltricks run`` writes: ``config.json``, ``metrics.json``, ``claims.json``,
``figures.json``, ``status.json`` and the PNGs). Each system page (``docs/systems/*.md``) holds one
block per data set between ``<!-- results:<data set> -->`` and ``<!-- /results:<data set> -->``;
the results overview (``docs/results.md``) holds ``<!-- results-table:<data set> -->`` blocks. When
``results/<data set>/`` holds a run of a system's experiments, the hook replaces the block with
the table ``mltricks report --markdown`` writes (the report's own ``markdown_table``, its rows
for that system), the command that reran it and its figures, copied into the site. Without one,
the block's own text stays: the tables of the last published runs, labelled with their source.

The report's first column names the system; here it links to the system's page.

A system page also holds ``<!-- experiment:<name> -->`` blocks: the hook fills them from the
experiment module itself (its description, what ``--data`` reads, its presets and its claims), so
the page states what the code runs.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"

# data set folder under results/ -> how the pages name it
DATA_SETS: dict[str, str] = {
    "digits": "the data that ships with mltricks (no --data)",
    "fashion-mnist": "Fashion-MNIST (--data fashion-mnist)",
}

# the eighteen systems (mltricks.lab.registry.SYSTEMS) -> their pages under docs/systems/
SYSTEM_PAGES: dict[str, str] = {
    "Semi-Supervised Clustering (Cluster-Then-Label)": "systems/cluster-then-label.md",
    "Learning Rate Range Test": "systems/lr-range-test.md",
    "Cotton Embeddings with TripletMarginLoss": "systems/triplet-embeddings.md",
    "MIMO Classification": "systems/mimo.md",
    "Monte Carlo Dropout": "systems/mc-dropout.md",
    "BERT MLM": "systems/bert-mlm.md",
    "Adversarial Attacks": "systems/adversarial-attacks.md",
    "Faster R-CNN Object Detection": "systems/faster-rcnn.md",
    "Unsupervised Classification Support": "systems/unsupervised-support.md",
    "Transfer Learning with U-Net": "systems/unet-transfer.md",
    "Self Training": "systems/self-training.md",
    "Autoencoder": "systems/autoencoder.md",
    "Fake News Feature Importance": "systems/fake-news.md",
    "Meta Learning": "systems/meta-learning.md",
    "Positional Encoding": "systems/positional-encoding.md",
    "CAM (+ SmoothGrad + Guided)": "systems/saliency.md",
    "Consistency Regularization": "systems/consistency-regularization.md",
    "Multiple Instance Learning": "systems/multiple-instance-learning.md",
}
PAGE_SYSTEMS = {page: system for system, page in SYSTEM_PAGES.items()}
FIGURES = "systems/figures"  # where the runs' figures go in the site


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {name} -->\n.*?<!-- /{name} -->", flags=re.DOTALL)


def _unescape(cell: str) -> str:
    """A cell of ``markdown_table`` as plain text (it backslash-escapes Markdown syntax)."""
    return re.sub(r"\\(.)", r"\1", cell.strip())


def _relative(target: str, page: str) -> str:
    """The link from docs page ``page`` to docs file ``target`` (both relative to docs/)."""
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


def linked_table(table: str, page: str, systems: set[str] | None = None) -> str:
    """``markdown_table``'s output with the first column linked to the system pages, keeping
    only the rows of ``systems`` (all when None) and the table itself (not the total line)."""
    lines = table.splitlines()
    kept = lines[:2]
    for line in lines[2:]:
        if not line.startswith("|"):
            continue
        cells = line.split(" | ")
        system = _unescape(cells[0].removeprefix("|"))
        if systems is not None and system not in systems:
            continue
        if system in SYSTEM_PAGES:
            cells[0] = f"| [{system}]({_relative(SYSTEM_PAGES[system], page)})"
        kept.append(" | ".join(cells))
    return "\n".join(kept)


def _runs(data_set: str, root: Path = RESULTS) -> dict[str, Any]:
    """The latest run of each experiment under ``root/<data_set>/`` (empty when none)."""
    from mltricks.lab.report import collect_runs

    folder = root / data_set
    if not folder.is_dir():
        return {}
    return {name: records[0] for name, records in collect_runs(folder).items()}


def _experiments(system: str) -> list[str]:
    from mltricks.lab import registry

    return [name for name in registry.names() if registry.load(name).SYSTEM == system]


def _figure_uri(data_set: str, experiment: str, file: str) -> str:
    return f"{FIGURES}/{data_set}/{experiment}/{file}"


def system_results(system: str, data_set: str, page: str, root: Path = RESULTS) -> str | None:
    """The generated results of ``system`` on ``data_set``: its rows of the report's table, the
    commands of its runs and their figures; None when ``root`` holds no run of it."""
    from mltricks.lab.report import markdown_table

    runs = _runs(data_set, root)
    experiments = [name for name in _experiments(system) if name in runs]
    if not experiments:
        return None
    parts = [
        f"The published runs in `results/{data_set}/`, on {DATA_SETS[data_set]} "
        "(generated by the report from their run folders).",
        "",
        linked_table(markdown_table(root / data_set), page, {system}),
    ]
    for experiment in experiments:
        record = runs[experiment]
        parts += ["", f"**`{experiment}`**, run `{record.path.name}`."]
        command = record.config.get("command")
        if command:  # a fence cannot be closed early by what the command holds
            parts += ["", "```bash", str(command).replace("`", "'"), "```"]
        for figure in record.figures:
            caption = _text(figure.get("caption") or figure["file"])
            uri = _figure_uri(data_set, experiment, figure["file"])
            parts += ["", f"![{caption}]({_relative(uri, page)})", "", f"*{caption}*"]
    return "\n".join(parts)


def overview_table(data_set: str, page: str, root: Path = RESULTS) -> str | None:
    """The report's table of every system on ``data_set``, systems linked; None without runs."""
    from mltricks.lab.report import ReportError, markdown_table

    if not (root / data_set).is_dir():
        return None
    try:
        table = markdown_table(root / data_set)
    except ReportError:
        return None
    total = [line for line in table.splitlines() if line.startswith("Total run time")]
    return "\n\n".join(
        [
            f"Generated by the report from the run folders in `results/{data_set}/` "
            f"({DATA_SETS[data_set]}).",
            linked_table(table, page),
            *total,
        ]
    )


def _text(value: Any) -> str:
    """Plain text in Markdown: characters that would start markup are backslash-escaped."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", str(value))


def _seeds(seeds: tuple[int, ...]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def experiment_card(name: str) -> str:
    """What experiment ``name`` runs, read from its module: description, data, presets, claims."""
    from mltricks.lab import registry

    module = registry.load(name)
    data = module.DATA
    presets = "; ".join(
        f"`{preset}` seeds {_seeds(tuple(module.PRESETS[preset].seeds))}"
        for preset in registry.PRESET_NAMES
    )
    lines = [
        f"`mltricks run {name}`: {_text(module.DESCRIPTION)}.",
        "",
        f"- `--data PATH`: {_text(data)}." if data else "- reads no real data set (no `--data`).",
        f"- presets: {presets}.",
        "- claims, each judged on the presets it names:",
    ]
    for claim in module.CLAIMS:
        judged = ", ".join(f"`{p}`" for p in claim.presets)
        seeds = f", at least {claim.min_seeds} seeds" if claim.min_seeds > 1 else ""
        lines.append(f"    - {_text(claim.text)} ({judged}{seeds})")
    lines += ["", "```bash", f"mltricks run {name} --preset full", "```"]
    return "\n".join(lines)


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    """Fill the experiment blocks of a system page, and replace the results blocks of a system
    page or of the results overview where published runs exist."""
    uri = page.file.src_uri
    markdown = re.sub(
        r"<!-- experiment:([a-z0-9-]+) -->\n.*?<!-- /experiment -->",
        lambda m: f"<!-- experiment:{m[1]} -->\n{experiment_card(m[1])}\n<!-- /experiment -->",
        markdown,
        flags=re.DOTALL,
    )
    for data_set in DATA_SETS:
        if uri in PAGE_SYSTEMS:
            name, generated = (
                f"results:{data_set}",
                system_results(PAGE_SYSTEMS[uri], data_set, uri),
            )
        elif uri == "results.md":
            name, generated = f"results-table:{data_set}", overview_table(data_set, uri)
        else:
            continue
        if generated is not None:
            replacement = f"<!-- {name} -->\n{generated}\n<!-- /{name} -->"
            markdown = _block(name).sub(lambda _, text=replacement: text, markdown)
    return markdown


def on_files(files: Files, *, config: Any, **kwargs: Any) -> Files:
    """Copy the figures of the published runs into the site, beside the system pages."""
    for data_set in DATA_SETS:
        for experiment, record in _runs(data_set).items():
            for figure in record.figures:
                uri = _figure_uri(data_set, experiment, figure["file"])
                files.append(
                    File.generated(config, uri, abs_src_path=str(record.path / figure["file"]))
                )
    return files

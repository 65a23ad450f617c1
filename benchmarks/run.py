"""Run the benchmarks (``make bench``): each ``bench_*.py`` defines ``main() -> str`` (Markdown).

Usage: ``python benchmarks/run.py [topic ...]`` (topics are file names without ``bench_``).
Tables are printed, saved under ``bench-results/<topic>.md`` with the machine's details, and
written into the documentation's benchmarks page (``docs/benchmarks.md``) between
``<!-- bench:<topic> -->`` and ``<!-- /bench:<topic> -->``, so that the page always shows the
latest run of every benchmark.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench-results"
PAGE = HERE.parent / "docs" / "benchmarks.md"


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


def accelerator() -> str:
    """What the tables say about GPUs: these benchmarks time the CPU."""
    if torch.cuda.is_available():
        return (
            f"a GPU ({torch.cuda.get_device_name(0)}) is present, but these tables time the CPU "
            "only; GPU ratios were not measured"
        )
    return "no GPU on this machine: CPU ratios only"


def footer(seconds: float) -> str:
    return (
        f"Machine: {machine()}; {accelerator()}. The tables report ratios of mltricks to its "
        f"anchor measured side by side in one process (absolute times depend on the machine "
        f"and its load); {seconds:.0f} s."
    )


def update_page(topic: str, text: str, page: Path = PAGE) -> bool:
    """Replace the block between the topic's markers in ``page``; False without markers."""
    if not page.exists():
        return False
    pattern = re.compile(
        rf"(<!-- bench:{re.escape(topic)} -->\n).*?(\n<!-- /bench:{re.escape(topic)} -->)",
        re.DOTALL,
    )
    content = page.read_text()
    if not pattern.search(content):
        return False
    page.write_text(pattern.sub(lambda m: m.group(1) + text.strip() + m.group(2), content))
    return True


def main(topics: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    files = sorted(HERE.glob("bench_*.py"))
    if topics:
        files = [f for f in files if f.stem.removeprefix("bench_") in topics]
    failed = []
    for file in files:
        topic = file.stem.removeprefix("bench_")
        print(f"== {topic}", flush=True)
        started = time.time()
        try:
            spec = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(spec)
            assert spec.loader is not None
            spec.loader.exec_module(module)
            table = module.main()
        except Exception:
            traceback.print_exc()
            failed.append(topic)
            continue
        text = f"{table}\n\n{footer(time.time() - started)}\n"
        (RESULTS / f"{topic}.md").write_text(text)
        if not update_page(topic, text):
            print(
                f"{PAGE.relative_to(HERE.parent)} has no <!-- bench:{topic} --> block; "
                "table not copied",
                flush=True,
            )
        print(text, flush=True)
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run the benchmarks (``make bench``): each ``bench_*.py`` defines ``main() -> str`` (Markdown).

Usage: ``python benchmarks/run.py [topic ...]`` (topics are file names without ``bench_``).
Tables are printed and saved under ``bench-results/<topic>.md`` with the machine's details.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench-results"


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


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
        text = f"{table}\n\nMachine: {machine()}; {time.time() - started:.0f} s.\n"
        (RESULTS / f"{topic}.md").write_text(text)
        print(text, flush=True)
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ``mltricks`` command: the lab's command line when ``mltricks[lab]`` is installed, else one
line that names the extra (a core-only install has the command too, since pip installs every
console script of a package).

This is the one module outside ``mltricks.lab`` that imports it, and only after checking that
the lab's libraries are there (``tests/test_layout.py`` names it as the exception).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mltricks._utils.extras import MissingExtraError, missing_modules


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mltricks`` with ``argv``; exit status 2 with one line when the lab is missing."""
    missing = missing_modules("lab")
    if missing:
        print(
            f"mltricks: {MissingExtraError('lab', 'the mltricks command', missing)}",
            file=sys.stderr,
        )
        return 2
    try:
        # the lab's imports (torch, torchvision, matplotlib) take seconds: a Ctrl-C meanwhile,
        # before the lab's own handler is in, is the same one line and exit status as in a run
        from mltricks.lab.cli import main as lab_main

        return lab_main(argv)
    except KeyboardInterrupt:
        print("\nmltricks: interrupted", file=sys.stderr)
        return 130  # mltricks.lab.cli.INTERRUPTED, which the Ctrl-C may come before


if __name__ == "__main__":
    sys.exit(main())

"""The lab: experiments that reproduce each technique's result, the training engine, run
folders and the HTML report. The core (everything outside ``mltricks.lab``) never imports it.

The lab writes its figures to files, so it picks matplotlib's non-interactive Agg backend, once,
here; but only when nobody chose a backend before: not when ``MPLBACKEND`` is set (Jupyter
kernels set it to their inline backend) or pyplot is already imported (a notebook or script that
drew before importing the lab keeps its backend; the lab's ``savefig`` works with any backend).
A backend named only in a ``matplotlibrc`` file is replaced: the lab's figures need no window.
"""

import itertools
import os
import sys

from mltricks._utils.extras import MissingExtraError, missing_modules

if missing_modules("lab"):  # one line naming the extra, before any lab library is imported
    error = MissingExtraError("lab", "mltricks.lab")
    # `python -m mltricks.lab` imports this package before its __main__: answer as the command
    # does (one line, exit 2) rather than with the traceback of a failed import
    argv = sys.orig_argv
    if "-mmltricks.lab" in argv or ("-m", "mltricks.lab") in itertools.pairwise(argv):
        print(f"mltricks: {error}", file=sys.stderr)
        raise SystemExit(2)
    raise error

if not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
    import matplotlib

    matplotlib.use("Agg")

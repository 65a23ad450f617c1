"""The lab picks matplotlib's Agg backend once, on import, unless a backend was already chosen
(a notebook's inline backend arrives through MPLBACKEND or an earlier pyplot import)."""

import os
import subprocess
import sys

import pytest

SHOW = "import matplotlib; print(matplotlib.get_backend().lower())"


def _backend(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | env
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return result.stdout.strip()


def test_importing_the_lab_chooses_agg(tmp_path):
    # a matplotlibrc whose default backend is svg: matplotlib alone keeps it, the lab does not
    (tmp_path / "matplotlibrc").write_text("backend: svg\n")
    assert _backend(SHOW, MATPLOTLIBRC=str(tmp_path)) == "svg"
    assert _backend(f"import mltricks.lab; {SHOW}", MATPLOTLIBRC=str(tmp_path)) == "agg"


@pytest.mark.parametrize(
    ("code", "env"),
    [
        (f"import mltricks.lab; {SHOW}", {"MPLBACKEND": "svg"}),  # a Jupyter kernel sets it
        (
            "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot; "
            f"import mltricks.lab; {SHOW}",
            {},
        ),
    ],
    ids=["MPLBACKEND", "pyplot-first"],
)
def test_a_backend_chosen_before_the_lab_is_kept(code, env):
    assert _backend(code, **env) == "svg"

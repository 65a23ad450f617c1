"""Shared test settings: quiet progress bars, CPU, a non-interactive plotting backend."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_lab():
    from mltricks.lab import engine

    engine.set_progress(False)
    yield


def pytest_configure(config):
    torch.set_num_threads(1)

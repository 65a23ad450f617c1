"""Two CPU processes (gloo) train to the same weights as one process on the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], tmp: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_each_other_and_one_process(tmp_path: Path) -> None:
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir()
    multi.mkdir()
    _run([sys.executable, str(WORKER), str(single)], tmp_path)
    _run(
        [
            # accelerate's --cpu launcher starts one process (multi-CPU needs MPI); --multi_gpu
            # starts torchrun, and the worker's engine.set_device("cpu") then picks gloo.
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(_free_port()),
            str(WORKER),
            str(multi),
        ],
        tmp_path,
    )
    one = torch.load(single / "rank0.pt", weights_only=True)
    rank0 = torch.load(multi / "rank0.pt", weights_only=True)
    rank1 = torch.load(multi / "rank1.pt", weights_only=True)
    assert one["num_processes"] == 1
    assert rank0["num_processes"] == rank1["num_processes"] == 2
    for name, value in one["weights"].items():
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name
        torch.testing.assert_close(rank0["weights"][name], value, rtol=1e-4, atol=1e-5)
    # training moved the weights, so the comparison is not between two untouched copies
    torch.manual_seed(0)
    assert not torch.equal(one["weights"]["0.weight"], torch.nn.Linear(5, 8).weight.detach())

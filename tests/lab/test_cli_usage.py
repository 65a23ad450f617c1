"""The command's answers to mistakes and to its own surroundings: one line, the right exit
status, no run folder and no traceback."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mltricks.lab import cli
from mltricks.lab.run_folder import run_state

MLTRICKS = [sys.executable, "-m", "mltricks.lab"]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_an_unknown_name_beside_all_is_refused_not_ignored(tmp_path, capsys):
    assert cli.main(["run", "all", "nope", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown experiment 'nope'" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["run", "positional-encoding", "--out", ""], ["report", ""]])
def test_an_empty_folder_is_refused_rather_than_read_as_the_current_folder(
    argv, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "expected a folder path" in line and "''" in line
    assert list(tmp_path.iterdir()) == []


def test_argparse_errors_are_one_line_with_the_way_to_help(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "positional-encoding", "--preset", "huge"])
    assert stopped.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("mltricks run: error: argument --preset: invalid choice: 'huge'")
    assert line.endswith("(see mltricks run --help)")


def test_a_reader_that_leaves_early_ends_the_listing_without_a_traceback():
    # the pipe's reader is gone before the command writes: every write is a broken pipe
    reader, writer = os.pipe()
    os.close(reader)
    result = subprocess.run(
        [*MLTRICKS, "list"], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120
    )
    os.close(writer)
    assert result.returncode == 1
    assert result.stderr == ""


def test_python_m_lab_without_the_lab_extra_says_which_extra_in_one_line(tmp_path):
    # a fresh interpreter in which matplotlib cannot be found, as in a core-only install
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [*MLTRICKS, "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    assert _one_line(result.stderr) == (
        "mltricks: mltricks.lab needs matplotlib (not installed): pip install 'mltricks[lab]'"
    )


_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.slow
@pytest.mark.parametrize("where", [[], ["--jobs", "2"]], ids=["one-process", "jobs-2"])
def test_ctrl_c_is_one_line_exit_130_and_the_runs_say_interrupted(where, tmp_path):
    command = [*MLTRICKS, "run", "mc-dropout", "--preset", "quick", "--out", str(tmp_path), *where]
    # as from a terminal: a test suite started in the background (`make test &`) ignores SIGINT,
    # its children inherit that, and Python then installs no KeyboardInterrupt handler
    command = [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("*/*/status.json")) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # seeds are training now
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert _one_line(err) == "mltricks: interrupted"
    (status,) = tmp_path.glob("mc-dropout/*/status.json")
    assert json.loads(status.read_text())["state"] == "interrupted"
    assert run_state(status.parent) == "interrupted"


def _maps_torch(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return "libtorch" in maps.read()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")
def test_ctrl_c_while_the_lab_imports_is_the_same_one_line_and_exit_130(tmp_path):
    command = [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *MLTRICKS, "run", "mc-dropout"]
    process = subprocess.Popen(
        [*command, "--preset", "quick", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not _maps_torch(process.pid) and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)  # torch is loading: the lab has not started yet
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert out == ""  # no run began
    assert process.returncode == 130
    assert _one_line(err) == "mltricks: interrupted"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("environ", "launcher", "asked"),
    [
        (
            {"ACCELERATE_USE_CPU": "True"},
            ["python", "accelerate", "launch", "--cpu", "--num_processes", "4"],
            4,
        ),
        ({"ACCELERATE_USE_CPU": "True"}, ["/bin/accelerate", "launch", "--num-processes=3"], 3),
        ({"ACCELERATE_USE_CPU": "True"}, ["/bin/accelerate", "launch", "--cpu"], 1),
        (
            {"ACCELERATE_USE_CPU": "True", "WORLD_SIZE": "2"},
            ["torchrun", "--num_processes", "2"],
            1,
        ),
        ({}, ["python", "accelerate", "launch", "--num_processes", "2"], 1),
        ({"ACCELERATE_USE_CPU": "True"}, ["bash", "run.sh", "--num_processes", "2"], 1),
    ],
)
def test_the_single_process_cpu_launch_is_recognised(environ, launcher, asked):
    assert cli.accelerate_cpu_processes(environ, launcher) == asked


@pytest.mark.slow
def test_accelerate_cpu_launch_of_two_processes_names_the_forms_that_work(tmp_path):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run(
        [*launch, "-m", "mltricks.lab", "run", "positional-encoding", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("mltricks: error:")]
    assert "--multi_gpu --num_processes 2" in line and "--jobs 2" in line
    assert list(tmp_path.iterdir()) == []

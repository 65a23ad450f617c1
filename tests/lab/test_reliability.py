"""Runs survive being killed, and concurrent runs into one --out do not touch each other."""

import errno
import html
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltricks.lab import cli, registry, run_folder
from mltricks.lab.cli import main
from mltricks.lab.experiment import Claim, NotApplicable
from mltricks.lab.report import markdown_table, render, write_report
from mltricks.lab.run_folder import run_state

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.lab.fake_experiments"


def _start(out: Path, *extra: str) -> subprocess.Popen:
    code = (
        "import sys; from mltricks.lab import registry, cli; "
        "registry.EXPERIMENTS['fake'] = 'tests.lab.fake_experiments'; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    command = [
        sys.executable,
        "-c",
        code,
        "run",
        "fake",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(predicate, timeout=300.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_sigkill_leaves_whole_files_and_the_report_shows_interrupted(tmp_path):
    process = _start(tmp_path, "--preset", "quick", "--set", "sleep=30")
    log = lambda: list(tmp_path.glob("fake/*/log.txt"))  # noqa: E731
    assert _wait_for(lambda: bool(log()) and "seed 0" in log()[0].read_text())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run,) = (tmp_path / "fake").iterdir()
    for path in run.glob("*.json"):
        json.loads(path.read_text())  # every file that exists is whole
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert run_state(run) == "interrupted"
    assert "interrupted" in render(tmp_path)


@pytest.mark.slow
def test_two_processes_writing_to_one_out_folder(tmp_path):
    first = _start(tmp_path, "--preset", "quick", "--set", "rate=0.6", "--set", "sleep=0.5")
    second = _start(tmp_path, "--preset", "quick", "--set", "rate=0.9", "--set", "sleep=0.5")
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert second.wait(timeout=600) == 0, second.stderr.read()
    runs = sorted((tmp_path / "fake").iterdir())
    assert len(runs) == 2
    rates = sorted(json.loads((r / "config.json").read_text())["config"]["rate"] for r in runs)
    assert rates == [0.6, 0.9]
    for run in runs:
        rate = json.loads((run / "config.json").read_text())["config"]["rate"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["per_seed"]["0"]["score"] == pytest.approx(rate)
        assert json.loads((run / "status.json").read_text())["state"] == "done"


# --- bad input and faults: one line, exit 2, nothing overwritten or left running -------------


@pytest.fixture
def fake(monkeypatch):
    experiments = {"a": FAKE, "b": FAKE}
    monkeypatch.setattr(registry, "EXPERIMENTS", experiments)
    return experiments


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mltricks: error:"), err
    for word in words:
        assert word in err, err
    return err


def test_report_never_overwrites_an_index_html_it_did_not_write(tmp_path, fake, capsys):
    page = tmp_path / "index.html"
    page.write_text("my own notes")
    assert main(["report", str(tmp_path)]) == 2  # no runs
    _one_line_error(capsys, "no runs")
    assert main(["report", str(tmp_path), "--markdown"]) == 2
    _one_line_error(capsys, "no runs")
    assert main(["run", "a", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 2  # runs, but a page that is not ours
    _one_line_error(capsys, "index.html", "not written by mltricks report")
    assert page.read_text() == "my own notes"
    page.unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0  # its own page is replaced
    assert "mltricks report" in page.read_text()


MALFORMED = [
    ("metrics.json", [1, 2], "metrics.json: expected dict, got list"),
    ("metrics.json", {"summary": [1]}, "metrics.json summary: expected dict"),
    ("metrics.json", {"summary": {"score": {"mean": "high"}}}, "summary.score.mean"),
    ("metrics.json", {"per_seed": 3}, "metrics.json per_seed"),
    ("claims.json", {"held": True}, "claims.json: expected list, got dict"),
    ("claims.json", [1], "claims.json [0]: expected dict, got int"),
    ("claims.json", [{"text": "t", "held": "yes"}], "claims.json [0].held"),
    ("claims.json", [{"text": ["t"]}], "claims.json [0].text"),
    ("claims.json", [{"text": "t", "numbers": {"x": 1}}], "claims.json [0].numbers.x"),
    ("status.json", ["done"], "status.json: expected dict, got list"),
    ("status.json", {"state": "done", "duration_s": "long"}, "status.json duration_s"),
    ("figures.json", {"file": "line.png"}, "figures.json: expected list"),
    ("figures.json", [{"file": ["line.png"]}], "figures.json [0].file"),
    ("figures.json", [{"file": "../escape.png"}], "is not a file of the run folder"),
    ("figures.json", [{"file": "/etc/hostname"}], "is not a file of the run folder"),
    ("config.json", [], "config.json: expected dict, got list"),
    ("config.json", {"experiment": "b", "config": "x"}, "config.json config: expected dict"),
    ("config.json", "not json {", "config.json: not readable JSON"),
    # shapes that raised inside the report (issue 23, item 4)
    ("claims.json", [{"text": "t", "verdict": ["held"]}], "[0].verdict: expected str or null"),
    ("figures.json", [{"file": "line\x00.png"}], "is not a file of the run folder"),
    ("figures.json", [{"file": "x" * 300 + ".png"}], "File name too long"),
    ("metrics.json", "[" * 100_000 + "]" * 100_000, "metrics.json: not readable JSON"),
    ("config.json", '{"config": {"a": ' + "[" * 500 + "]" * 500 + "}}", "deeper than 64 levels"),
    ("metrics.json", '{"summary": {"s": {"mean": 1' + "0" * 400 + "}}}", "summary.s.mean"),
    ("status.json", '{"state": "done", "duration_s": 1' + "0" * 400 + "}", "duration_s"),
    ("status.json", {"state": "done", "error": {"a": 1}}, "status.json error: expected str"),
]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "EXPERIMENTS", {"a": FAKE, "b": FAKE})
        assert main(["run", "a", "b", "--preset", "quick", "--out", str(root)]) == 0
    return root


@pytest.mark.parametrize(("name", "content", "reason"), MALFORMED)
def test_one_malformed_run_folder_never_stops_the_report(
    two_runs, tmp_path, fake, name, content, reason
):
    root = tmp_path / "runs"
    shutil.copytree(two_runs, root)
    (run_b,) = (root / "b").iterdir()
    (root / "b" / "escape.png").write_bytes((run_b / "line.png").read_bytes())
    text = content if isinstance(content, str) else json.dumps(content)
    (run_b / name).write_text(text)
    page = render(root)
    assert reason in html.unescape(page)
    assert "Unreadable run folder" in page and 'class="state-unreadable"' in page
    assert 'src="a/' in page  # run a still renders, with its figure
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and not [src for src in sources if "escape" in src or "hostname" in src]
    table = markdown_table(root)
    # (the table backslash-escapes Markdown syntax such as the brackets of "[0]")
    assert "| `b` |  | unreadable | " in table and reason in table.replace("\\", "")
    assert main(["report", str(root)]) == 0


def _mark_not_applicable(monkeypatch):
    import tests.lab.fake_experiments as fake_module

    def no_confounders(summary):
        raise NotApplicable("the <real> data set has no planted confounders")

    claims = (
        *fake_module.CLAIMS,
        Claim("confounders are ignored", no_confounders, ("gap",), presets=("quick",)),
        Claim("a typo", lambda s: s["scroe"].mean > 0, ("score",), presets=("quick",)),
    )
    monkeypatch.setattr(fake_module, "CLAIMS", claims)


def test_a_claim_that_cannot_apply_reads_not_applicable_in_the_report(
    tmp_path, fake, monkeypatch, capsys
):
    _mark_not_applicable(monkeypatch)
    assert main(["run", "a", "--preset", "quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "claim not applicable: confounders are ignored (not applicable: the <real>" in out
    assert "claim defect: a typo (experiment defect: the claim reads metric(s) 'scroe'" in out
    (run,) = (tmp_path / "a").iterdir()
    assert "experiment defect: the claim reads metric(s) 'scroe'" in (run / "log.txt").read_text()
    page = render(tmp_path)
    assert "not applicable: the &lt;real&gt; data set has no planted confounders" in page
    assert '<td class="defect">defect</td>' in page
    table = markdown_table(tmp_path)
    assert "| not applicable | not applicable: the &lt;real> data set" in table
    for text in (page, table):
        assert "NotApplicable" not in text and "KeyError" not in text


def test_markdown_escapes_html_from_run_folders(tmp_path, fake):
    assert main(["run", "a", "--preset", "quick", "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "a").iterdir()
    claims = json.loads((run / "claims.json").read_text())
    claims[0]["text"] = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'
    claims[0]["reason"] = "<b>bold</b>"
    (run / "claims.json").write_text(json.dumps(claims))
    status = json.loads((run / "status.json").read_text())
    (run / "config.json").write_text(
        json.dumps({**json.loads((run / "config.json").read_text()), "preset": "<i>x</i>"})
    )
    (run / "status.json").write_text(json.dumps(status))
    table = markdown_table(tmp_path)
    assert "<img" not in table and "<script" not in table and "<b>" not in table
    assert "<i>" not in table
    assert '&lt;img src=x onerror="alert(1)"> &amp; &lt;script>alert(2)&lt;/script>' in table


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only"])
def test_an_out_folder_that_cannot_be_written_is_one_line_and_exit_2(
    tmp_path, fake, capsys, monkeypatch, kind
):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    out = {"file": a_file, "under a file": a_file / "runs", "read-only": tmp_path / "ro"}[kind]
    if kind == "read-only":  # tests run as root, where chmod does not stop writes

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(cli.tempfile, "TemporaryFile", read_only)
    assert main(["run", "all", "--preset", "smoke", "--out", str(out)]) == 2
    _one_line_error(capsys, "--out", str(out))
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("status_fits", [True, False])
def test_a_full_disk_stops_the_runs_with_one_line_and_no_running_status(
    tmp_path, fake, capsys, monkeypatch, status_fits
):
    original = run_folder.atomic_write_bytes
    full = []

    def disk(path, data):
        # metrics.json fills the disk; after that only whole blocks already held can be rewritten
        if path.name == "metrics.json" or (full and not (status_fits and "status" in path.name)):
            full.append(path.name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, data)

    monkeypatch.setattr(run_folder, "atomic_write_bytes", disk)
    assert main(["run", "all", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "No space left on device", "not started: b")
    assert not (tmp_path / "b").exists()
    (run,) = (tmp_path / "a").iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "No space left" in status["error"]
    assert run_state(run) == "failed"
    assert "No space left on device" in (run / "log.txt").read_text()


def test_an_unavailable_device_is_one_line_and_exit_2(tmp_path, fake, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "a", "--device", "cuda", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--device cuda", "no CUDA device")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("experiment", "assignment", "words"),
    [
        ("lr-range-test", "val_fraction=2", ("val_fraction=2.0", "(0, 1)")),
        ("lr-range-test", "num_batches=-5", ("num_batches=-5", ">= 0")),
        ("a", "rate=nan", ("rate=nan", "finite")),
        ("a", "rate=inf", ("rate=inf", "finite")),
    ],
)
def test_set_refuses_non_finite_and_out_of_range_values_before_a_run_folder(
    tmp_path, monkeypatch, capsys, experiment, assignment, words
):
    monkeypatch.setitem(registry.EXPERIMENTS, "a", FAKE)
    argv = ["run", experiment, "--set", assignment, "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    _one_line_error(capsys, *words)
    assert not (tmp_path / "runs").exists()


def test_too_many_seeds_is_one_line_and_exit_2(tmp_path, fake, capsys):
    assert main(["run", "a", "--seeds", "0-100000", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--seeds", "at most 1,000 seeds")
    assert not list(tmp_path.iterdir())


def test_run_files_are_readable_by_others(tmp_path, fake):
    assert run_folder._read_umask() == _umask()
    previous = os.umask(0o022)
    try:
        # the mode is fixed when the module loads; here as under the usual umask
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(run_folder, "FILE_MODE", 0o644)
            assert main(["run", "a", "--preset", "quick", "--out", str(tmp_path)]) == 0
            assert main(["report", str(tmp_path)]) == 0
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    folders = [tmp_path / "a", *(p for p in tmp_path.rglob("*") if p.is_dir())]
    assert {p.name for p in files} >= {"config.json", "status.json", "line.png", "index.html"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {"0o755"}


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["metrics.json", "status.json", "config.json", "index.html"])
def test_a_fifo_in_a_run_folder_is_never_opened(two_runs, tmp_path, fake, name):
    root = tmp_path / "runs"
    shutil.copytree(two_runs, root)
    (run_b,) = (root / "b").iterdir()
    target = root / "index.html" if name == "index.html" else run_b / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)  # opening it to read would wait for a writer for ever
    table = markdown_table(root)
    if name == "index.html":  # not a page the report wrote: left as it is
        assert main(["report", str(root)]) == 2
        assert stat.S_ISFIFO(target.stat().st_mode)
        return
    assert main(["report", str(root)]) == 0
    page = (root / "index.html").read_text()
    assert f"{name}: not a regular file" in page and 'src="a/' in page
    assert "| `b` |  | unreadable | " in table and f"{name}: not a regular file" in table


MARKDOWN_ATTACKS = [
    "[x](javascript:alert(1))",
    "![p](https://example.org/p.png)",
    "<https://example.org> and https://example.org/x",
    "*bold* _em_ `code` ~~gone~~ $x^2$ a|b",
    "[ref]\n\n[ref]: https://example.org",
]


def test_markdown_shows_link_and_image_syntax_as_text(tmp_path, fake):
    from markdown_it import MarkdownIt

    assert main(["run", "a", "--preset", "quick", "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "a").iterdir()
    claims = json.loads((run / "claims.json").read_text())
    claims = [{**claims[0], "text": text, "reason": text} for text in MARKDOWN_ATTACKS]
    (run / "claims.json").write_text(json.dumps(claims))
    table = markdown_table(tmp_path)
    # rendered as GitHub renders a table, every cell shows its text and nothing else
    renderer = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    renderer.validateLink = lambda url: True  # as a permissive renderer would
    page = renderer.render(table)
    assert not re.search(r"<(a|img|em|strong|s)\b", page), page
    assert set(re.findall(r"<code>(.*?)</code>", page)) == set(fake)  # experiment names only
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    shown = {html.unescape(row[2]): html.unescape(row[4]) for row in rows if row and row[2]}
    for text in MARKDOWN_ATTACKS:  # the claim's text, and its reason beside the numbers
        assert shown[text.replace("\n", " ")].endswith(text.replace("\n", " "))


# --- any bytes in the run files: a report, never another exception, never a hang ------------

RUN_FILES = ("status.json", "metrics.json", "claims.json", "figures.json", "config.json")
# values that broke a reader once: past float's range, a NUL byte, a name the system refuses
AWKWARD = st.sampled_from([10**400, -(10**400), "line\x00.png", "x" * 300, "../up.png", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | AWKWARD,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _replace_at(value, path: list[int], new):
    """``value`` with the part that ``path`` picks (an index into each level's keys or items,
    modulo their number) replaced by ``new``: a real run file with one wrong part."""
    if not path or not isinstance(value, dict | list) or not value:
        return new
    if isinstance(value, dict):
        key = list(value)[path[0] % len(value)]
        return {**value, key: _replace_at(value[key], path[1:], new)}
    index = path[0] % len(value)
    return [*value[:index], _replace_at(value[index], path[1:], new), *value[index + 1 :]]


@st.composite
def _run_file(draw, real: bytes):
    """What a run file may hold: its real bytes, cut short, with one part replaced, any JSON, or
    any bytes at all, arrays nested up to 100,000 deep (None: the file is missing)."""
    kind = draw(st.sampled_from(["real", "cut", "part", "json", "bytes", "deep", "missing"]))
    if kind == "deep":
        depth = draw(st.sampled_from([100_000, 1000, 900, 70, 60]))
        return b"[" * depth + b"]" * depth
    if kind == "cut":
        return real[: draw(st.integers(0, len(real)))]
    if kind == "part":
        path = draw(st.lists(st.integers(0, 50), max_size=5))
        value = _replace_at(json.loads(real), path, draw(JSON_VALUES))
        return json.dumps(value, allow_nan=True).encode()
    if kind == "json":
        return json.dumps(draw(JSON_VALUES), allow_nan=True).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    return None if kind == "missing" else real


@pytest.mark.slow  # 2.5 to 8 s on two shared cores
@pytest.mark.timeout(120)
@given(data=st.data())
@settings(
    max_examples=60,  # a few seconds; 1,000 also pass, in a minute
    deadline=5000,
    database=None,  # no example database written to the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_bytes_in_the_run_files_give_a_report(two_runs, fake, data):
    root = Path(tempfile.mkdtemp(prefix="mltricks-report-property-"))
    try:
        shutil.copytree(two_runs, root, dirs_exist_ok=True)
        (run_b,) = (root / "b").iterdir()
        for name in RUN_FILES:
            content = data.draw(_run_file((run_b / name).read_bytes()), label=name)
            (run_b / name).unlink()
            if content is not None:
                (run_b / name).write_bytes(content)
        assert run_state(run_b) in ("running", "done", "failed", "interrupted", "unknown")
        page = write_report(root).read_text()
        table = markdown_table(root)
        assert 'src="a/' in page and "| `a` (quick) |" in table  # the intact run still shows
        if 'class="state-unreadable"' in page:  # and a bad one says why, in both
            assert "Unreadable run folder" in page and "| unreadable |" in table
    finally:
        shutil.rmtree(root, ignore_errors=True)

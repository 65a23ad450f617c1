"""The command resolves each experiment's config once, ``--data`` included: ``config.json``
holds what ran, ``--set`` wins over data defaults, and a bad setting is a usage error (one line,
exit 2, no run folder) rather than a failed run (issue 24 item 1; issue 23 items 5-7)."""

import json

import pytest

from mltricks.lab import registry
from mltricks.lab.cli import main


@pytest.fixture
def fake(monkeypatch):
    experiments = {"fake-data": "tests.lab.fake_data_experiment", **registry.EXPERIMENTS}
    monkeypatch.setattr(registry, "EXPERIMENTS", experiments)


@pytest.fixture
def mnist(tmp_path):
    """A folder recognised as MNIST format (resolution looks at the names only)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"")
    return folder


def _only_run(root, name):
    (run,) = (root / name).iterdir()
    return run


def test_config_json_holds_the_config_that_ran_with_data(tmp_path, fake, mnist):
    out = tmp_path / "runs"
    argv = ["run", "fake-data", "--preset", "full", "--data", str(mnist), "--out", str(out)]
    assert main([*argv, "--set", "recalibrate=false"]) == 0
    run = _only_run(out, "fake-data")
    config = json.loads((run / "config.json").read_text())["config"]
    # the preset's data value (10, not the digits' 60), DATA_CONFIG's cap, and --set's false
    # over the data default true
    assert (config["epochs"], config["max_train"], config["recalibrate"]) == (10, 3000, False)
    metrics = json.loads((run / "metrics.json").read_text())
    for seed, values in metrics["per_seed"].items():
        assert values["epochs"] == config["epochs"] and values["max_train"] == config["max_train"]
        assert values["recalibrate"] is False and values["subsets"] == int(seed)
    # summarize got the same config as run
    assert metrics["summary"]["summarized_epochs"]["mean"] == 10
    assert metrics["summary"]["summarized_recalibrate"]["mean"] == 0


def test_without_data_the_digits_config_runs(tmp_path, fake):
    assert main(["run", "fake-data", "--preset", "full", "--out", str(tmp_path)]) == 0
    config = json.loads((_only_run(tmp_path, "fake-data") / "config.json").read_text())["config"]
    assert (config["epochs"], config["recalibrate"]) == (60, False)


def _refused(capsys, out, *words):
    """One line naming ``words``, and no run folder."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("mltricks: error: ") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists() or not any(out.iterdir()), "a run folder was made"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        # a data-only setting without --data, or on an experiment that reads no data
        (["fgsm", "--set", "max_train=100"], ["--set max_train", "applies to --data only"]),
        (["lr-range-test", "--set", "max_test=5"], ["--set max_test", "reads no data set"]),
        (["bert-mlm", "--text-column", "body"], ["--text-column: applies to --data only"]),
        # values the run used to fail on after making its folder (exit 1, state failed)
        (["lr-range-test", "--set", "optimizer=bogus"], ["optimizer=bogus", "'adam'"]),
        (["fgsm", "--set", "batch_size=0"], ["batch_size=0", ">= 1"]),
        (["mimo", "--set", "width=0"], ["width=0", ">= 1"]),
        (["vae", "--set", "epochs=0"], ["epochs=0", ">= 1"]),
        (["mil", "--set", "steps=0"], ["steps=0", ">= 1"]),
        (["bert-mlm", "--model", "/no/such/model"], ["--model /no/such/model", "no such folder"]),
        (["cluster-then-label", "--set", "fractions=0"], ["fractions=0.0", "(0, 1]"]),
        (["cluster-then-label", "--set", "holdout_fraction=1"], ["holdout_fraction=1.0"]),
        (["cluster-then-label", "--set", "fractions=0.01,0.01"], ["fractions=0.01,0.01", "1pct"]),
        (["consistency-regularization", "--set", "lambdas=1,3"], ["lambdas=1,3", "include 0"]),
        (
            ["reptile", "--set", "split=digit", "--set", "num_test_classes=10"],
            ["num_test_classes=10", "multiple of 4"],
        ),
        (["mimo", "--set", "backbone=vgg"], ["backbone=vgg", "'cnn' | 'resnet18'"]),
    ],
)
def test_bad_settings_are_usage_errors_before_any_run_folder(tmp_path, capsys, argv, words):
    out = tmp_path / "runs"
    assert main(["run", *argv, "--preset", "smoke", "--out", str(out)]) == 2
    _refused(capsys, out, *words)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("fgsm", "an MNIST-format IDX folder"),
        ("reptile", "MNIST-format IDX folder (train-images-idx3-ubyte[.gz]"),
        ("bert-mlm", "a CSV file"),
        ("faster-rcnn", "a Pascal VOC folder"),
        ("triplet-embeddings", "an image folder"),
    ],
)
def test_an_empty_data_folder_is_refused_naming_it_and_the_formats(
    tmp_path, capsys, name, accepted
):
    data = tmp_path / "empty"
    data.mkdir()
    out = tmp_path / "runs"
    assert main(["run", name, "--data", str(data), "--out", str(out)]) == 2
    _refused(capsys, out, f"--data '{data}'", "holds no data set", accepted)


def test_reptile_given_cifar10_says_it_reads_mnist_format_only(tmp_path, capsys):
    # issue 23 item 7: it said "MNIST file not found"
    data = tmp_path / "cifar-10-batches-py"
    data.mkdir()
    (data / "data_batch_1").write_bytes(b"")
    out = tmp_path / "runs"
    assert main(["run", "reptile", "--data", str(data), "--out", str(out)]) == 2
    _refused(capsys, out, "holds the CIFAR-10 python batches", "reptile reads an MNIST-format")

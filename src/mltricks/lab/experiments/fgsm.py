"""Fast gradient sign method: how fast accuracy falls with eps, and where it stops.

For each seed: a small CNN trained on the bundled digits (8x8, values in [0, 1]; with ``--data``
an MNIST-format IDX folder such as Fashion-MNIST, or the CIFAR-10 batches), then untargeted
FGSM on every test image for a grid of step sizes eps from 0 to 0.5. Measured per eps: accuracy,
the mean probability and logit of the true class, and how many images that some eps fooled are
classified correctly again at a larger eps (the seed's remark that a strong perturbation leaves
the data distribution and can raise the class score again, because the gradient is only a local
approximation).

What the original project did and what was wrong in it: docs/systems/adversarial-attacks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from mltricks.attacks import fgsm
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import IMAGE_DATA, SMOKE_SUBSET, SOURCES, read_images
from mltricks.lab.experiment import Claim, Preset, RunContext, Summary
from mltricks.lab.plots import show_image
from mltricks.lab.training import SmallCNNTraining, names_learning_rates, train_small_cnn

SYSTEM = "Adversarial Attacks"
DESCRIPTION = "FGSM on a digits CNN: accuracy and true-class score against eps from 0 to 0.5"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(DataSubset, SmallCNNTraining):  # SmallCNNTraining: the CNN both attacks attack
    eps: tuple[float, ...] = (0.0, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    claim_eps: float = 0.1
    num_examples: int = 6


# with --data: full on Fashion-MNIST (10 seeds x 15 epochs on 3,000 images, FGSM on 1,000) takes
# about 6 CPU-minutes (one seed measured 37 CPU-seconds)
DATA_CONFIG = {"max_train": 3000, "max_test": 1000}
PRESETS = {
    "smoke": Preset(
        seeds=(0,), config={"epochs": 2, "eps": (0.0, 0.1, 0.3)}, data_config=SMOKE_SUBSET
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    "full": Preset(seeds=tuple(range(10))),
}

CLAIMS = (
    Claim(
        "FGSM at eps = 0.1 lowers the clean test accuracy by at least half",
        lambda s: s["accuracy_ratio_at_claim_eps"].mean <= 0.5,
        ("accuracy_ratio_at_claim_eps", "clean_accuracy", "accuracy_at_claim_eps"),
        min_seeds=5,
    ),
)


def _predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def validate(cfg: Config) -> None:
    if cfg.claim_eps not in cfg.eps or 0.0 not in cfg.eps:
        shown = ",".join(f"{e:g}" for e in cfg.eps)
        raise ValueError(f"--set eps={shown}: must contain 0 and claim_eps={cfg.claim_eps:g}")


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = read_images(cfg, ctx)
    model, training = train_small_cnn(x_train, y_train, cfg, random_state=ctx.seed, desc="cnn")
    model.to(ctx.device)
    x, y = x_test.to(ctx.device), y_test.to(ctx.device)

    correct, true_prob, true_logit, adversarials = [], [], [], []
    for eps in cfg.eps:
        adversarial = fgsm(model, x, y, eps=eps)
        logits = _predict(model, adversarial)
        correct.append((logits.argmax(1) == y).cpu())
        true_prob.append(logits.softmax(1).gather(1, y[:, None])[:, 0].cpu())
        true_logit.append(logits.gather(1, y[:, None])[:, 0].cpu())
        adversarials.append(adversarial.cpu())
    correct_grid = torch.stack(correct)  # (num_eps, N)
    accuracy = correct_grid.float().mean(1).tolist()
    prob = torch.stack(true_prob).mean(1).tolist()
    logit = torch.stack(true_logit).mean(1).tolist()

    # fooled at some eps, classified correctly again at a larger one
    fooled_before = (~correct_grid).int().cummax(0).values.bool()
    recovered = (fooled_before[:-1] & correct_grid[1:]).any(0) & correct_grid[0]
    clean = accuracy[0]
    at_claim = accuracy[cfg.eps.index(cfg.claim_eps)]
    lowest = int(np.argmin(accuracy))
    if ctx.first_seed:
        _example_figure(cfg, ctx, model, x, y, adversarials)
    return {
        "clean_accuracy": clean,
        "val_accuracy": training["val_accuracy"],
        "accuracy_at_claim_eps": at_claim,
        "accuracy_ratio_at_claim_eps": at_claim / clean,
        "lowest_accuracy": accuracy[lowest],
        "eps_of_lowest_accuracy": cfg.eps[lowest],
        "accuracy_at_largest_eps": accuracy[-1],
        "eps_of_lowest_true_prob": cfg.eps[int(np.argmin(prob))],
        "true_prob_rise_after_minimum": prob[-1] - min(prob),
        "share_recovered_at_larger_eps": float(recovered.float().mean()),
        "accuracy_by_eps": accuracy,
        "true_prob_by_eps": prob,
        "true_logit_by_eps": logit,
    }


def _example_figure(
    cfg: Config,
    ctx: RunContext,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    adversarials: list[torch.Tensor],
) -> None:
    shown = [i for i, e in enumerate(cfg.eps) if e in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)]
    shown = shown or list(range(len(cfg.eps)))
    count = min(cfg.num_examples, len(x))
    fig, axes = plt.subplots(
        count, len(shown), figsize=(1.6 * len(shown), 1.7 * count), squeeze=False
    )
    for row in range(count):
        for col, k in enumerate(shown):
            image = adversarials[k][row : row + 1].to(ctx.device)
            probs = _predict(model, image).softmax(1)[0].cpu()
            ax = axes[row, col]
            show_image(ax, image[0])
            guess = int(probs.argmax())
            color = "tab:green" if guess == int(y[row]) else "tab:red"
            ax.set_title(
                f"eps {cfg.eps[k]:g}: {guess} ({probs[guess]:.2f})", fontsize=7, color=color
            )
    ctx.savefig(
        fig,
        "examples",
        f"seed {ctx.seed}: test images under FGSM with growing eps; title = predicted class "
        "(its probability), red when wrong",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    eps = np.array(cfg.eps)
    panels = (
        ("accuracy_by_eps", "test accuracy"),
        ("true_prob_by_eps", "mean true-class probability"),
        ("true_logit_by_eps", "mean true-class logit"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (key, label) in zip(axes, panels):
        values = np.array([r[key] for r in results])
        for row in values:
            ax.plot(eps, row, color="0.8", lw=0.8)
        ax.plot(eps, values.mean(0), "o-", color="tab:blue", label="mean over seeds")
        ax.axvline(cfg.claim_eps, color="tab:red", ls=":", lw=1)
        ax.set(xlabel="eps (L-infinity step)", ylabel=label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"untargeted FGSM on the {'digits' if ctx.data is None else 'data'} test set")
    ctx.savefig(
        fig,
        "accuracy-and-score-vs-eps",
        "accuracy, true-class probability and true-class logit against eps (grey: seeds; dotted: "
        f"eps = {cfg.claim_eps:g}); a rise at large eps is the seed's 'score can rise again'",
    )
    return {}

"""mltricks.attacks and mltricks.explain side by side with torchattacks and captum.

One process, one small digits CNN, interleaved repeats; times are medians of the process's CPU
time (steadier than wall time on a shared machine; torch runs one thread here) and are compared
as ratios (ours / anchor, below 1 means mltricks is faster). Rows:

- ``fgsm`` vs ``torchattacks.FGSM``: outputs must be identical.
- ``carlini_wagner`` vs ``torchattacks.CW`` at equal c, steps and learning rate: success and
  mean L2 of the successful examples. torchattacks starts inputs that sit exactly on 0 or 1 at
  atanh(+-1) = +-inf, where the gradient is zero, so those pixels can never move; the digits
  have many such pixels.
- ``SmoothGrad(Saliency)`` vs ``captum NoiseTunnel(Saliency)`` with equal samples and absolute
  noise at batch 64: the noise differs, so agreement is the correlation of the maps, next to
  the correlation of two mltricks runs with different noise (the noise floor).
- ``GuidedBackprop`` vs ``captum GuidedBackprop``: maps must agree to float precision.

Run: ``python benchmarks/run.py attacks_explain``.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from mltricks.attacks import carlini_wagner, fgsm
from mltricks.data import load_digits_images
from mltricks.explain import GuidedBackprop, Saliency, SmoothGrad
from mltricks.lab import engine
from mltricks.models import SmallCNN

REPEATS = 40


def _model() -> torch.nn.Module:
    engine.set_progress(False)
    engine.seed_everything(0)
    images, labels = load_digits_images(split="train")
    model = SmallCNN(1, 10, width=16)
    engine.fit(
        model,
        engine.make_loader(images, labels, batch_size=64, shuffle=True, random_state=0),
        torch.optim.Adam(model.parameters(), lr=3e-3),
        epochs=10,
    )
    return model.eval().cpu()


def _timed(functions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median CPU seconds of each function, calls interleaved so load changes hit both alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():  # warm-up
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.process_time()
            function()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over samples of the Pearson correlation of two maps."""
    a, b = a.flatten(1), b.flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)).mean())


def _fgsm_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    import torchattacks

    rows = []
    for eps in (0.05, 0.1, 0.3):
        ours = fgsm(model, x, y, eps=eps)
        theirs = torchattacks.FGSM(model, eps=eps)(x, y)
        same = float((ours == theirs).float().mean())
        times = _timed(
            {
                "ours": lambda eps=eps: fgsm(model, x, y, eps=eps),
                "theirs": lambda eps=eps: torchattacks.FGSM(model, eps=eps)(x, y),
            },
            REPEATS,
        )
        rows.append(
            f"| fgsm, eps {eps} | identical values {same:.4%}, max diff "
            f"{float((ours - theirs).abs().max()):.1e} | {1e3 * times['ours']:.1f} | "
            f"{1e3 * times['theirs']:.1f} | {times['ours'] / times['theirs']:.2f} |"
        )
    return rows


def _cw_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    import torchattacks

    target = (y + torch.randint(1, 10, y.shape, generator=torch.Generator().manual_seed(0))) % 10
    rows = []
    for c, steps, lr in ((1.0, 100, 0.01), (1.0, 100, 0.1), (10.0, 100, 0.1)):
        attack = torchattacks.CW(model, c=c, kappa=0, steps=steps, lr=lr)
        attack.set_mode_targeted_by_label(quiet=True)

        def theirs(attack=attack) -> torch.Tensor:
            return attack(x, target)

        def ours(c=c, steps=steps, lr=lr) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return carlini_wagner(model, x, target, c=c, steps=steps, lr=lr, return_result=True)

        result = ours()
        adversarial = theirs()
        with torch.no_grad():
            reached = model(adversarial).argmax(1) == target
        their_l2 = (adversarial - x).flatten(1).norm(dim=1)
        # the L2s over each attack's own successes compare different samples (the anchor only
        # reaches the easy ones); on the samples both reach they compare like with like
        both = result.success & reached
        times = _timed({"ours": ours, "theirs": theirs}, 3)
        rows.append(
            f"| carlini_wagner, c {c:g}, {steps} steps, lr {lr:g} | success "
            f"{result.success_rate:.1%} vs {float(reached.float().mean()):.1%}; mean L2 "
            f"{float(result.l2[result.success].mean()):.3f} vs "
            f"{float(their_l2[reached].mean()):.3f}; on the {int(both.sum())} both reach "
            f"{float(result.l2[both].mean()):.3f} vs {float(their_l2[both].mean()):.3f} | "
            f"{1e3 * times['ours']:.0f} | {1e3 * times['theirs']:.0f} | "
            f"{times['ours'] / times['theirs']:.2f} |"
        )
    return rows


def _explain_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    from captum.attr import GuidedBackprop as CaptumGuidedBackprop
    from captum.attr import NoiseTunnel
    from captum.attr import Saliency as CaptumSaliency

    warnings.filterwarnings("ignore", module="captum")
    samples, noise = 50, 0.15
    smooth = SmoothGrad(
        Saliency(model), num_samples=samples, noise=noise, noise_scale="absolute", random_state=0
    )
    other_noise = SmoothGrad(
        Saliency(model), num_samples=samples, noise=noise, noise_scale="absolute", random_state=1
    )
    tunnel = NoiseTunnel(CaptumSaliency(model))

    def captum_smooth() -> torch.Tensor:
        return tunnel.attribute(
            x, nt_type="smoothgrad", nt_samples=samples, stdevs=noise, target=y, abs=True
        )

    ours = smooth.attribute(x, y)
    agreement = _correlation(ours, captum_smooth())
    floor = _correlation(ours, other_noise.attribute(x, y))
    times = _timed({"ours": lambda: smooth.attribute(x, y), "theirs": captum_smooth}, 10)
    rows = [
        f"| SmoothGrad(Saliency), batch {len(x)}, {samples} samples, noise sd {noise} | "
        f"map correlation {agreement:.4f} (two mltricks seeds: {floor:.4f}) | "
        f"{1e3 * times['ours']:.0f} | {1e3 * times['theirs']:.0f} | "
        f"{times['ours'] / times['theirs']:.2f} |"
    ]
    guided, captum_guided = GuidedBackprop(model), CaptumGuidedBackprop(model)
    mine, theirs = guided.attribute(x, y), captum_guided.attribute(x, target=y)
    close = torch.allclose(mine, theirs, atol=1e-6)
    times = _timed(
        {
            "ours": lambda: guided.attribute(x, y),
            "theirs": lambda: captum_guided.attribute(x, target=y),
        },
        REPEATS,
    )
    rows.append(
        f"| GuidedBackprop, batch {len(x)} | allclose {close}, max diff "
        f"{float((mine - theirs).abs().max()):.1e} | {1e3 * times['ours']:.2f} | "
        f"{1e3 * times['theirs']:.2f} | {times['ours'] / times['theirs']:.2f} |"
    )
    return rows


def main() -> str:
    torch.manual_seed(0)
    model = _model()
    x, y = load_digits_images(split="test")
    header = [
        "| task | agreement (mltricks vs anchor) | mltricks CPU ms | anchor CPU ms | time ratio |",
        "|---|---|---|---|---|",
    ]
    rows = _fgsm_rows(model, x[:256], y[:256])
    rows += _cw_rows(model, x[:100], y[:100])
    rows += _explain_rows(model, x[:64], y[:64])
    note = (
        "Anchors: torchattacks (FGSM, CW), captum (NoiseTunnel(Saliency), GuidedBackprop). "
        f"Model: SmallCNN(width=16) trained 10 epochs on the bundled digits (8x8). Medians of "
        f"{REPEATS} interleaved repeats (10 for SmoothGrad, 3 for Carlini-Wagner) of CPU time; "
        "time ratio = mltricks / anchor."
    )
    return "\n".join([*header, *rows, "", note])


if __name__ == "__main__":
    print(main())

"""Ensembles: mltricks's MCDropout vs torch-uncertainty's MC dropout, batched vs looped sampling,
and MIMO's inference overhead vs M next to a deep ensemble.

Every table times its variants side by side in one process, in turn within each repeat, and
reports medians and ratios (the machine may be shared: ratios are what compares).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltricks.ensembles import MIMO, MCDropout
from mltricks.ensembles.mc_dropout import CPU_BATCHED_BYTES
from mltricks.models import SmallCNN, small_resnet18

NUM_SAMPLES = 20
BATCH = 256


def _tu_mc_dropout() -> Callable[..., nn.Module]:
    """torch-uncertainty's ``mc_dropout`` factory.

    The package's ``__init__`` imports Lightning, which the MC dropout wrapper does not need and
    the bench extra does not install; when that import fails, the wrapper's own file (torch and
    einops only) is loaded directly.
    """
    try:
        from torch_uncertainty.methods import mc_dropout

        return mc_dropout
    except ImportError:
        spec = importlib.util.find_spec("torch_uncertainty")
        if spec is None or not spec.submodule_search_locations:
            raise
        path = Path(spec.submodule_search_locations[0]) / "methods" / "mc_dropout.py"
        file_spec = importlib.util.spec_from_file_location("_tu_mc_dropout", path)
        assert file_spec is not None and file_spec.loader is not None
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
        return module.mc_dropout


def _medians(variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant; every repeat runs all variants once, in turn."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up (and MCDropout's one-time check)
            fn()
        for _ in range(repeats):
            for name, fn in variants.items():
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    return {name: float(np.median(t)) for name, t in times.items()}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(1, 10, width=32, dropout=0.5).eval()


def bench_mc_dropout(repeats: int = 7) -> str:
    """Ours (default mode) vs torch-uncertainty, same model, T = 20, batch 256 (8x8 images)."""
    mc_dropout = _tu_mc_dropout()
    model = _model()
    x = torch.rand(BATCH, 1, 8, 8)
    ours = MCDropout(model, NUM_SAMPLES, random_state=0)  # the mode it picks by itself
    same_layout = MCDropout(model, NUM_SAMPLES, batched=True, random_state=0)
    theirs = mc_dropout(copy.deepcopy(model), num_estimators=NUM_SAMPLES, on_batch=True).eval()

    # same masks: the batched mode repeats the batch member-major as torch-uncertainty does
    # and draws from the same seeded generator
    with torch.no_grad():
        batched_out = same_layout(x).softmax(-1)  # (T, B, K)
        torch.manual_seed(0)
        theirs_out = theirs(x).softmax(-1).view(NUM_SAMPLES, BATCH, -1)
        same_mask_gap = float((batched_out.mean(0) - theirs_out.mean(0)).abs().max())
        # the default mode (other masks): the predictive means agree within sampling error
        ours_out = ours(x).softmax(-1)
        other_gap = float((ours_out.mean(0) - theirs_out.mean(0)).abs().max())
        spread = float((ours_out.std(0) / NUM_SAMPLES**0.5).max())

    def run_theirs() -> Any:
        return theirs(x)

    def run_ours() -> Any:
        return ours(x)

    seconds = _medians({"torch-uncertainty": run_theirs, "mltricks": run_ours}, repeats)
    ratio = seconds["mltricks"] / seconds["torch-uncertainty"]
    mode = "batched" if ours.uses_batched(x) else "looped"
    lines = [
        f"#### MC dropout: mltricks vs torch-uncertainty (SmallCNN width 32, T = {NUM_SAMPLES}, "
        f"batch {BATCH}, 8x8 inputs, CPU, median of {repeats})",
        "",
        f"| | torch-uncertainty `mc_dropout` | mltricks `MCDropout` (default: picks {mode}) |",
        "|---|---|---|",
        f"| seconds per call | {seconds['torch-uncertainty']:.4f} | {seconds['mltricks']:.4f} |",
        f"| time ratio (mltricks / torch-uncertainty) | 1.00 | {ratio:.2f} |",
        f"| max abs gap of the predictive mean, same masks (batched=True) | | "
        f"{same_mask_gap:.2e} |",
        f"| max abs gap, default mode, independent masks (max std error {spread:.3f}) | | "
        f"{other_gap:.3f} |",
        "| output layout | `(T*B, K)` flat | `(T, B, K)` |",
    ]
    return "\n".join(lines)


def bench_batched_vs_looped(repeats: int = 5) -> str:
    """MCDropout batched (one pass over T*B rows) vs looped (T passes) on the CPU, and the
    mode the default picks, for a CNN and an MLP over batch sizes."""
    torch.manual_seed(0)
    models = {
        "SmallCNN width 32, 8x8": (_model(), (1, 8, 8)),
        "MLP 64-256-10": (
            nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10)),
            (64,),
        ),
    }
    rows, right = [], 0
    for name, (model, shape) in models.items():
        for batch in (1, 16, 64, 256):
            x = torch.rand(batch, *shape)
            batched = MCDropout(model, NUM_SAMPLES, batched=True, random_state=0)
            looped = MCDropout(model, NUM_SAMPLES, batched=False, random_state=0)
            default = MCDropout(model, NUM_SAMPLES, random_state=0)
            seconds = _medians(
                {
                    "batched": lambda batched=batched, x=x: batched(x),
                    "looped": lambda looped=looped, x=x: looped(x),
                },
                repeats,
            )
            picked = "batched" if default.uses_batched(x) else "looped"
            faster = min(seconds, key=seconds.__getitem__)
            right += picked == faster
            rows.append(
                f"| {name} | {batch} | {seconds['batched'] * 1e3:.2f} | "
                f"{seconds['looped'] * 1e3:.2f} | {seconds['looped'] / seconds['batched']:.2f} | "
                f"{picked} | {seconds[picked] / seconds[faster]:.2f} |"
            )
    return "\n".join(
        [
            f"#### MCDropout batched vs looped, and the default's pick (T = {NUM_SAMPLES}, CPU, "
            f"{torch.get_num_threads()} threads, median of {repeats})",
            "",
            "| model | batch | batched ms | looped ms | looped / batched | default picks | "
            "default / faster |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"The default picked the faster mode in {right} of {len(rows)} settings (rule: "
            f"batched while T x B x the largest per-sample activation is at most "
            f"{CPU_BATCHED_BYTES / 2**20:.0f} MiB, looped beyond; on an accelerator always "
            "batched, not measured here).",
        ]
    )


def bench_mimo(repeats: int = 5, batch: int = 32, size: int = 32) -> str:
    """MIMO on ResNet-18 (32x32, CIFAR-sized) for M = 1..4 vs deep ensembles of M ResNet-18s."""
    variants: dict[str, Callable[[], Any]] = {}
    params: dict[str, int] = {}
    x = torch.rand(batch, 3, size, size)
    for m in (1, 2, 3, 4):
        backbone = small_resnet18(3, 10)
        backbone.fc = nn.Identity()
        mimo = MIMO(backbone, num_members=m, feature_dim=512, num_classes=10, in_channels=3).eval()
        ensemble = [small_resnet18(3, 10).eval() for _ in range(m)]
        variants[f"mimo{m}"] = lambda mimo=mimo: mimo.predict(x)
        variants[f"deep{m}"] = lambda ensemble=ensemble: [net(x) for net in ensemble]
        params[f"mimo{m}"] = sum(p.numel() for p in mimo.parameters())
        params[f"deep{m}"] = sum(p.numel() for net in ensemble for p in net.parameters())
    seconds = _medians(variants, repeats)
    rows = []
    for m in (1, 2, 3, 4):
        rows.append(
            f"| {m} | {params[f'mimo{m}'] / params['mimo1']:.4f} | "
            f"{seconds[f'mimo{m}'] / seconds['mimo1']:.2f} | "
            f"{params[f'deep{m}'] / params['mimo1']:.2f} | "
            f"{seconds[f'deep{m}'] / seconds['mimo1']:.2f} |"
        )
    return "\n".join(
        [
            f"#### MIMO overhead vs M (ResNet-18, {size}x{size}x3 inputs, batch {batch}, "
            f"median of {repeats}; one ResNet-18 = {params['mimo1']:,} parameters, "
            f"{seconds['mimo1']:.3f} s)",
            "",
            "| M | MIMO params / M=1 | MIMO time / M=1 | deep ensemble params / M=1 | "
            "deep ensemble time / M=1 |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def main() -> str:
    torch.manual_seed(0)
    return "\n\n".join([bench_mc_dropout(), bench_batched_vs_looped(), bench_mimo()])


if __name__ == "__main__":
    print(main())

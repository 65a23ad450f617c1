"""Positional encoding: the sinusoidal table, its waveforms and its similarity structure.

Reproduces the seed's figures (the position x dimension heatmap and PE.PE^T for 64 positions and
100 dimensions) and checks the properties that make the encoding useful: every row has the same
norm, and a shift by k positions is one fixed rotation, so PE(p).PE(p+k) depends on k only. The
seed's variant (frequency from 2j/d instead of 2*floor(j/2)/d) is measured next to it.

The simple baseline is the learned position table of BERT and GPT-2, what a practitioner uses
instead; before training it is a random table, here Gaussian rows scaled to the same norm. It
shows that the shift property comes from the sinusoids, not from any table of that norm.

What the original project did and what was wrong in it: docs/systems/positional-encoding.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch

from mltricks.encodings import sinusoidal_positional_encoding
from mltricks.lab.experiment import Claim, Preset, RunContext

SYSTEM = "Positional Encoding"
DESCRIPTION = "sinusoidal positional encodings: heatmap, waveforms, PE.PE^T and rotation property"
DATA = None


@dataclass
class Config:
    num_positions: int = 64
    dim: int = 100
    base: float = 10000.0
    max_shift: int = 16
    waveform_dims: tuple[int, ...] = (0, 1, 10, 11, 40, 41)


PRESETS = {
    "smoke": Preset(seeds=(0,), config={"num_positions": 16, "dim": 16, "max_shift": 4}),
    "quick": Preset(seeds=(0,)),
    "full": Preset(seeds=(0,), config={"num_positions": 128}),
}

ALL = ("smoke", "quick", "full")


def _exact(statement: str, measure: str, metric: str) -> Claim:
    """A property of the formula, held up to float64 rounding: ``metric`` below 1e-9 (an error in
    the formula, such as the seed's frequencies, is orders of magnitude larger)."""
    return Claim(
        f"{statement} ({measure} below 1e-9)",
        lambda s: s[metric].mean < 1e-9,
        (metric,),
        presets=ALL,
    )


CLAIMS = (
    _exact("every row of PE has norm sqrt(dim/2)", "max deviation", "norm_deviation"),
    _exact("PE(p+k) = R_k PE(p) with one rotation R_k for every p", "max error", "rotation_error"),
    _exact("PE(p).PE(p+k) depends on the shift k only", "max spread over p", "similarity_spread"),
    Claim(
        "the seed's 2j/d frequencies break the rotation property (error above 0.01)",
        lambda s: s["rotation_error_seed_variant"].mean > 0.01,
        ("rotation_error_seed_variant",),
        presets=ALL,
    ),
    Claim(
        "a random table with the same row norm (a learned position table before training) has "
        "no such rotation (error above 0.1) and its PE(p).PE(p+k) varies with p (spread above "
        "1)",
        lambda s: (
            s["rotation_error_random_table"].mean > 0.1
            and s["similarity_spread_random_table"].mean > 1
        ),
        ("rotation_error_random_table", "similarity_spread_random_table"),
        presets=ALL,
    ),
)


def seed_variant(num_positions: int, dim: int, base: float) -> torch.Tensor:
    """The earlier implementation: frequency 1/base^(2j/dim), so sin/cos pairs differ."""
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angles = positions / base ** (2 * j / dim)
    return torch.where(j % 2 == 0, torch.sin(angles), torch.cos(angles))


def random_table(num_positions: int, dim: int, *, random_state: int) -> torch.Tensor:
    """Gaussian rows scaled to the sinusoidal rows' norm sqrt(dim/2): ``(num_positions, dim)``."""
    generator = torch.Generator().manual_seed(random_state)
    rows = torch.randn(num_positions, dim, generator=generator, dtype=torch.float64)
    return rows / rows.norm(dim=1, keepdim=True) * math.sqrt(dim / 2)


def rotation_error(encoding: torch.Tensor, shift: int) -> float:
    """Largest error of the best single linear map from PE(p) to PE(p+k), fitted over all p.

    For the true encoding the map is a block rotation, so the least-squares fit is exact.
    """
    source, target = encoding[:-shift], encoding[shift:]
    solution = torch.linalg.lstsq(source, target).solution
    return float((source @ solution - target).abs().max())


def similarity_spread(encoding: torch.Tensor, max_shift: int) -> float:
    """Largest spread over p of PE(p).PE(p+k), over shifts k = 1..max_shift."""
    spreads = []
    for shift in range(1, max_shift + 1):
        dots = (encoding[:-shift] * encoding[shift:]).sum(1)
        spreads.append(float(dots.max() - dots.min()))
    return max(spreads)


def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    pe = sinusoidal_positional_encoding(cfg.num_positions, cfg.dim, cfg.base, dtype=torch.float64)
    seed_pe = seed_variant(cfg.num_positions, cfg.dim, cfg.base)
    # a linear map from PE(p) to PE(p+k) is pinned down only by more rows than dimensions
    rows = max(cfg.num_positions, 2 * cfg.dim + cfg.max_shift)
    long_pe = sinusoidal_positional_encoding(rows, cfg.dim, cfg.base, dtype=torch.float64)
    long_seed = seed_variant(rows, cfg.dim, cfg.base)
    long_random = random_table(rows, cfg.dim, random_state=ctx.seed)
    shifts = range(1, cfg.max_shift + 1)
    similarity = pe @ pe.T
    metrics = {
        "norm_deviation": float((pe.norm(dim=1) - math.sqrt(cfg.dim / 2)).abs().max()),
        "rotation_error": max(rotation_error(long_pe, k) for k in shifts),
        "rotation_error_seed_variant": max(rotation_error(long_seed, k) for k in shifts),
        "similarity_spread": similarity_spread(pe, cfg.max_shift),
        "similarity_spread_seed_variant": similarity_spread(seed_pe, cfg.max_shift),
        "rotation_error_random_table": max(rotation_error(long_random, k) for k in shifts),
        "similarity_spread_random_table": similarity_spread(
            long_random[: cfg.num_positions], cfg.max_shift
        ),
        "similarity_by_distance": [
            float(similarity.diagonal(k).mean()) for k in range(cfg.num_positions)
        ],
    }
    _figures(cfg, pe, seed_pe, similarity, ctx)
    return metrics


def _figures(
    cfg: Config, pe: torch.Tensor, seed_pe: torch.Tensor, similarity: torch.Tensor, ctx: RunContext
) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    image = ax.imshow(pe.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax.set(
        xlabel="dimension",
        ylabel="position",
        title=f"sinusoidal positional encoding ({cfg.num_positions} x {cfg.dim})",
    )
    fig.colorbar(image, ax=ax)
    ctx.savefig(fig, "heatmap", "PE[position, dimension]: sin on even, cos on odd dimensions")

    fig, ax = plt.subplots(figsize=(8, 4))
    for dim in (d for d in cfg.waveform_dims if d < cfg.dim):
        ax.plot(pe[:, dim].numpy(), label=f"dim {dim}")
    ax.set(xlabel="position", ylabel="value", title="waveforms of a few dimensions")
    ax.legend(ncol=3, fontsize=8)
    ctx.savefig(
        fig, "waveforms", "each sin/cos pair shares one frequency; lower dims oscillate faster"
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, table, title in (
        (axes[0], similarity, "PE . PE^T"),
        (axes[1], seed_pe @ seed_pe.T, "seed's 2j/d variant"),
    ):
        image = ax.imshow(table.numpy(), cmap="viridis")
        ax.set(xlabel="position", ylabel="position", title=title)
        fig.colorbar(image, ax=ax, fraction=0.046)
    ctx.savefig(fig, "similarity", "dot products between positions: constant along diagonals")

    fig, ax = plt.subplots(figsize=(7, 4))
    distances = range(cfg.num_positions)
    ax.plot(distances, [float(similarity.diagonal(k).mean()) for k in distances], label="PE")
    ax.plot(
        distances,
        [float((seed_pe @ seed_pe.T).diagonal(k).mean()) for k in distances],
        "--",
        label="seed's variant",
    )
    ax.set(xlabel="distance k", ylabel="mean PE(p) . PE(p+k)", title="similarity vs distance")
    ax.legend()
    ctx.savefig(fig, "similarity-vs-distance", "similarity falls with distance")

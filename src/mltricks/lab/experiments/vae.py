"""Variational autoencoder: the ELBO over training, the latent space, interpolations
and samples from the prior.

For each seed a convolutional VAE (``mu = linear(h)``, ``sigma = exp(linear(h))``,
``z = mu + sigma * eps``) trains on the training images with the negative ELBO (Bernoulli
reconstruction + KL to ``N(0, I)``, ``mltricks.models.vae_loss``). The held-out ELBO is measured
after every epoch. The latent means of the test images are scored by k-NN accuracy (reference:
the training images' means) against the majority-class rate, and drawn as a PCA projection;
the figures add an interpolation between two test images, decoded samples from the prior and the
KL of every latent dimension (dimensions near 0 are unused by the model). With ``--data`` the
images are an MNIST-format IDX folder's (MNIST, Fashion-MNIST) or the CIFAR-10 batches'.

The strong simple baseline is PCA with as many components as the VAE has latent dimensions,
scored by the same k-NN (``knn_accuracy_pca``): the linear code a practitioner would try first
for a small unsupervised representation, at the same size, so that the comparison is about what
the ELBO adds over a linear projection. (Logistic regression on the pixels, the other experiments'
baseline, uses the labels; the VAE never sees them, so it is not the bar for its codes.)

What the original project did and what was wrong in it: docs/systems/autoencoder.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from mltricks.lab import engine
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import IMAGE_DATA, SMOKE_SUBSET, SOURCES, read_images
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.training import names_learning_rates
from mltricks.models import VAE, gaussian_kl, vae_loss

SYSTEM = "Autoencoder"
DESCRIPTION = "VAE trained on the ELBO: latent PCA, interpolation, prior samples, KL per dimension"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(DataSubset):
    latent_dim: int = 8
    channels: tuple[int, ...] = (32, 64)
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 64
    beta: float = 1.0
    knn_neighbors: int = 5
    interpolate: tuple[int, int] = (7, 4)  # classes of the two end points (the seed's 7 -> 4)
    interpolation_steps: int = 9
    eval_batch_size: int = 512


# with --data: the same subset for every seed (subset_seed 0), as the published Fashion-MNIST
# results were measured (README)
DATA_CONFIG = {"max_train": 4000, "max_test": 1000, "subset_seed": 0}
PRESETS = {
    "smoke": Preset(
        seeds=(0,), config={"epochs": 2, "channels": (8, 16)}, data_config=SMOKE_SUBSET
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    # with --data: on Fashion-MNIST (20 epochs on 4,000 images) about 6 CPU-minutes (one seed of
    # 10 epochs measured 38 CPU-seconds: ELBO -255 nats, k-NN accuracy 0.79 on the latent means)
    "full": Preset(seeds=tuple(range(5)), config={"epochs": 40}, data_config={"epochs": 20}),
}

CLAIMS = (
    Claim(
        "the VAE's held-out ELBO improves over training: last epoch above the first in the mean "
        "over seeds (the bar quick's 3 seeds can judge; full's 5 also judge the interval below)",
        lambda s: s["elbo_gain"].mean > 0,
        ("elbo_gain", "elbo_first_epoch", "elbo_final"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
    Claim(
        "the VAE's held-out ELBO improves over training (last epoch above the first, interval "
        "over seeds above zero)",
        lambda s: s["elbo_gain"].above(0),
        ("elbo_gain", "elbo_first_epoch", "elbo_final"),
        min_seeds=5,
    ),
    Claim(
        "the latent means separate classes better than chance: k-NN accuracy on them is above "
        "the majority-class rate (whole interval over seeds)",
        lambda s: s["knn_accuracy"].above(s["chance"].mean),
        ("knn_accuracy", "chance"),
        min_seeds=5,
    ),
    Claim(
        "the strong simple baseline: k-NN accuracy on the VAE's latent means beats k-NN on a PCA "
        "of the pixels with as many components as latent dimensions (mean over seeds)",
        lambda s: s["knn_accuracy"].mean > s["knn_accuracy_pca"].mean,
        ("knn_accuracy", "knn_accuracy_pca", "knn_gain_over_pca"),
        min_seeds=5,
    ),
)
BASELINES = (
    Baseline(
        "knn_accuracy",
        "knn_accuracy_pca",
        what="k-NN on the VAE's latent means",
        fix="--set epochs=20 (quick and full: 20 epochs with --data)",
        preset="quick",
    ),
)


def elbo_step(beta: float):
    def step(model, batch):
        x = batch[0]
        x_hat, mu, sigma = model(x)
        if not bool(torch.isfinite(x_hat).all()):
            # weights that diverged give NaN pixels, which the Bernoulli term refuses with an
            # error of its own; a NaN loss lets engine.fit report the divergence instead
            return torch.full((), float("nan"), device=x.device)
        terms = vae_loss(x, x_hat, mu, sigma, beta=beta)
        logs = {
            "reconstruction": float(terms.reconstruction.detach()),
            "kl": float(terms.kl.detach()),
        }
        return terms.loss, logs

    return step


def elbo_eval(model, batch) -> dict[str, torch.Tensor]:
    """Per image: the ELBO (nats, one posterior sample) and its two terms."""
    x = batch[0]
    x_hat, mu, sigma = model(x)
    reconstruction = torch.nn.functional.binary_cross_entropy(x_hat, x, reduction="none")
    reconstruction = reconstruction.flatten(1).sum(1)
    kl = gaussian_kl(mu, sigma).sum(1)
    return {"elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl}


def latent_means(model: VAE, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    loader = engine.make_loader(images, batch_size=batch_size)

    def means(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        return engine.unwrap(m).encode(batch[0])[0]  # type: ignore[operator]

    return engine.predict(model, loader, fn=means)


def pca_knn_accuracy(
    cfg: Config,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    seed: int,
) -> float:
    """The baseline: k-NN test accuracy (``cfg.knn_neighbors``) on the codes of a PCA with
    ``cfg.latent_dim`` components fitted on the training images' pixels (no labels)."""
    pca = PCA(n_components=cfg.latent_dim, random_state=seed)
    reference = pca.fit_transform(x_train.flatten(1).numpy())
    knn = KNeighborsClassifier(n_neighbors=cfg.knn_neighbors).fit(reference, y_train.numpy())
    predicted = knn.predict(pca.transform(x_test.flatten(1).numpy()))
    return float((predicted == y_test.numpy()).mean())


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = read_images(cfg, ctx)
    model = VAE(tuple(x_train.shape[1:]), cfg.latent_dim, channels=cfg.channels)
    loader = engine.make_loader(
        x_train, batch_size=cfg.batch_size, shuffle=True, random_state=ctx.seed
    )
    test_loader = engine.make_loader(x_test, batch_size=cfg.eval_batch_size)
    history = engine.fit(
        model,
        loader,
        torch.optim.Adam(model.parameters(), lr=cfg.lr),
        epochs=cfg.epochs,
        step_fn=elbo_step(cfg.beta),
        val_loader=test_loader,
        eval_fn=elbo_eval,
        desc="VAE",
    )
    model = engine.unwrap(model)
    elbo = history.column("val_elbo")

    reference = latent_means(model, x_train, cfg.eval_batch_size)
    means = latent_means(model, x_test, cfg.eval_batch_size)
    knn = KNeighborsClassifier(n_neighbors=cfg.knn_neighbors).fit(
        reference.numpy(), y_train.numpy()
    )
    knn_accuracy = float((knn.predict(means.numpy()) == y_test.numpy()).mean())
    knn_accuracy_pca = pca_knn_accuracy(cfg, x_train, y_train, x_test, y_test, ctx.seed)
    chance = float(torch.bincount(y_test).max() / len(y_test))
    with torch.no_grad():
        _, sigma = model.encode(x_test.to(ctx.device))
        kl_per_dim = gaussian_kl(means.to(ctx.device), sigma).mean(0).cpu()
    # active units (Burda et al. 2016): the posterior mean varies across images
    active = int((means.var(0) > 0.01).sum())

    if ctx.first_seed:
        plot_latent(ctx, means, y_test)
        plot_interpolation(ctx, cfg, model, means, y_test)
        plot_prior_samples(ctx, cfg, model)
        plot_kl(ctx, kl_per_dim)
    return {
        "elbo_first_epoch": elbo[0],
        "elbo_final": elbo[-1],
        "elbo_gain": elbo[-1] - elbo[0],
        "reconstruction_final": history.last["val_reconstruction"],
        "kl_final": history.last["val_kl"],
        "knn_accuracy": knn_accuracy,
        "knn_accuracy_pca": knn_accuracy_pca,
        "knn_gain_over_pca": knn_accuracy - knn_accuracy_pca,
        "chance": chance,
        "active_dimensions": active,
        "elbo_curve": elbo,
        "kl_per_dimension": kl_per_dim.tolist(),
    }


def plot_latent(ctx: RunContext, means: torch.Tensor, labels: torch.Tensor) -> None:
    points = PCA(n_components=2).fit_transform(means.numpy()) if means.shape[1] > 2 else means
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c in range(int(labels.max()) + 1):
        chosen = labels.numpy() == c
        x, y = np.asarray(points)[chosen].T
        ax.scatter(x, y, s=6, color=plt.get_cmap("tab10")(c), label=c)
    ax.legend(fontsize=7, markerscale=2, ncol=2)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="latent means of the test images (PCA)")
    ctx.savefig(fig, "latent-pca", f"seed {ctx.seed}: PCA of the test images' latent means")


def plot_interpolation(ctx: RunContext, cfg: Config, model: VAE, means, labels) -> None:
    start_class, end_class = cfg.interpolate
    classes = set(labels.tolist())
    if start_class not in classes or end_class not in classes:
        start_class, end_class = sorted(classes)[0], sorted(classes)[-1]
    start = means[(labels == start_class).nonzero()[0, 0]]
    end = means[(labels == end_class).nonzero()[0, 0]]
    weights = torch.linspace(0, 1, cfg.interpolation_steps)[:, None]
    codes = (1 - weights) * start + weights * end
    with torch.no_grad():
        images = model.decode(codes.to(ctx.device)).cpu()
    fig, axes = plt.subplots(1, len(images), figsize=(1.1 * len(images), 1.5))
    for ax, image, weight in zip(axes, images, weights[:, 0]):
        ax.imshow(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0), cmap="gray")
        ax.set(xticks=[], yticks=[], title=f"{weight:.2f}")
    ctx.savefig(
        fig,
        "interpolation",
        f"seed {ctx.seed}: decoded codes on the line between the latent means of a test "
        f"{start_class} and a test {end_class}",
    )


def plot_prior_samples(ctx: RunContext, cfg: Config, model: VAE) -> None:
    generator = torch.Generator().manual_seed(ctx.seed)
    codes = torch.randn(64, cfg.latent_dim, generator=generator)
    with torch.no_grad():
        images = model.decode(codes.to(ctx.device)).cpu()
    fig, axes = plt.subplots(8, 8, figsize=(6, 6))
    for ax, image in zip(axes.flat, images):
        ax.imshow(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0), cmap="gray")
        ax.set(xticks=[], yticks=[])
    ctx.savefig(fig, "prior-samples", f"seed {ctx.seed}: decoded samples z ~ N(0, I)")


def plot_kl(ctx: RunContext, kl_per_dim: torch.Tensor) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(range(len(kl_per_dim)), kl_per_dim.numpy())
    ax.set(xlabel="latent dimension", ylabel="mean KL (nats)", title="KL per latent dimension")
    ctx.savefig(
        fig,
        "kl-per-dimension",
        f"seed {ctx.seed}: KL(q(z|x) || N(0, 1)) of each latent dimension, mean over test "
        "images; dimensions near zero carry no information",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, result in zip(ctx.seeds, results):
        curve = result["elbo_curve"]
        ax.plot(range(1, len(curve) + 1), curve, "-", alpha=0.7, label=f"seed {seed}")
    ax.set(xlabel="epoch", ylabel="held-out ELBO (nats per image)", title="ELBO over training")
    ax.legend(fontsize=7)
    ctx.savefig(fig, "elbo", "held-out ELBO after every epoch (higher is better)")
    return {}

"""Variational autoencoder (Kingma and Welling 2014, https://arxiv.org/abs/1312.6114) and its
loss, the negative evidence lower bound (ELBO)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_choice, check_number
from mltricks.models.autoencoder import _ConvLatentModel

RECONSTRUCTIONS = ("bce", "mse")


class VAE(_ConvLatentModel):
    """Convolutional VAE with a diagonal Gaussian posterior ``N(mu, sigma^2)`` and prior
    ``N(0, I)``.

    As the original project writes it (docs/systems/autoencoder.md): ``h`` = the encoder's
    features, ``mu = linear(h)``, ``sigma = exp(linear(h))``, and the code
    ``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` (the reparameterisation that lets gradients
    flow through the sample).

    Args:
        in_shape: ``(channels, height, width)`` of the images in [0, 1].
        latent_dim: size of the code (>= 1).
        channels: widths of the stride-2 conv layers.

    Shapes:
        ``encode (B, C, H, W) -> (mu, sigma)`` each ``(B, latent_dim)``;
        ``decode (B, latent_dim) -> (B, C, H, W)`` in (0, 1);
        ``forward(x) -> (x_hat, mu, sigma)`` with a sampled code.

    Example:
        >>> model = VAE((1, 8, 8), latent_dim=4)
        >>> x = torch.rand(3, 1, 8, 8)
        >>> x_hat, mu, sigma = model(x)
        >>> vae_loss(x, x_hat, mu, sigma).loss.shape
        torch.Size([])
    """

    def _add_encoder(self, body: nn.Sequential, features: int) -> None:
        self.encoder = body
        self.mu = nn.Linear(features, self.latent_dim)
        self.log_sigma = nn.Linear(features, self.latent_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation, each ``(B, latent_dim)``."""
        h = self.encoder(x)
        return self.mu(h), torch.exp(self.log_sigma(h))

    @staticmethod
    def reparameterize(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """A code ``mu + sigma * eps``, ``eps ~ N(0, I)`` drawn from the global generator."""
        return mu + sigma * torch.randn_like(sigma)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in (0, 1) from codes ``(B, latent_dim)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.encode(x)
        return self.decode(self.reparameterize(mu, sigma)), mu, sigma


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, 1))`` per element, in closed form:
    ``(sigma^2 + mu^2 - 1) / 2 - log(sigma)``. Same shape as ``mu``."""
    return 0.5 * (sigma.square() + mu.square() - 1.0) - torch.log(sigma)


class VAELoss(NamedTuple):
    """The terms of ``vae_loss``, each averaged over the batch (summed over pixels or latent
    dimensions within a sample)."""

    loss: torch.Tensor  # reconstruction + beta * kl; with beta = 1 and "bce", the negative ELBO
    reconstruction: torch.Tensor
    kl: torch.Tensor


def vae_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    *,
    beta: float = 1.0,
    reconstruction: str = "bce",
) -> VAELoss:
    """Reconstruction + ``beta`` x ``KL(N(mu, sigma^2) || N(0, I))``, per sample, batch mean.

    With ``beta=1`` and ``reconstruction="bce"`` (the negative log-likelihood of a Bernoulli
    decoder, summed over pixels) this is the negative ELBO, an upper bound on ``-log p(x)`` in
    nats per image. ``"mse"`` sums squared errors instead (a Gaussian decoder, up to scale and a
    constant).

    Args:
        x: ``(B, ...)`` targets in [0, 1].
        x_hat: ``(B, ...)`` reconstructions in (0, 1), same shape as ``x``.
        mu: ``(B, latent_dim)`` posterior means.
        sigma: ``(B, latent_dim)`` posterior standard deviations (> 0).
        beta: weight of the KL term (>= 0; 1 for the ELBO).
        reconstruction: ``"bce"`` or ``"mse"``.

    Returns:
        ``VAELoss(loss, reconstruction, kl)``, scalars.
    """
    check_number("beta", beta, low=0.0)
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and x_hat must have one shape; got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    if mu.shape != sigma.shape or mu.ndim != 2 or len(mu) != len(x):
        raise ValueError(
            f"mu and sigma must both be (B, latent_dim) with B = {len(x)}; got "
            f"{tuple(mu.shape)} and {tuple(sigma.shape)}"
        )
    if reconstruction == "bce":
        per_pixel = F.binary_cross_entropy(x_hat, x, reduction="none")
    else:
        per_pixel = (x_hat - x).square()
    rec = per_pixel.flatten(1).sum(1).mean()
    kl = gaussian_kl(mu, sigma).sum(1).mean()
    return VAELoss(rec + beta * kl, rec, kl)

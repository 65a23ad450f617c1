import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from mltricks.models import VAE, gaussian_kl, vae_loss


def test_kl_matches_the_closed_form_and_torch_distributions():
    mu = torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 3.0]])
    sigma = torch.tensor([[1.0, 0.5, 2.0], [0.1, 1.0, 1.0]])
    expected = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, sigma), expected)
    # by hand: (sigma^2 + mu^2 - 1) / 2 - log sigma
    assert float(gaussian_kl(torch.tensor(1.0), torch.tensor(0.5))) == pytest.approx(
        (0.25 + 1.0 - 1.0) / 2 - math.log(0.5)
    )
    assert float(gaussian_kl(torch.zeros(1), torch.ones(1))) == 0.0  # posterior = prior


def test_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu, sigma = torch.tensor([0.7, -1.2]), torch.tensor([0.6, 1.5])
    z = mu + sigma * torch.randn(200_000, 2)
    estimate = (Normal(mu, sigma).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).mean(0)
    torch.testing.assert_close(estimate, gaussian_kl(mu, sigma), atol=0.02, rtol=0)


def test_vae_loss_is_reconstruction_plus_beta_kl_per_sample():
    torch.manual_seed(1)
    x, x_hat = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3).clamp(0.01, 0.99)
    mu, sigma = torch.randn(4, 2), torch.rand(4, 2) + 0.1
    terms = vae_loss(x, x_hat, mu, sigma, beta=0.5)
    reconstruction = F.binary_cross_entropy(x_hat, x, reduction="sum") / 4
    kl = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum() / 4
    assert float(terms.reconstruction) == pytest.approx(float(reconstruction), rel=1e-5)
    assert float(terms.kl) == pytest.approx(float(kl), rel=1e-5)
    assert float(terms.loss) == pytest.approx(float(reconstruction + 0.5 * kl), rel=1e-5)
    loss, rec, kl_term = vae_loss(x, x_hat, mu, sigma, reconstruction="mse")
    assert float(rec) == pytest.approx(float(((x - x_hat) ** 2).sum() / 4), rel=1e-5)
    assert float(loss) == pytest.approx(float(rec + kl_term), rel=1e-6)


def test_the_negative_elbo_bounds_the_exact_negative_log_likelihood():
    """A one-pixel Bernoulli model with a 1-d code: -log p(x) by quadrature <= the loss."""
    torch.manual_seed(2)
    decoder = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Sigmoid())
    x = torch.tensor([[1.0]])
    grid = torch.linspace(-8, 8, 20001)[:, None]
    with torch.no_grad():
        likelihood = decoder(grid)[:, 0]
        marginal = (likelihood * Normal(0.0, 1.0).log_prob(grid[:, 0]).exp()).sum() * (
            grid[1, 0] - grid[0, 0]
        )
        mu, sigma = torch.tensor([[0.3]]), torch.tensor([[0.8]])
        z = mu + sigma * torch.randn(100_000, 1)
        bce = F.binary_cross_entropy(decoder(z), x.expand(100_000, 1))
        negative_elbo = bce + gaussian_kl(mu, sigma).sum()
    assert float(negative_elbo) >= -math.log(float(marginal)) - 1e-3


def test_encode_and_reparameterize_follow_seed_formulas():
    torch.manual_seed(3)
    model = VAE((1, 8, 8), latent_dim=3)
    x = torch.rand(5, 1, 8, 8)
    mu, sigma = model.encode(x)
    h = model.encoder(x)
    torch.testing.assert_close(mu, model.mu(h))
    torch.testing.assert_close(sigma, torch.exp(model.log_sigma(h)))  # sigma = exp(linear(h))
    torch.manual_seed(4)
    z = model.reparameterize(mu, sigma)
    torch.manual_seed(4)
    torch.testing.assert_close(z, mu + sigma * torch.randn_like(sigma))
    many = model.reparameterize(mu[:1].expand(50_000, 3), sigma[:1].expand(50_000, 3))
    torch.testing.assert_close(many.mean(0), mu[0].detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(many.std(0), sigma[0].detach(), atol=0.03, rtol=0)


def test_gradients_reach_both_heads_through_the_sample():
    model = VAE((1, 8, 8), latent_dim=2)
    x = torch.rand(4, 1, 8, 8)
    x_hat, mu, sigma = model(x)
    assert x_hat.shape == x.shape
    vae_loss(x, x_hat, mu, sigma).loss.backward()
    assert model.mu.weight.grad.abs().sum() > 0 and model.log_sigma.weight.grad.abs().sum() > 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1; got 0"):
        VAE((1, 8, 8), 0)
    x = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"beta must be a number >= 0\.0"):
        vae_loss(x, x, torch.zeros(2, 1), torch.ones(2, 1), beta=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        vae_loss(x, x[:1], torch.zeros(2, 1), torch.ones(2, 1))
    with pytest.raises(ValueError, match="mu and sigma"):
        vae_loss(x, x, torch.zeros(2, 1), torch.ones(2, 2))
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        vae_loss(x, x, torch.zeros(2, 1), torch.ones(2, 1), reconstruction="l1")

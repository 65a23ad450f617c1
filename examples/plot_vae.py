"""
Variational autoencoder
=======================

A VAE encodes an image as a Gaussian ``q(z | x) = N(mu, sigma^2)`` with ``mu = linear(h)`` and
``sigma = exp(linear(h))``, samples a code by reparameterisation ``z = mu + sigma * eps`` with
``eps ~ N(0, 1)``, and decodes it. It trains on the negative ELBO: the reconstruction error plus
the KL divergence from the posterior to the prior ``N(0, 1)`` (``vae_loss``).
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
from sklearn.decomposition import PCA

from mltricks.data import load_digits_images
from mltricks.models import VAE, vae_loss

torch.manual_seed(0)
x_train, y_train = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")
model = VAE((1, 8, 8), latent_dim=8, channels=(16, 32))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
history = []
for _epoch in range(15):
    model.train()
    for batch in torch.randperm(len(x_train)).split(64):
        x = x_train[batch]
        optimizer.zero_grad()
        vae_loss(x, *model(x)).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        history.append(-vae_loss(x_test, *model(x_test)).loss.item())
print(
    f"held-out ELBO per image: {history[0]:.1f} after the first epoch, {history[-1]:.1f} "
    "after the last"
)

# %%
# The posterior means in 2-d (PCA), reconstructions, and an interpolation between two digits.
with torch.no_grad():
    mu, _ = model.encode(x_test)
    reconstructions = model.decode(mu[:6])
    path = torch.stack([mu[0] + t * (mu[1] - mu[0]) for t in torch.linspace(0, 1, 6)])
    between = model.decode(path)
points = PCA(2).fit_transform(mu.numpy())

fig = plt.figure(figsize=(10, 4.5))
ax = fig.add_subplot(1, 2, 1)
scatter = ax.scatter(*points.T, c=y_test, cmap="tab10", s=8)
ax.legend(*scatter.legend_elements(), fontsize=6, title="digit")
ax.set(title="posterior means (PCA)")
for row, images in enumerate((x_test[:6], reconstructions, between)):
    for col in range(6):
        ax = fig.add_subplot(3, 12, 12 * row + 7 + col)
        ax.imshow(images[col, 0], cmap="gray")
        ax.axis("off")
fig.text(0.56, 0.9, "test images / reconstructions / interpolation", fontsize=9)

"""
Sinusoidal positional encoding
==============================

The Transformer's encoding: dimension pair ``(2i, 2i + 1)`` of position ``p`` is
``sin(p / base^(2i/d))`` and ``cos(p / base^(2i/d))``. Both members of a pair share one
frequency, so moving ``k`` positions rotates every pair by a fixed angle, and the similarity of
two positions depends only on their distance.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch

from mltricks.encodings import SinusoidalPositionalEncoding, sinusoidal_positional_encoding

pe = sinusoidal_positional_encoding(64, 100, dtype=torch.float64)
similarity = pe @ pe.T

# %%
# ``PE(p) . PE(p + k)`` is the same for every ``p``: check it for a shift of 5.
shift = 5
diagonal = torch.diagonal(similarity, offset=shift)
print(f"PE(p).PE(p+{shift}) spread over p: {(diagonal.max() - diagonal.min()).item():.2e}")
print(f"row norms: {pe.norm(dim=1)[:3].tolist()} (sqrt(dim/2) = {(100 / 2) ** 0.5:.4f})")

# %%
# The module adds the table to a batch of token embeddings.
tokens = torch.zeros(2, 10, 100)
print(f"encoded batch: {tuple(SinusoidalPositionalEncoding(100)(tokens).shape)}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].imshow(pe, aspect="auto", cmap="RdBu")
axes[0].set(xlabel="dimension", ylabel="position", title="PE (64 positions x 100 dimensions)")
axes[1].imshow(similarity, cmap="viridis")
axes[1].set(xlabel="position", ylabel="position", title="PE . PE^T")
fig.tight_layout()

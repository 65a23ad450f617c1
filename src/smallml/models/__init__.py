"""Models used by the techniques and the lab.

Return convention: every model is an ``nn.Module`` whose ``forward`` returns one tensor, or a
tuple whose first element is the main output (a classifier's logits ``(B, num_classes)``, a
VAE's reconstruction), followed by what the technique needs besides (MIL attention weights,
MultiHeadResNet embeddings, VAE ``mu`` and ``sigma``). The lab's default step, the attacks and
the explainers read that first element. Losses that belong to a model are functions with a
module twin returning a scalar (``vae_loss`` / ``VAELoss``).
"""

from smallml.models.attention_mil import AttentionMIL, PoolingMIL, attention_pool
from smallml.models.autoencoder import Autoencoder
from smallml.models.checkpoint import load_weights_file
from smallml.models.multi_head_resnet import MultiHeadResNet
from smallml.models.resnet import small_resnet18
from smallml.models.small_cnn import PoolAbove, SmallCNN
from smallml.models.unet import UNet
from smallml.models.vae import VAE, VAELoss, gaussian_kl, vae_loss

__all__ = [
    "VAE",
    "AttentionMIL",
    "Autoencoder",
    "MultiHeadResNet",
    "PoolAbove",
    "PoolingMIL",
    "SmallCNN",
    "UNet",
    "VAELoss",
    "attention_pool",
    "gaussian_kl",
    "load_weights_file",
    "small_resnet18",
    "vae_loss",
]

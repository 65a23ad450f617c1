"""Models used by the techniques and the lab."""

from smallml.models.attention_mil import AttentionMIL, PoolingMIL, attention_pool
from smallml.models.autoencoder import Autoencoder
from smallml.models.multi_head_resnet import MultiHeadResNet
from smallml.models.resnet import small_resnet18
from smallml.models.small_cnn import SmallCNN
from smallml.models.unet import UNet
from smallml.models.vae import VAE, VAELoss, gaussian_kl, vae_loss

__all__ = [
    "VAE",
    "AttentionMIL",
    "Autoencoder",
    "MultiHeadResNet",
    "PoolingMIL",
    "SmallCNN",
    "UNet",
    "VAELoss",
    "attention_pool",
    "gaussian_kl",
    "small_resnet18",
    "vae_loss",
]

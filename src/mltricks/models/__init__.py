"""Models used by the techniques and the lab.

Return convention: every model is an ``nn.Module`` whose ``forward`` returns one tensor, or a
tuple whose first element is the main output (a classifier's logits ``(B, num_classes)``, a
VAE's reconstruction), followed by what the technique needs besides (MIL attention weights,
MultiHeadResNet embeddings, VAE ``mu`` and ``sigma``). The lab's default step, the attacks and
the explainers read that first element. Losses that belong to a model are functions with a
module twin returning a scalar (``vae_loss`` / ``VAELoss``).
"""

from mltricks.models.attention_mil import AttentionMIL, PoolingMIL, attention_pool
from mltricks.models.autoencoder import Autoencoder
from mltricks.models.checkpoint import load_weights_file
from mltricks.models.lenet import LeNet
from mltricks.models.multi_head_resnet import MultiHeadResNet
from mltricks.models.resnet import small_resnet18
from mltricks.models.small_cnn import PoolAbove, SmallCNN
from mltricks.models.unet import UNet
from mltricks.models.vae import VAE, VAELoss, gaussian_kl, vae_loss

__all__ = [
    "VAE",
    "AttentionMIL",
    "Autoencoder",
    "LeNet",
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

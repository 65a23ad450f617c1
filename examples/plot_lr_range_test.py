"""
Learning-rate range test
========================

Train a copy of the model from the same starting point for a few batches with each candidate
learning rate, fit a line through each candidate's batch losses, and pick the steepest negative
slope. The same batches for every candidate, the model restored exactly, diverging candidates
never picked; bootstrap resamples of the batches say how stable the pick is.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from mltricks.data import load_digits_images
from mltricks.models import SmallCNN
from mltricks.tuning import lr_range_test

torch.manual_seed(0)
images, labels = load_digits_images(split="train")
loader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True)
model = SmallCNN(1, 10, width=8)

result = lr_range_test(
    model, F.cross_entropy, loader, lrs=np.logspace(-5, 0, 11), num_batches=20, optimizer="adam"
)
print(
    f"best lr: {result.best_lr:.0e} (stable: {result.stable}), naive pick: "
    f"{result.naive_best_lr:.0e}"
)
print(result.message)

# %%
# Each candidate's batch losses and its fitted line; the pick is the steepest descent.
fig, ax = plt.subplots(figsize=(7, 4))
result.plot(ax=ax)
fig.tight_layout()

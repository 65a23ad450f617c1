"""
Adversarial examples with FGSM and Carlini-Wagner
=================================================

Train a small CNN on scikit-learn's 8x8 digits with a plain PyTorch loop, then attack it: the
fast gradient sign method (one step of size ``eps`` along the sign of the input gradient) and
the Carlini-Wagner L2 attack (an optimisation towards a chosen class). Both return new tensors
and leave the model as they found it.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
import torch.nn.functional as F

from mltricks.attacks import carlini_wagner, fgsm
from mltricks.data import load_digits_images
from mltricks.models import SmallCNN

torch.manual_seed(0)
x_train, y_train = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")

# %%
# A plain training loop: five epochs of Adam.
model = SmallCNN(1, 10, width=16)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for _epoch in range(5):
    for batch in torch.randperm(len(x_train)).split(64):
        optimizer.zero_grad()
        F.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()
model.eval()


def accuracy(x: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y_test).float().mean().item()


print(f"clean test accuracy: {accuracy(x_test):.3f}")

# %%
# FGSM: accuracy against the step size ``eps`` (inputs stay clamped to [0, 1]).
eps_values = [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3]
accuracies = [accuracy(fgsm(model, x_test, y_test, eps=eps)) for eps in eps_values]
for eps, acc in zip(eps_values, accuracies):
    print(f"eps {eps:<5}: accuracy {acc:.3f}")

# %%
# Carlini-Wagner towards the digit 0, on eight test images.
x, target = x_test[:8], torch.zeros(8, dtype=torch.long)
result = carlini_wagner(model, x, target, c=10.0, steps=100, lr=0.1, return_result=True)
print(
    f"Carlini-Wagner reaches class 0 for {result.success.float().mean():.0%} of the images, "
    f"mean L2 distance {result.l2.mean():.2f}"
)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), gridspec_kw={"width_ratios": [2, 1, 1]})
axes[0].plot(eps_values, accuracies, marker="o")
axes[0].set(xlabel="eps", ylabel="test accuracy", title="FGSM")
with torch.no_grad():
    predicted = model(result.adversarial[:1]).argmax(1).item()
axes[1].imshow(x[0, 0], cmap="gray")
axes[1].set_title(f"original: {y_test[0].item()}")
axes[2].imshow(result.adversarial[0, 0], cmap="gray")
axes[2].set_title(f"Carlini-Wagner: {predicted}")
for ax in axes[1:]:
    ax.axis("off")
fig.tight_layout()

"""
Consistency regularisation and unsupervised support losses
==========================================================

Losses computed on unlabeled images, added to the cross-entropy of the few labeled ones:
``consistency_loss`` is ``||softmax(f(x)) - softmax(f(augment(x)))||^2`` (an image and its
perturbed copy belong to the same class), ``stability_loss`` compares several augmented passes,
and ``mutual_exclusivity_loss`` rewards confident, one-hot-like outputs, which keeps the
stability loss from settling on one constant prediction. ``semi_supervised_loader`` pairs each
labeled batch with unlabeled images; this is a plain PyTorch loop over it.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
import torch.nn.functional as F

from mltricks.data import augmentation, load_digits_images, semi_supervised_loader, split_labeled
from mltricks.models import SmallCNN
from mltricks.semi_supervised import consistency_loss

images, labels = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")
mask = torch.from_numpy(split_labeled(labels, 5, random_state=0))  # 50 labeled images
augment = augmentation()


def train(weight: float) -> float:
    """Test accuracy after training with ``weight`` times the consistency loss."""
    torch.manual_seed(0)
    model = SmallCNN(1, 10, width=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = semi_supervised_loader(
        images[mask], labels[mask], images[~mask], batch_size=25, unlabeled_ratio=2, random_state=0
    )
    for _epoch in range(4):  # an epoch is one pass over the unlabeled images
        model.train()
        for x, y, x_unlabeled in loader:
            x_unlabeled = x_unlabeled.flatten(0, 1)  # (B, r, ...) -> (B * r, ...)
            loss = F.cross_entropy(model(augment(x)), y)
            if weight:
                loss = loss + weight * consistency_loss(
                    model(x_unlabeled), model(augment(x_unlabeled))
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item()


weights = [0.0, 1.0]
accuracies = [train(weight) for weight in weights]
for weight, accuracy in zip(weights, accuracies):
    print(f"lambda {weight}: test accuracy {accuracy:.3f} (50 labeled images, one seed)")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.bar([str(w) for w in weights], accuracies)
ax.set(
    xlabel="lambda",
    ylabel="test accuracy",
    ylim=(min(accuracies) - 0.05, 1),
    title="one seed: compare several before concluding",
)
fig.tight_layout()

"""
MIMO: several subnetworks in one network
========================================

A MIMO network (Havasi et al. 2021) takes ``M`` inputs at once and makes ``M`` predictions:
during training each member sees its own independently shuffled batch, so the members learn
to ignore each other's inputs and become independent subnetworks of one backbone. At test time
the same image goes to every member, and one forward pass gives an ensemble of ``M``.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch

from mltricks.data import load_digits_images
from mltricks.ensembles import MIMO, disagreement, ensemble_metrics, mimo_loader, mimo_loss
from mltricks.models import SmallCNN

torch.manual_seed(0)
x_train, y_train = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")

# %%
# ``mimo_loader`` yields ``(M, B, ...)`` inputs with each member's own shuffle, every epoch.
cnn = SmallCNN(1, 10, width=16)
model = MIMO(
    cnn.features, num_members=3, feature_dim=cnn.feature_dim, num_classes=10, in_channels=1
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
loader = mimo_loader(x_train, y_train, num_members=3, batch_size=64, random_state=0)
for _epoch in range(8):
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        mimo_loss(model(inputs), targets).backward()
        optimizer.step()

# %%
# ``predict`` repeats the test batch for every member: logits ``(M, B, classes)``.
model.eval()
with torch.no_grad():
    probs = model.predict(x_test).softmax(-1)
metrics = ensemble_metrics(probs, y_test)
members = [ensemble_metrics(probs[m : m + 1], y_test)["accuracy"] for m in range(3)]
print(f"members' accuracy: {[round(a, 3) for a in members]}")
print(
    f"ensemble: accuracy {metrics['accuracy']:.3f}, NLL {metrics['nll']:.3f}, "
    f"disagreement {disagreement(probs):.3f}"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar([*(f"member {m}" for m in range(3)), "ensemble"], [*members, metrics["accuracy"]])
ax.set(ylim=(min(members) - 0.05, 1.0), ylabel="test accuracy", title="MIMO, M = 3")
fig.tight_layout()

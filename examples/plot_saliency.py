"""
Saliency maps, SmoothGrad and guided backpropagation
====================================================

Input-gradient saliency shows which pixels would change a class score the most
(``|d score / d x|``). ``SmoothGrad`` averages the maps of noisy copies of the input (zero-mean
Gaussian noise scaled to the input range), ``GuidedBackprop`` passes only positive gradients
back through the ReLUs. Every explainer has one verb, ``attribute(x, target)``, returns a map
shaped like ``x`` and leaves the model as it found it. ``box_from_attribution`` turns a map
into a weak bounding box; ``deletion_curve`` scores a map by deleting its most relevant pixels
first, against a random order.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from mltricks.data import make_scenes
from mltricks.explain import (
    GuidedBackprop,
    Saliency,
    SmoothGrad,
    box_from_attribution,
    deletion_curve,
)
from mltricks.models import SmallCNN

torch.manual_seed(0)
# one digit per 32x32 scene: the classifier learns the digit, the boxes say where it is
args = dict(canvas_size=32, num_objects=1, num_distractors=(0, 1), object_size=(10, 14))
train = make_scenes(600, **args, random_state=0)
test = make_scenes(8, **args, source="test", random_state=1)
y_train = torch.stack(train.labels).squeeze(1) - 1  # digit = class - 1
y_test = torch.stack(test.labels).squeeze(1) - 1
model = SmallCNN(1, 10, width=16)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for _epoch in range(8):
    model.train()
    for batch in torch.randperm(len(train)).split(32):
        optimizer.zero_grad()
        F.cross_entropy(model(train.images[batch]), y_train[batch]).backward()
        optimizer.step()
model.eval()
with torch.no_grad():
    print(f"test accuracy: {(model(test.images).argmax(1) == y_test).float().mean():.2f}")

explainers = {
    "saliency": Saliency(model),
    "SmoothGrad": SmoothGrad(Saliency(model), num_samples=30, random_state=0),
    "guided backprop": GuidedBackprop(model),
}
maps = {name: e.attribute(test.images, target=y_test) for name, e in explainers.items()}

# %%
# Deletion AUC: the area under the class probability as the most relevant pixels go first
# (lower is better), against deleting pixels in random order.
for name, attribution in maps.items():
    curve = deletion_curve(model, test.images, y_test, attribution, steps=10, random_state=0)
    print(
        f"{name:<16} deletion AUC {curve.auc.mean():.3f} (random order "
        f"{curve.random_auc.mean():.3f})"
    )

fig, axes = plt.subplots(3, 4, figsize=(9, 7))
for row in range(3):
    axes[row, 0].imshow(test.images[row, 0], cmap="gray")
    x1, y1, x2, y2 = test.boxes[row][0].tolist()
    axes[row, 0].add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white"))
    for col, (name, attribution) in enumerate(maps.items(), start=1):
        axes[row, col].imshow(attribution[row, 0], cmap="inferno")
        bx1, by1, bx2, by2 = box_from_attribution(attribution[row : row + 1])[0].tolist()
        axes[row, col].add_patch(
            Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, color="cyan")
        )
        axes[0, col].set_title(name)
axes[0, 0].set_title("scene, true box")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("maps of the true class, with their weak boxes (cyan)")
fig.tight_layout()

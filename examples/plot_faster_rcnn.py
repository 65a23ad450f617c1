"""
Faster R-CNN on generated litter scenes
=======================================

``faster_rcnn`` builds torchvision's detector with a new box predictor for the given classes
(object labels start at 1: 0 is the background). Here a small backbone trains from random
weights on generated "litter on forest floor" scenes, which also hold unlabeled look-alikes
(puddles, blossoms, berries, pale stones), and is scored with mAP. A real photo set loads with
``mltricks.data.load_voc`` / ``load_coco``; start it from torchvision's COCO checkpoint with
``weights=PATH``.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
from matplotlib.patches import Rectangle

from mltricks.data import make_scenes
from mltricks.detection import faster_rcnn, mean_average_precision, validate_targets

torch.manual_seed(0)
scene_args = dict(canvas_size=48, object_size=(10, 14), num_objects=(1, 2), style="litter")
train = make_scenes(48, **scene_args, random_state=0)
test = make_scenes(16, **scene_args, random_state=1)


def targets(scenes):
    raw = [{"boxes": b, "labels": c} for b, c in zip(scenes.boxes, scenes.labels)]
    return validate_targets(raw, [tuple(scenes.images.shape[-2:])] * len(scenes))


train_targets, test_targets = targets(train), targets(test)
model = faster_rcnn(
    train.num_classes, backbone="small", min_size=48, max_size=48,
    anchor_sizes=(8, 12, 16, 24, 32), representation_size=128,
    box_batch_size_per_image=32, proposals=(100, 50),
)  # fmt: skip


def evaluate():
    model.eval()
    with torch.no_grad():
        predictions = model(list(test.images))
    return predictions, mean_average_precision(predictions, test_targets)


_, before = evaluate()

# %%
# A plain loop: in train mode the model returns its losses.
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
steps = 0
for _epoch in range(5):
    model.train()
    for batch in torch.randperm(len(train)).split(4):
        losses = model([train.images[i] for i in batch], [train_targets[i] for i in batch])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        steps += 1
predictions, after = evaluate()
print(
    f"mAP@0.5 on held-out scenes: {before['map_50']:.3f} before training, "
    f"{after['map_50']:.3f} after {steps} steps (the lab trains for minutes)"
)

# %%
# Predictions with a score above 0.5 (green) and the true boxes (white).
fig, axes = plt.subplots(1, 4, figsize=(10, 3))
for ax, image, prediction, target in zip(axes, test.images, predictions, test_targets):
    ax.imshow(image.permute(1, 2, 0))
    for x1, y1, x2, y2 in target["boxes"].tolist():
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white"))
    keep = prediction["scores"] > 0.5
    for (x1, y1, x2, y2), label in zip(
        prediction["boxes"][keep].tolist(), prediction["labels"][keep].tolist()
    ):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime"))
        ax.text(x1, y1, test.class_names[label], color="lime", fontsize=7, va="bottom")
    ax.axis("off")
fig.tight_layout()

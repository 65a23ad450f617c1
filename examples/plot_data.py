"""
Bundled and generated data
==========================

Nothing is downloaded: ``load_digits_images`` reads scikit-learn's 8x8 digits, ``make_scenes``
draws scenes with boxes, masks and look-alike distractors, ``make_bags`` groups digits into
multiple-instance bags, and ``split_labeled`` hides most labels for semi-supervised learning.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
from matplotlib.patches import Rectangle

from mltricks.data import augmentation, load_digits_images, make_bags, make_scenes, split_labeled

images, labels = load_digits_images(split="train")
print(f"digits: images {tuple(images.shape)}, labels {tuple(labels.shape)}")

# %%
# Ten labels per class; the rest become unlabeled (``-1``), as scikit-learn's semi-supervised
# estimators expect.
labeled = split_labeled(labels, 10, random_state=0)
print(f"labeled: {labeled.sum()} of {len(labels)}")

# %%
# Bags of digits: a bag is positive when it holds a 2.
bags = make_bags(images, labels, positive_class=2, num_bags=100, random_state=0)
sizes = [len(bag) for bag in bags.instances]
print(f"bags: {len(bags)}, positive {int(bags.labels.sum())}, sizes {min(sizes)}-{max(sizes)}")

# %%
# Scenes: digits (or litter) on a canvas, with boxes for detection and masks for segmentation.
digit_scenes = make_scenes(3, style="digits", random_state=0)
litter_scenes = make_scenes(3, style="litter", random_state=0)
augment = augmentation()

fig, axes = plt.subplots(2, 4, figsize=(10, 5))
for row, scenes in enumerate((digit_scenes, litter_scenes)):
    for col in range(3):
        ax = axes[row, col]
        ax.imshow(scenes.images[col].permute(1, 2, 0).squeeze(), cmap="gray")
        for (x1, y1, x2, y2), label in zip(scenes.boxes[col].tolist(), scenes.labels[col]):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime"))
            ax.text(x1, y1, scenes.class_names[label], color="lime", fontsize=8, va="bottom")
        for x1, y1, x2, y2 in scenes.distractor_boxes[col].tolist():
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="red", ls=":"))
        ax.axis("off")
axes[0, 3].imshow(images[0, 0], cmap="gray")
axes[0, 3].set_title("a digit")
axes[1, 3].imshow(augment(images[:1])[0, 0], cmap="gray")
axes[1, 3].set_title("augmented")
for ax in axes[:, 3]:
    ax.axis("off")
fig.suptitle("scenes: objects (green) and unlabeled distractors (red)")
fig.tight_layout()

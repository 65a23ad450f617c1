"""
Meta-learning with Reptile
==========================

Reptile (Nichol et al. 2018) learns an initialisation from many small tasks: train a copy on
one task for a few steps, move the initialisation part of the way towards the copy's weights
(``w <- w + eps (w_task - w)``), repeat. Here the tasks are 5-way classification problems on
rotated digits (a digit turned by 0, 90, 180 or 270 degrees is a class of its own: 40 classes),
and the test tasks use classes never seen in meta-training.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch

from mltricks.data import FewShotTasks, load_digits_images, rotate_classes, split_classes
from mltricks.meta import adapt_and_predict, reptile
from mltricks.models import SmallCNN

torch.manual_seed(0)
images, labels = rotate_classes(*load_digits_images())
digit = [c % 10 for c in range(40)]  # the rotations of one digit stay on one side of the split
train_classes, test_classes = split_classes(range(40), num_test=3, groups=digit, random_state=0)
print(f"{len(train_classes)} meta-train classes, {len(test_classes)} held-out classes")
train_tasks = FewShotTasks(
    images, labels, ways=5, shots=5, queries=0, classes=train_classes, random_state=0
)
test_tasks = FewShotTasks(
    images, labels, ways=5, shots=1, queries=15, classes=test_classes, random_state=1
).sample(100)

# %%
# Meta-train, then adapt each initialisation to the same held-out 1-shot tasks.
model = SmallCNN(1, 5, width=8)
random_init = SmallCNN(1, 5, width=8)
random_init.load_state_dict(model.state_dict())
result = reptile(
    model,
    train_tasks,
    meta_iterations=60,
    meta_batch_size=5,
    inner_steps=5,
    inner_lr=0.1,
    meta_lr=1.0,
    meta_lr_final=0.0,
)


def one_shot_accuracy(init):
    outputs = adapt_and_predict(init, test_tasks, steps=10, lr=0.1)
    hits = [
        (out.argmax(1) == task.query_y).float().mean() for out, task in zip(outputs, test_tasks)
    ]
    return torch.stack(hits).mean().item()


reptile_acc, random_acc = one_shot_accuracy(model), one_shot_accuracy(random_init)
print(
    f"5-way 1-shot accuracy on held-out classes: Reptile {reptile_acc:.3f}, "
    f"random initialisation {random_acc:.3f} (chance 0.2)"
)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(result.first_inner_losses, alpha=0.7)
axes[0].set(xlabel="meta-iteration", ylabel="task loss before adapting", title="meta-training")
axes[1].bar(["random init", "Reptile"], [random_acc, reptile_acc])
axes[1].axhline(0.2, color="gray", ls="--", label="chance")
axes[1].set(ylabel="1-shot accuracy", title="held-out classes")
axes[1].legend()
fig.tight_layout()

"""
Triplet embeddings
==================

The triplet margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` pulls an anchor ``a`` towards
a positive ``p`` of its class and pushes it from a negative ``n`` of another class. Which
triplets a batch trains on matters: ``mining="hard"`` takes each anchor's farthest positive
and nearest negative, ``"semi_hard"`` negatives that are farther than the positive but within
the margin (FaceNet's remedy when hardest negatives collapse the embedding early on).
``ClassBalancedBatchSampler`` makes batches in which every class has positives.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from mltricks.data import load_digits_images
from mltricks.metric_learning import ClassBalancedBatchSampler, TripletMarginLoss
from mltricks.models import SmallCNN

torch.manual_seed(0)
x_train, y_train = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")

# %%
# A small CNN maps each digit to a point in 2-d, trained on the triplet loss alone.
cnn = SmallCNN(1, 10, width=16)
model = nn.Sequential(cnn.features, nn.Linear(cnn.feature_dim, 2))
loss_fn = TripletMarginLoss(margin=1.0, mining="semi_hard")
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
sampler = ClassBalancedBatchSampler(y_train, samples_per_class=8, random_state=0)
for _epoch in range(6):
    model.train()
    for batch in sampler:
        optimizer.zero_grad()
        loss_fn(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()
print(f"last batch: {loss_fn.stats}")

# %%
# A nearest-neighbour classifier in the embedding measures how well it separates the digits.
model.eval()
with torch.no_grad():
    train_points, test_points = model(x_train), model(x_test)
knn = KNeighborsClassifier(5).fit(train_points, y_train)
print(f"5-NN accuracy in the 2-d embedding: {knn.score(test_points, y_test):.3f}")

fig, ax = plt.subplots(figsize=(6, 5))
scatter = ax.scatter(*test_points.T, c=y_test, cmap="tab10", s=8)
ax.legend(*scatter.legend_elements(), title="digit", fontsize=7, loc="best")
ax.set(title="test digits in the learned 2-d embedding")
fig.tight_layout()

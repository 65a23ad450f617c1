"""
Cluster-then-label and self-training
====================================

Two scikit-learn estimators for data with few labels (``-1`` marks an unlabeled sample).
``ClusterThenLabel`` runs k-means whose objective adds ``alpha`` times the class impurity of
the labeled points in each cluster, so labels pull on the clusters (``alpha = 0`` is k-means
followed by a majority vote); each cluster predicts its majority class.
``SelfTrainingClassifier`` wraps any classifier with ``predict_proba``: each round it adds the
most confident predictions on unlabeled samples as pseudo-labels, and it stops when accuracy
on a validation share of the labeled samples stops improving.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mltricks.data import load_digits_images, split_labeled
from mltricks.semi_supervised import ClusterThenLabel, SelfTrainingClassifier

images, labels = load_digits_images(split="train")
test_images, test_labels = load_digits_images(split="test")
X, X_test = images.flatten(1).numpy(), test_images.flatten(1).numpy()
y, y_test = labels.numpy(), test_labels.numpy()

# %%
# Five labels per class: 50 of 1437 training images keep their label.
y_semi = np.where(split_labeled(y, 5, random_state=0), y, -1)
alphas = [0.0, 0.5, 1.0, 2.0]
scores = []
for alpha in alphas:
    model = make_pipeline(
        StandardScaler(), PCA(20, random_state=0),
        ClusterThenLabel(n_clusters=30, alpha=alpha, random_state=0),
    )  # fmt: skip
    scores.append(model.fit(X, y_semi).score(X_test, y_test))
    print(f"ClusterThenLabel, alpha {alpha}: test accuracy {scores[-1]:.3f}")

# %%
# Self-training around a logistic regression, against the same regression on the labels only.
# One split of the labels says little about which method wins: the lab's cluster-then-label
# and self-training experiments choose ``alpha`` on validation and compare over seeds.
base = LogisticRegression(max_iter=1000)
labeled_only = base.fit(X[y_semi >= 0], y[y_semi >= 0]).score(X_test, y_test)
self_training = SelfTrainingClassifier(base, k_best=50, random_state=0).fit(X, y_semi)
print(
    f"logistic regression on 50 labels: {labeled_only:.3f}; self-trained: "
    f"{self_training.score(X_test, y_test):.3f} after {self_training.n_iter_} rounds"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(alphas, scores, marker="o", label="ClusterThenLabel")
ax.axhline(labeled_only, color="gray", ls="--", label="logistic regression, labels only")
ax.axhline(self_training.score(X_test, y_test), color="C2", ls=":", label="self-training")
ax.set(
    xlabel="alpha (weight of the class impurity)",
    ylabel="test accuracy",
    title="50 labeled digits, 1387 unlabeled",
)
ax.legend(fontsize=8)
fig.tight_layout()

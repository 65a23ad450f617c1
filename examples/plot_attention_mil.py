"""
Attention-based multiple instance learning
==========================================

In multiple instance learning only bags carry labels: here a bag of digits is positive when it
holds a 2. ``AttentionMIL`` (Ilse et al. 2018) embeds every instance, weighs the embeddings
with learned attention and classifies the weighted mean; the attention weights then point at
the instances that made the bag positive, although no instance label was ever seen.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from mltricks.data import collate_bags, load_digits_images, make_bags
from mltricks.models import AttentionMIL, SmallCNN

torch.manual_seed(0)
train = make_bags(*load_digits_images(split="train"), num_bags=200, random_state=0)
test = make_bags(*load_digits_images(split="test"), num_bags=60, random_state=1)
cnn = SmallCNN(1, 1, width=8)
model = AttentionMIL(cnn.features, cnn.feature_dim, hidden_dim=32, gated=True)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

# %%
# Padded batches of bags with a mask give the same outputs as one bag at a time.
loader = DataLoader(train, batch_size=16, shuffle=True, collate_fn=collate_bags)
for _epoch in range(10):
    model.train()
    for padded, mask, labels, _ in loader:
        logits, _ = model(padded, mask)
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(logits, labels.float()).backward()
        optimizer.step()

# %%
# Bag AUC, and the AUC of the attention weights for finding the 2s inside positive bags.
model.eval()
padded, mask, labels, hidden = collate_bags([test[i] for i in range(len(test))])
with torch.no_grad():
    logits, attention = model(padded, mask)
positive = labels == 1
instance_auc = roc_auc_score(hidden[positive][mask[positive]], attention[positive][mask[positive]])
print(f"bag AUC {roc_auc_score(labels, logits):.3f}, instance AUC of attention {instance_auc:.3f}")

bag = int(torch.nonzero(positive)[0])
size = int(mask[bag].sum())
fig, axes = plt.subplots(1, size, figsize=(1.2 * size, 1.8))
for i, ax in enumerate(axes):
    ax.imshow(padded[bag, i, 0], cmap="gray")
    ax.set_title(f"{attention[bag, i]:.2f}", color="red" if hidden[bag, i] else "black", fontsize=9)
    ax.axis("off")
fig.suptitle("attention in one positive test bag (the 2s in red)", fontsize=10)
fig.tight_layout()

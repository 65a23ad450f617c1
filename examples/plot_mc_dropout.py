"""
Monte Carlo dropout
===================

Keep dropout on at test time and average ``T`` stochastic forward passes: the mean is the
ensemble's prediction, the spread between passes a measure of uncertainty. ``MCDropout`` wraps
any model; only its dropout layers stay stochastic (BatchNorm stays in eval mode) and the
output is ``(T, B, classes)``, the layout every function of ``mltricks.ensembles`` reads.
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
import torch.nn.functional as F

from mltricks.data import load_digits_images
from mltricks.ensembles import MCDropout, ensemble_metrics, predictive_entropy
from mltricks.models import SmallCNN

torch.manual_seed(0)
x_train, y_train = load_digits_images(split="train")
x_test, y_test = load_digits_images(split="test")
model = SmallCNN(1, 10, width=16, dropout=0.3)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for _epoch in range(6):
    model.train()
    for batch in torch.randperm(len(x_train)).split(64):
        optimizer.zero_grad()
        F.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()
model.eval()

# %%
# Standard dropout (one deterministic pass, ``probs[None]`` is an ensemble of one) against MC
# dropout with 1 to 50 samples, from the same weights.
with torch.no_grad():
    standard = ensemble_metrics(model(x_test).softmax(-1)[None], y_test)
    sizes = [1, 2, 5, 10, 20, 50]
    mc = {}
    for t in sizes:
        probs = MCDropout(model, num_samples=t, random_state=0)(x_test).softmax(-1)
        mc[t] = ensemble_metrics(probs, y_test)
print(f"standard dropout: accuracy {standard['accuracy']:.3f}, NLL {standard['nll']:.3f}")
for t in sizes:
    print(f"MC dropout, T = {t:>2}: accuracy {mc[t]['accuracy']:.3f}, NLL {mc[t]['nll']:.3f}")

# %%
# The predictive entropy of the 50-sample ensemble is higher on the images it gets wrong.
wrong = probs.mean(0).argmax(-1) != y_test
entropy = predictive_entropy(probs)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(sizes, [mc[t]["nll"] for t in sizes], marker="o", label="MC dropout")
axes[0].axhline(standard["nll"], color="gray", ls="--", label="standard dropout")
axes[0].set(xscale="log", xlabel="samples T", ylabel="test NLL")
axes[0].legend()
axes[1].hist(
    [entropy[~wrong].numpy(), entropy[wrong].numpy()],
    bins=20,
    density=True,
    label=["correct", "wrong"],
)
axes[1].set(xlabel="predictive entropy (T = 50)", ylabel="density")
axes[1].legend()
fig.tight_layout()

"""
Text statistics and feature importance
======================================

``TextStatistics`` turns (title, body) pairs into nine numbers: words, exclamation marks,
question marks and lexical diversity of each, and the title's share of the words.
``feature_importance`` fits a model on a split of its own and reports three views of each
feature: the forest's impurity importance, the permutation importance on held-out data, and
the score of a model trained on that feature alone, next to a random probe column that marks
the level of noise. The data: real standard-library docstrings against word-bigram imitations of
them (a stand-in that ships with Python; it is not news: give a fake/real news CSV to
``mltricks.data.load_labeled_text_csv`` for that).
"""

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from mltricks.data import load_real_vs_generated_docstrings
from mltricks.tabular import TextStatistics, feature_importance

modules = (
    "argparse",
    "collections",
    "csv",
    "email",
    "json",
    "logging",
    "pathlib",
    "shutil",
    "string",
    "tarfile",
    "textwrap",
    "typing",
    "unittest",
    "urllib",
    "zipfile",
)
texts = load_real_vs_generated_docstrings(num_per_class=300, random_state=0, modules=modules)
X, y = texts.pairs(), texts.labels
print(f"{len(y)} texts; classes {texts.label_names}")

# %%
# A scikit-learn pipeline from raw text to a forest, cross-validated.
pipeline = make_pipeline(TextStatistics(), RandomForestClassifier(50, random_state=0))
scores = cross_val_score(pipeline, X, y, cv=3, scoring="f1")
print(f"3-fold F1: {scores.mean():.3f} +- {scores.std():.3f}")

# %%
# Which of the nine statistics carry the signal.
features = TextStatistics().fit(X)
table = feature_importance(
    RandomForestClassifier(50, random_state=0), features.transform(X), y,
    feature_names=features.get_feature_names_out(), n_repeats=3, random_state=0,
)  # fmt: skip
print(table)

rows = table.rows()
fig, ax = plt.subplots(figsize=(7, 4))
ax.barh(
    [r["feature"] for r in rows][::-1],
    [r["permutation"] for r in rows][::-1],
    xerr=[r["permutation_std"] for r in rows][::-1],
)
ax.set(xlabel="permutation importance (F1 drop on held-out texts)")
fig.tight_layout()

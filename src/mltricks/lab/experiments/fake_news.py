"""Fake News Feature Importance: nine surface statistics of (title, body), a random forest.

Data: ``--data FILE.csv`` with ``title``, ``text`` and binary ``label`` columns (the Kaggle
fake/real news layout). Without it the default corpus is **not news**: real standard-library
docstrings (title = summary line, body = the rest) against machine-generated imitations of them
from a word-bigram Markov chain with the same lengths in words (``mltricks.data``,
``load_real_vs_generated_docstrings``). It tests whether the original project's statistics tell real text
from generated text, nothing about misinformation.

For each seed: a stratified train/test split; ``TextStatistics -> StandardScaler -> forest``
tuned by ``GridSearchCV`` (forest size, leaf size; F1) on the training part; a
``StackingClassifier`` (forest, SVC, logistic regression; logistic regression on top);
``feature_importance`` on the training part (impurity, held-out permutation, single-feature
F1, random probe); then test F1 when the features are added one at a time in order of
permutation importance (the seed's figure), whose first point is the test F1 of the best
single feature (the most important on the training part). The test part is used for nothing
but the reported scores.

Strong simple baselines, on the same split: calling everything class 1 (the trivial F1),
logistic regression on the same nine statistics (is the forest needed?) and a TF-IDF
bag-of-words logistic regression on the words of title and body, which a practitioner tries
first on any text classification (are the statistics needed?).

F1 of class 1 is the seed's metric. On balanced classes a model that calls everything class 1
scores 2p/(1+p) = 0.67 for a share p = 0.5 of class 1, so single-feature F1 is also shown as
the share of the gap between that baseline and all features that one feature closes.

What the original project did and what was wrong in it: docs/systems/fake-news.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mltricks.data import LabeledTexts, load_labeled_text_csv, load_real_vs_generated_docstrings
from mltricks.lab.config_fields import data_only
from mltricks.lab.experiment import Claim, NotApplicable, Preset, RunContext, Summary
from mltricks.lab.plots import band, column_estimates, interval_errors
from mltricks.tabular import FEATURE_NAMES, PROBE, TextStatistics, feature_importance

SYSTEM = "Fake News Feature Importance"
DESCRIPTION = (
    "text statistics + random forest (grid search, stacking, importance with a random probe); "
    "default data: real stdlib docstrings vs Markov-chain imitations, not news"
)
DATA = "a CSV file with title, text and binary label columns (Kaggle fake/real news layout)"
DATA_FORMATS = ("csv",)


@dataclass
class Config:
    # the CSV's columns (--data only)
    title_column: str = field(default="title", metadata=data_only())
    text_column: str = field(default="text", metadata=data_only())  # --text-column
    label_column: str = field(default="label", metadata=data_only())
    num_per_class: int = 500  # default corpus: real docstrings, and as many imitations
    modules: tuple[str, ...] = ()  # default corpus: stdlib top-level modules read; () = all
    # CSV rows drawn at random, per seed (the seed used 5,000 articles)
    max_samples: int = field(default=5000, metadata=data_only())
    test_fraction: float = 0.25
    n_estimators: tuple[int, ...] = (50, 150)
    min_samples_leaf: tuple[int, ...] = (1, 5, 20)
    cv_folds: int = 3
    n_repeats: int = 10


SMOKE_MODULES: tuple[str, ...] = (
    "argparse",
    "calendar",
    "csv",
    "enum",
    "fnmatch",
    "fractions",
    "glob",
    "json",
)
SMOKE_MODULES += ("pathlib", "random", "shlex", "statistics", "string", "textwrap", "typing")
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "num_per_class": 80,
            "modules": SMOKE_MODULES,
            "n_estimators": (20,),
            "min_samples_leaf": (1, 5),
            "cv_folds": 2,
            "n_repeats": 2,
        },
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    "full": Preset(seeds=tuple(range(5)), config={"num_per_class": 2500}),
}


# the strong simple baselines the tuned forest must beat in every seed, on the same split:
# {name of forest_beats_<name> and f1_gain_over_<name>: (the baseline's F1 metric, its claim)}
_FOREST_BASELINES = {
    "tfidf": (
        "f1_tfidf_logreg",
        "the tuned forest on the nine statistics has a higher test F1 than a TF-IDF "
        "bag-of-words logistic regression on the words, the first model a practitioner tries "
        "on text,",
    ),
    "logreg": (
        "f1_logreg",
        "the tuned forest has a higher test F1 than logistic regression on the same nine "
        "statistics",
    ),
}


def _forest_beats(name: str) -> Claim:
    metric, statement = _FOREST_BASELINES[name]
    return Claim(
        f"{statement} in every seed (3 on quick, 5 on full)",
        lambda s: s[f"forest_beats_{name}"].mean == 1.0,
        (f"forest_beats_{name}", "f1_forest", metric, f"f1_gain_over_{name}"),
        presets=("quick", "full"),
        min_seeds=3,
    )


def _gap_closed(s: Summary) -> float:
    if s["forest_beats_all_positive"].mean < 1:
        raise NotApplicable(
            "all features together do not beat calling everything class 1 in every seed, so "
            "there is no F1 gap for one feature to close"
        )
    return s["single_gap_closed"].mean


CLAIMS = (
    Claim(
        "the best single feature reaches at least 90% of the test F1 of all features together "
        "(the original project: good results with only one feature)",
        lambda s: s["single_over_all"].mean >= 0.9,
        ("f1_best_single", "f1_forest", "single_over_all"),
        min_seeds=3,
    ),
    Claim(
        "the best single feature closes at least 90% of the F1 gap between calling everything "
        "class 1 and all features together",
        lambda s: _gap_closed(s) >= 0.9,
        ("f1_all_positive", "f1_best_single", "f1_forest", "single_gap_closed"),
        min_seeds=3,
    ),
    Claim(
        "the random probe's permutation importance is 0 within its 95% interval over seeds, "
        "and the most important feature's lies above that interval (3 seeds on quick, 5 on full)",
        lambda s: (
            s["permutation_random_probe"].contains(0)
            and s["top_permutation"].above(s["permutation_random_probe"].high or math.inf)
        ),
        ("permutation_random_probe", "top_permutation"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
    *(_forest_beats(name) for name in _FOREST_BASELINES),
)


def _data(cfg: Config, ctx: RunContext) -> LabeledTexts:
    if ctx.data is None:
        return load_real_vs_generated_docstrings(
            num_per_class=cfg.num_per_class, random_state=ctx.seed, modules=cfg.modules or None
        )
    data = load_labeled_text_csv(
        ctx.data,
        title_column=cfg.title_column,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
    )
    if len(data) > cfg.max_samples:
        keep = np.sort(np.random.default_rng(ctx.seed).choice(len(data), cfg.max_samples, False))
        data = LabeledTexts(
            [data.titles[i] for i in keep],
            [data.bodies[i] for i in keep],
            data.labels[keep],
            data.label_names,
        )
    return data


def _forest(seed: int, **params: Any) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("forest", RandomForestClassifier(random_state=seed, **params)),
        ]
    )


def _split(cfg: Config, data: LabeledTexts, seed: int) -> tuple[Any, ...]:
    """Stratified train/test texts (title, body pairs) and labels."""
    return train_test_split(
        data.pairs(),
        data.labels,
        test_size=cfg.test_fraction,
        stratify=data.labels,
        random_state=seed,
    )


def _models(cfg: Config, split: tuple[Any, ...], folds: Any, seed: int) -> dict[str, Any]:
    """The seed's pipeline (text statistics + forest) tuned by grid search on the training part,
    a stacking of forest, SVC and logistic regression, and the two other members alone: their
    test F1 and the forest's chosen parameters."""
    texts_train, texts_test, y_train, y_test = split
    pipeline = Pipeline([("statistics", TextStatistics()), *_forest(seed).steps])
    grid = {
        "forest__n_estimators": list(cfg.n_estimators),
        "forest__min_samples_leaf": list(cfg.min_samples_leaf),
    }
    search = GridSearchCV(pipeline, grid, scoring="f1", cv=folds).fit(texts_train, y_train)
    best = {k.removeprefix("forest__"): v for k, v in search.best_params_.items()}
    members = {
        "forest": RandomForestClassifier(random_state=seed, **best),
        "svc": SVC(random_state=seed),
        "logreg": LogisticRegression(max_iter=1000),
    }
    stacking = Pipeline(
        [
            ("statistics", TextStatistics()),
            ("scale", StandardScaler()),
            ("stack", StackingClassifier(list(members.items()), LogisticRegression(), cv=folds)),
        ]
    ).fit(texts_train, y_train)
    features = TextStatistics()
    X_train, X_test = features.transform(texts_train), features.transform(texts_test)
    f1 = {
        "f1_forest": float(f1_score(y_test, search.predict(texts_test))),
        "f1_stacking": float(f1_score(y_test, stacking.predict(texts_test))),
    }
    for name in ("svc", "logreg"):
        alone = Pipeline([("scale", StandardScaler()), ("model", clone(members[name]))])
        f1[f"f1_{name}"] = float(f1_score(y_test, alone.fit(X_train, y_train).predict(X_test)))
    # the words themselves, scikit-learn's defaults: what a practitioner fits first on text
    words = Pipeline([("tfidf", TfidfVectorizer()), ("model", LogisticRegression(max_iter=1000))])
    words.fit(_joined(texts_train), y_train)
    f1["f1_tfidf_logreg"] = float(f1_score(y_test, words.predict(_joined(texts_test))))
    return {"best": best, "f1": f1, "features": (X_train, X_test)}


def _joined(pairs: np.ndarray) -> list[str]:
    """Title and body of each ``(title, body)`` pair as one text."""
    return [f"{title}\n{body}" for title, body in pairs]


def _importance_metrics(
    cfg: Config, best: dict[str, Any], features: tuple[np.ndarray, ...], split, ctx: RunContext
) -> dict[str, Any]:
    """Importance on the training part (its own split), then test F1 as features are added in
    order of permutation importance; the random probe's standing."""
    X_train, X_test = features
    y_train, y_test = split[2], split[3]
    table = feature_importance(
        _forest(ctx.seed, **best),
        X_train,
        y_train,
        n_repeats=cfg.n_repeats,
        random_state=ctx.seed,
        scoring="f1",
        feature_names=FEATURE_NAMES,
    )
    ctx.log(f"importance (seed {ctx.seed}):\n{table}")
    order = [FEATURE_NAMES.index(name) for name in table.ranking() if name != PROBE]

    def test_f1(columns: list[int]) -> float:
        model = _forest(ctx.seed, **best).fit(X_train[:, columns], y_train)
        return float(f1_score(y_test, model.predict(X_test[:, columns])))

    probe = table.features.index(PROBE)
    others = np.delete(table.permutation, probe)
    metrics: dict[str, Any] = {
        # the best single feature: the most important one, judged on the training part only.
        # Not the best single-feature F1 there: a constant feature's model calls everything
        # class 1, whose F1 (2p / (1 + p)) can beat a weak real feature, and flips to 0 on a tie
        "best_single_feature": FEATURE_NAMES[order[0]],
        "f1_by_num_features": [test_f1(order[:k]) for k in range(1, len(order) + 1)],
        "probe_ranked_last": float(np.argmin(table.permutation) == probe),
        "top_permutation": float(np.max(others)),
        "features_above_probe": int(np.sum(others > table.permutation[probe])),
        "feature_order": [FEATURE_NAMES[j] for j in order],
        "importance": table.rows(),
    }
    for prefix, values in (
        ("permutation", table.permutation),
        ("impurity", table.impurity),
        ("single_f1", table.single_feature_score),
    ):
        for name, value in zip(table.features, values):
            metrics[f"{prefix}_{name}"] = float(value)
    return metrics


def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    data = _data(cfg, ctx)
    split = _split(cfg, data, ctx.seed)
    ctx.log(f"{len(data)} texts, class 1 = {data.label_names[1]!r}, share {data.labels.mean():.2f}")
    folds = StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=ctx.seed)
    models = _models(cfg, split, folds, ctx.seed)
    importance = _importance_metrics(cfg, models["best"], models["features"], split, ctx)

    f1_forest = models["f1"]["f1_forest"]
    f1_single = importance["f1_by_num_features"][0]
    share = float(np.mean(split[3]))
    f1_all_positive = 2 * share / (1 + share)
    baselines = {name: models["f1"][metric] for name, (metric, _) in _FOREST_BASELINES.items()}
    return {
        **models["f1"],
        "f1_best_single": f1_single,
        "f1_all_positive": f1_all_positive,
        "single_over_all": f1_single / f1_forest if f1_forest > 0 else 0.0,
        "single_gap_closed": (f1_single - f1_all_positive) / (f1_forest - f1_all_positive)
        if f1_forest > f1_all_positive
        else float("nan"),
        "forest_beats_all_positive": f1_forest > f1_all_positive,
        # the same split for all: paired differences
        **{f"f1_gain_over_{name}": f1_forest - f1 for name, f1 in baselines.items()},
        **{f"forest_beats_{name}": f1_forest > f1 for name, f1 in baselines.items()},
        "best_n_estimators": models["best"]["n_estimators"],
        "best_min_samples_leaf": models["best"]["min_samples_leaf"],
        "num_texts": len(data),
        **importance,
    }


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    estimates = column_estimates(r["f1_by_num_features"] for r in results)
    counts = np.arange(1, len(estimates) + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    band(ax, counts, estimates, alpha=0.25, label="95% interval over seeds")
    ax.plot(
        counts,
        [e.mean for e in estimates],
        "o-",
        label="forest, features in order of permutation importance",
    )
    for key, style, colour, label in (
        ("f1_stacking", "--", "gray", "stacking, all features"),
        ("f1_logreg", "-.", "gray", "logistic regression, all features"),
        ("f1_tfidf_logreg", "--", "C3", "TF-IDF logistic regression on the words"),
        ("f1_all_positive", ":", "gray", "everything class 1"),
    ):
        ax.axhline(summary[key].mean, ls=style, color=colour, label=label)
    ax.set(
        xlabel="number of features",
        ylabel="test F1",
        xticks=counts,
        title="F1 vs number of features",
    )
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "f1-vs-features",
        "test F1 as features are added by importance (the seed's figure), with the baselines' "
        "test F1 (means over seeds)",
    )

    names = [*FEATURE_NAMES, PROBE]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), sharey=True)
    for ax, prefix, title in zip(
        axes,
        ("permutation_", "impurity_", "single_f1_"),
        ("permutation (held-out F1 drop)", "impurity (mean decrease)", "F1 of the feature alone"),
    ):
        estimates = [summary[prefix + n] for n in names]
        errors = interval_errors(estimates)
        colors = ["C3" if n == PROBE else "C0" for n in names]
        values = [e.mean for e in estimates]
        ax.barh(np.arange(len(names)), values, xerr=errors, color=colors, capsize=2)
        ax.set(title=title, yticks=np.arange(len(names)), yticklabels=names)
        ax.invert_yaxis()
    ctx.savefig(
        fig,
        "importance",
        "feature importance, mean and 95% interval over seeds; red: the random probe",
    )
    return {}

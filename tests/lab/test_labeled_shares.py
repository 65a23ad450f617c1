import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading

from mltricks.data import split_labeled
from mltricks.lab.labeled_shares import LabeledShareSweep, labeled_shares, share_baselines


def test_the_share_baselines_fit_on_the_labeled_samples_of_each_share():
    rng = np.random.default_rng(0)
    y_pool = np.repeat(np.arange(3), [60, 40, 20])  # imbalanced: the class weights matter
    X_pool = rng.normal(size=(120, 4)) + y_pool[:, None]
    X_test, y_test = X_pool[::3] + 0.5, y_pool[::3]
    cfg = LabeledShareSweep(fractions=(0.1, 0.25), logreg_c=0.5, spreading_neighbors=5)
    shares = list(labeled_shares(cfg, y_pool, random_state=0))
    assert [s.tag for s in shares] == ["10pct", "25pct"]
    for share in shares:
        mask = split_labeled(y_pool, share.fraction, random_state=0)
        np.testing.assert_array_equal(share.labeled_mask, mask)
        np.testing.assert_array_equal(share.y_semi, np.where(mask, y_pool, -1))
        metrics = share_baselines(cfg, share, X_pool, X_test, y_test, class_weight="balanced")
        logreg = LogisticRegression(C=0.5, class_weight="balanced", max_iter=1000)
        spreading = LabelSpreading(kernel="knn", n_neighbors=5).fit(X_pool, share.y_semi)
        assert metrics == {
            f"n_labeled_{share.tag}": int(mask.sum()),
            f"acc_label_spreading_{share.tag}": spreading.score(X_test, y_test),
            f"acc_logreg_{share.tag}": logreg.fit(X_pool[mask], y_pool[mask]).score(X_test, y_test),
        }

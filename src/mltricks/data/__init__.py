"""Data that ships with the install, generated data, and loaders for real on-disk data sets.

Defaults never download anything: ``load_digits_images`` uses scikit-learn's bundled digits and
``make_scenes`` draws its scenes. Real data sets load from a path the user gives.

Return convention: an image set is a tuple of tensors, images ``(N, C, H, W)`` float32 in
[0, 1] and labels ``(N,)`` int64, then the class names where the files name them
(``load_cifar``, ``load_image_folder``); a set with more structure is a dataclass named after it
(``Scenes``, ``Bags``, ``DetectionData``, ``TextCorpus``, ``LabeledTexts``), a
``torch.utils.data.Dataset`` where it is iterated in training. A split is a boolean mask
(``split_labeled``) or sorted tuples of class ids (``split_classes``). Everything random takes
``random_state``: an int (the same data on every call), a numpy ``Generator`` / ``RandomState``
(whose stream it continues) or None; ``seed=`` is a deprecated alias (deprecated in 0.2.0,
removed in 0.3.0).
"""

from mltricks.data.augmentation import RandomShiftRotate, affine_batch, augmentation
from mltricks.data.bags import Bags, collate_bags, make_bags, pad_bags
from mltricks.data.detection_files import (
    DetectionData,
    load_coco,
    load_detection_data,
    load_voc,
)
from mltricks.data.digits import load_digits_images
from mltricks.data.few_shot import FewShotTasks, Task, rotate_classes, split_classes
from mltricks.data.files import (
    is_mnist_folder,
    load_cifar,
    load_data_pickle,
    load_image_folder,
    load_mnist,
    read_idx,
    read_image_file,
)
from mltricks.data.labeled_unlabeled import LabeledUnlabeledDataset, semi_supervised_loader
from mltricks.data.litter import CONFOUNDERS, LITTER_CLASSES, litter_style
from mltricks.data.paths import DATA_SETS, DataSetLocation, require_path, resolve_data_path
from mltricks.data.scenes import STYLES, Scenes, SceneStyle, make_scenes
from mltricks.data.splits import split_labeled
from mltricks.data.text import (
    LabeledTexts,
    TextCorpus,
    load_docstring_corpus,
    load_labeled_text_csv,
    load_real_vs_generated_docstrings,
    load_text_csv,
)

__all__ = [
    "CONFOUNDERS",
    "DATA_SETS",
    "LITTER_CLASSES",
    "STYLES",
    "Bags",
    "DataSetLocation",
    "DetectionData",
    "FewShotTasks",
    "LabeledTexts",
    "LabeledUnlabeledDataset",
    "RandomShiftRotate",
    "SceneStyle",
    "Scenes",
    "Task",
    "TextCorpus",
    "affine_batch",
    "augmentation",
    "collate_bags",
    "is_mnist_folder",
    "litter_style",
    "load_cifar",
    "load_coco",
    "load_data_pickle",
    "load_detection_data",
    "load_digits_images",
    "load_docstring_corpus",
    "load_image_folder",
    "load_labeled_text_csv",
    "load_mnist",
    "load_real_vs_generated_docstrings",
    "load_text_csv",
    "load_voc",
    "make_bags",
    "make_scenes",
    "pad_bags",
    "read_idx",
    "read_image_file",
    "require_path",
    "resolve_data_path",
    "rotate_classes",
    "semi_supervised_loader",
    "split_classes",
    "split_labeled",
]

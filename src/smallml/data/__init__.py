"""Data that ships with the install, generated data, and loaders for real on-disk data sets.

Defaults never download anything: ``load_digits_images`` uses scikit-learn's bundled digits and
``make_scenes`` draws its scenes. Real data sets load from a path the user gives.
"""

from smallml.data.bags import Bags, collate_bags, make_bags, pad_bags
from smallml.data.detection_files import (
    DetectionData,
    load_coco,
    load_detection_data,
    load_voc,
)
from smallml.data.digits import load_digits_images
from smallml.data.few_shot import FewShotTasks, Task, rotate_classes, split_classes
from smallml.data.files import (
    load_cifar,
    load_data_pickle,
    load_image_folder,
    load_mnist,
    read_idx,
    require_path,
)
from smallml.data.litter import CONFOUNDERS, LITTER_CLASSES, litter_style
from smallml.data.scenes import STYLES, Scenes, SceneStyle, make_scenes
from smallml.data.splits import split_labeled
from smallml.data.text import (
    LabeledTexts,
    TextCorpus,
    load_docstring_corpus,
    load_labeled_text_csv,
    load_real_vs_generated_docstrings,
    load_text_csv,
)

__all__ = [
    "CONFOUNDERS",
    "LITTER_CLASSES",
    "STYLES",
    "Bags",
    "DetectionData",
    "FewShotTasks",
    "LabeledTexts",
    "SceneStyle",
    "Scenes",
    "Task",
    "TextCorpus",
    "collate_bags",
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
    "require_path",
    "rotate_classes",
    "split_classes",
    "split_labeled",
]

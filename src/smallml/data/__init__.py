"""Data that ships with the install, generated data, and loaders for real on-disk data sets.

Defaults never download anything: ``load_digits_images`` uses scikit-learn's bundled digits and
``make_scenes`` draws its scenes. Real data sets load from a path the user gives.
"""

from smallml.data.digits import load_digits_images
from smallml.data.files import (
    load_cifar,
    load_data_pickle,
    load_image_folder,
    load_mnist,
    read_idx,
    require_path,
)
from smallml.data.scenes import STYLES, Scenes, SceneStyle, make_scenes
from smallml.data.splits import split_labeled

__all__ = [
    "STYLES",
    "SceneStyle",
    "Scenes",
    "load_cifar",
    "load_data_pickle",
    "load_digits_images",
    "load_image_folder",
    "load_mnist",
    "make_scenes",
    "read_idx",
    "require_path",
    "split_labeled",
]

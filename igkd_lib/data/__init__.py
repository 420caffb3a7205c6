"""Stage 1 of the method, the data: CIFAR-10 as uint8 tensors with labels and a named source.

- :mod:`~igkd_lib.data.cifar10`: torchvision's canonical pixels or the offline JPEG copy, splits and subsets;
- :mod:`~igkd_lib.data.packed`: the offline copy as one packed file, the form a GPU window carries;
- :mod:`~igkd_lib.data.augment`: whole-batch crop and flip of an image with its map, and the IG overlay.

Next in the flow: :mod:`igkd_lib.training` (the teacher) and :mod:`igkd_lib.attribution` (its maps).
"""
from igkd_lib.data.augment import overlay, to_float
from igkd_lib.data.cifar10 import (
                                   CLASSES,
                                   SOURCE_LABELS,
                                   Cifar10,
                                   DataUnavailable,
                                   load_cifar10,
                                   load_splits,
                                   stratified_subset,
)

MODULES = ("augment", "cifar10", "packed")
__all__ = ["MODULES", "overlay", "to_float", "CLASSES", "SOURCE_LABELS", "Cifar10",
           "DataUnavailable", "load_cifar10", "load_splits", "stratified_subset"]

"""Sample quality: Fréchet distances between generated and held-out images (DooD Fig. 6).

:mod:`~tasks.quality.frechet` computes the distance of two feature sets,
:mod:`~tasks.quality.features` trains the project's own feature network (a small CNN
classifier), :mod:`~tasks.quality.inception` reads Inception-v3 weights a user has,
:mod:`~tasks.quality.data` gives a checkpoint's real images, labels and samples, and
:mod:`~tasks.quality.task` is ``pyro-draw fid``.
"""

from tasks.quality.features import (
    ClassifierFeatures,
    FeatureCNN,
    LabelledImages,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from tasks.quality.frechet import (
    FeatureStatistics,
    feature_statistics,
    frechet_distance,
    frechet_from_statistics,
)
from tasks.quality.task import FID_DESCRIPTION, FID_HELP, FidOptions, add_fid_arguments, run_fid

__all__ = [
    "FID_DESCRIPTION",
    "FID_HELP",
    "ClassifierFeatures",
    "FeatureCNN",
    "FeatureStatistics",
    "FidOptions",
    "LabelledImages",
    "add_fid_arguments",
    "feature_statistics",
    "frechet_distance",
    "frechet_from_statistics",
    "load_feature_net",
    "run_fid",
    "save_feature_net",
    "train_feature_net",
]

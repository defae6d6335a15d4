"""pytorch-ignite's GAN metrics (``ignite.metrics.gan``): FID and InceptionScore, accumulated on the device.

Both take a user's ``feature_extractor``; pytorch-ignite's default, torchvision's pretrained InceptionV3, is
built only from weights already downloaded (see :class:`InceptionModel`).
"""

from __future__ import annotations

from ignite_async.metrics.gan._features import InceptionModel
from ignite_async.metrics.gan.fid import FID, fid_score
from ignite_async.metrics.gan.inception_score import InceptionScore

__all__ = ["FID", "InceptionModel", "InceptionScore", "fid_score"]

"""Clustering quality: pytorch-ignite's ``ignite.metrics.clustering``, computed in torch."""

from __future__ import annotations

from ignite_async.metrics.clustering.calinski_harabasz_score import CalinskiHarabaszScore
from ignite_async.metrics.clustering.davies_bouldin_score import DaviesBouldinScore
from ignite_async.metrics.clustering.silhouette_score import SilhouetteScore

__all__ = ["CalinskiHarabaszScore", "DaviesBouldinScore", "SilhouetteScore"]

"""Recipes built on the public API (pytorch-ignite's ``ignite.contrib``): see :mod:`ignite_async.contrib.common`."""

from __future__ import annotations

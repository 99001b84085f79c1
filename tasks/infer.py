"""Prefect task of whole-scene pansharpening (``tasks.models.fuse_store``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.models import fuse_store

pansharpen_task = task(name="pansharpen-scene", cache_policy=NO_CACHE)(fuse_store)

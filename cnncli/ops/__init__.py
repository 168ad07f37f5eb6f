"""The compute side of the layer registry: for each layer kind (by its registry name) the Op class
that runs it. Imports numba; the spec side (cnncli.layers) does not."""

from __future__ import annotations

from . import activation, conv, dense, merge, norm, pool
from .base import Op

OPS: dict[str, type[Op]] = {}
for _family in (conv, pool, norm, activation, dense, merge):
    OPS.update(_family.OPS)

__all__ = ["OPS", "Op"]

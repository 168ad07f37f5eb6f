"""The compute side of the layer registry: the Op class that runs each layer kind, keyed by the
kind's declaration (its LayerKind class), never by a name.

Every op names the kinds it runs (`Op.kinds`); each family module lists its ops in `OPS`. The
table is built and checked when this module is imported: a layer kind without an op, a kind
with two ops, or an op for a kind the layer registry does not know stops the import.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..layers import KINDS, LayerKind
from . import activation, conv, dense, merge, norm, pool
from .base import Op


class RegistryError(Exception):
    """The layer kinds and the ops do not pair up: a bug in cnncli, found on import."""


def pair(kinds: Iterable[type[LayerKind]], ops: Iterable[type[Op]]) -> dict[type[LayerKind], type[Op]]:
    """{layer kind: op} for every kind that computes something (not the passthrough `id`)."""
    kinds = list(kinds)
    table: dict[type[LayerKind], type[Op]] = {}
    for op in ops:
        if not op.kinds:
            raise RegistryError(f"{op.__name__} names no layer kind it runs (set {op.__name__}.kinds)")
        for kind in op.kinds:
            if kind in table:
                raise RegistryError(f"layer kind '{kind.name}' has two ops: {table[kind].__name__} and {op.__name__}")
            if kind not in kinds:
                raise RegistryError(f"{op.__name__} runs '{kind.name}', which is not in the layer registry "
                                    "(add it to its family's KINDS in cnncli/layers/)")
            table[kind] = op
    missing = [kind.name for kind in kinds if not kind.passthrough and kind not in table]
    if missing:
        raise RegistryError(f"layer kinds without an op: {', '.join(missing)} "
                            "(add the op to its family's OPS in cnncli/ops/)")
    return table


OPS = pair(KINDS.values(), [op for family in (conv, pool, norm, activation, dense, merge) for op in family.OPS])


def op_for(kind: type[LayerKind]) -> type[Op]:
    return OPS[kind]


__all__ = ["OPS", "Op", "RegistryError", "op_for", "pair"]

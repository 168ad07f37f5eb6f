"""The layer registry: the one place that knows every layer kind (docs/design.md, section 2).

Each family module lists its kinds' declarations in `KINDS`; the parser, `cnn shapes`, `cnn layers`
and the model all look kinds up here. The ops that run them are paired with these declarations in
cnncli/ops/registry.py.
"""

from __future__ import annotations

from . import activation, conv, dense, merge, norm, pool
from .base import LayerKind, Param

_FAMILIES = (conv, pool, norm, activation, dense, merge)

KINDS: dict[str, type[LayerKind]] = {}
_BY_NAME: dict[str, type[LayerKind]] = {}
for _family in _FAMILIES:
    for _kind in _family.KINDS:
        KINDS[_kind.name] = _kind
        for _name in (_kind.name, *_kind.aliases):
            assert _name not in _BY_NAME, f"layer name {_name} registered twice"
            _BY_NAME[_name] = _kind


def lookup(name: str) -> type[LayerKind] | None:
    return _BY_NAME.get(name.lower())


def spellings() -> list[str]:
    """Every name a spec may use for a layer kind, for suggestions."""
    return sorted(_BY_NAME)


__all__ = ["KINDS", "LayerKind", "Param", "lookup", "spellings"]

"""Load a YAML spec, validate it and infer every layer's shape, size and cost. Never imports numba.

    >>> from cnncli.spec import loads
    >>> spec = loads("input: 1x28x28\\nclasses: 10\\nnet: conv k=16 f=5 p=2 -> relu -> pool 2 -> fc 10")
    >>> [(n.name, n.shape) for n in spec.nodes]
    [('conv1', (16, 28, 28)), ('relu1', (16, 28, 28)), ('pool1', (16, 14, 14)), ('fc1', (10,))]
    >>> spec.total_params
    31786

The pipeline, one module per step: yamlsrc (YAML with positions) -> sections and train (top-level
settings) -> chain and blocks (the layer language) -> graph (expand into a DAG, infer shapes) ->
network (the checked Spec and its totals; memory and summary derive from it, memory with the engine's
own rules in fusion, backward and workspace). loader runs it.
"""

from __future__ import annotations

from ..errors import UserError
from .graph import Fork, Identity, Node
from .loader import load, loads
from .network import Spec

__all__ = ["Spec", "Node", "Fork", "Identity", "load", "loads", "UserError"]

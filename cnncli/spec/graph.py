"""Expand a parsed spec (blocks, repeats, branches) into a DAG of named layers and infer its shapes.

The DAG lists nodes in execution order; each node names its inputs (-1 is the network input).
A parallel tree of the same nodes keeps the branch structure for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import LayerError, UserError, Where
from ..layers import KINDS, LayerKind, lookup, spellings
from ..layers.base import Inferred, Shape
from ..limits import MAX_BLOCK_DEPTH, MAX_EXPANDED_CHARS, MAX_LAYERS, MAX_NESTING, MAX_STEPS
from . import chain as chains
from .blocks import Block, substitute
from .chain import Arg, Call, Chain, Merge, Repeat, suggest
from .yamlsrc import Text

INPUT = -1
DROPPED_HINT = ("a warning: pad so that (size - kernel + 2*padding) divides by the stride, or use ceil=true "
                "on pooling; --strict makes it an error")


@dataclass
class Node:
    index: int
    name: str
    kind: type[LayerKind]
    params: dict[str, Any]
    text: str  # the layer as written, after block substitution
    where: Where
    calls: list[str]
    inputs: list[int]
    # filled in by infer()
    in_shapes: list[Shape] = field(default_factory=list)
    info: Inferred | None = None
    rf: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)

    @property
    def shape(self) -> Shape:
        assert self.info is not None
        return self.info.shape

    def error(self, exc: LayerError) -> UserError:
        return UserError(exc.message, exc.hint, self.where, self.text, self.name, list(self.calls))


@dataclass
class Fork:
    """A merge node and the branches that feed it, for display."""

    node: Node
    branches: list[list["Fork | Node | Identity"]]


@dataclass
class Identity:
    """An `id` branch, shown in the tree but computing nothing."""

    text: str = "id"


TreeItem = Node | Fork | Identity


class _Scope:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.counters: dict[str, int] = {}
        self.names: set[str] = set()

    def name(self, base: str, explicit: str | None, where: Where, text: str) -> str:
        if explicit is None:
            self.counters[base] = self.counters.get(base, 0) + 1
            explicit = f"{base}{self.counters[base]}"
            while explicit in self.names:  # a user name= took it already
                self.counters[base] += 1
                explicit = f"{base}{self.counters[base]}"
        elif explicit in self.names:
            raise UserError(f"the name '{explicit}' is used twice in the same scope",
                            "names must be unique; remove name= or choose another", where, text)
        self.names.add(explicit)
        return self.prefix + explicit


def is_merge(name: str) -> bool:
    kind = lookup(name)
    return bool(kind and kind.is_merge)


class Expander:
    """Walks the chains, calling blocks and unrolling repeats, within the bounds of cnncli.limits."""

    def __init__(self, blocks: dict[str, Block], defaults: dict[str, dict[str, Any]]):
        self.blocks = blocks
        self.defaults = defaults
        self.nodes: list[Node] = []
        self.steps = 0  # items visited: a repeat of ids or blocks calling each other add no layers, but take time
        self.depth = 0  # chains open inside one another, across block calls
        self.chars = 0  # characters of substituted block bodies parsed so far
        self.parsed: dict[tuple, Chain] = {}  # a block body parsed once per distinct arguments

    def expand(self, texts: list[Text]) -> tuple[list[Node], list[TreeItem], int]:
        scope = _Scope("")
        current, tree = INPUT, []
        for text in texts:
            current, sub = self.chain(chains.parse(text, is_merge), current, scope, [], [])
            tree += sub
        return self.nodes, tree, current

    # -- walking the syntax tree

    def chain(self, chain: Chain, current: int, scope: _Scope, calls: list[str], stack: list[str]):
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise UserError(f"parentheses, merges and block calls are nested more than {MAX_NESTING} deep",
                            "flatten the chain or the blocks", _place(chain), None, None, list(calls))
        tree: list[TreeItem] = []
        for item in chain.items:
            current, sub = self.item(item, current, scope, calls, stack)
            tree += sub
        self.depth -= 1
        return current, tree

    def item(self, item, current, scope, calls, stack):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise UserError(f"expanding the net takes more than {MAX_STEPS:,} steps (layers, ids, repeats and "
                            "block calls, each counted every time it is unrolled)",
                            "lower the repeat counts, or check blocks that call other blocks several times",
                            _place(item), None, None, list(calls))
        if isinstance(item, Chain):
            return self.chain(item, current, scope, calls, stack)
        if isinstance(item, Repeat):
            tree = []
            for _ in range(item.count):
                current, sub = self.item(item.body, current, scope, calls, stack)
                tree += sub
            return current, tree
        if isinstance(item, Merge):
            return self.merge(item, current, scope, calls, stack)
        if item.name in self.blocks:
            return self.block(item, current, scope, calls, stack)
        return self.layer(item, current, scope, calls)

    def layer(self, call: Call, current: int, scope: _Scope, calls: list[str]):
        where = call.where
        kind = lookup(call.name)
        if kind is None:
            raise self.unknown(call, where, calls)
        if call.parenthesised:
            raise UserError(f"{kind.name} is a layer, not a block: it takes no parentheses",
                            f"write e.g. {kind.example}", where, call.text, None, list(calls))
        if kind.is_merge:
            raise UserError(f"{kind.name} joins branches and needs them in parentheses",
                            f"write e.g. {kind.example}", where, call.text, None, list(calls))
        if kind.passthrough:
            if call.args:
                raise UserError(f"{call.name} takes no parameters", None, where, call.text, None, list(calls))
            return current, [Identity(call.text)]
        params = self.params(kind, call.args, call, calls)
        node = self.add(kind, params, call.text, where, calls, [current], scope)
        return node.index, [node]

    def merge(self, merge: Merge, current, scope, calls, stack):
        kind = lookup(merge.name)
        assert kind is not None
        where = merge.where
        params = self.params(kind, merge.args, merge, calls)
        name = scope.name(kind.name, params.pop("name"), where, merge.text)
        outputs, branches = [], []
        for branch in merge.branches:
            out, sub = self.chain(branch, current, scope, calls, stack)
            outputs.append(out)
            branches.append(sub)
        node = self.add(kind, params, merge.text, where, calls, outputs, None, name)
        return node.index, [Fork(node, branches)]

    def block(self, call: Call, current, scope: _Scope, calls, stack):
        block = self.blocks[call.name]
        where = call.where
        if block.name in stack:
            cycle = " -> ".join(stack[stack.index(block.name):] + [block.name])
            raise UserError(f"block {block.name} calls itself ({cycle})",
                            "blocks may call other blocks, but not in a cycle", where, call.text, None, list(calls))
        if len(stack) >= MAX_BLOCK_DEPTH:
            raise UserError(f"blocks are nested more than {MAX_BLOCK_DEPTH} deep", None, where, call.text)
        try:
            values, scope_name = block.bind(call.args, call.text, where)
        except UserError as exc:
            exc.calls += calls
            raise
        inner = _Scope(scope.name(block.name, scope_name, where, call.text) + ".")
        inner_calls = [f"in block {call.text}, called at {where}"] + calls
        tree = []
        for number, body in enumerate(block.body):
            try:
                parsed = self.parse_body(block, number, body, values)
            except UserError as exc:
                exc.calls += inner_calls
                raise
            current, sub = self.chain(parsed, current, inner, inner_calls, stack + [block.name])
            tree += sub
        return current, tree

    def parse_body(self, block: Block, number: int, body: Text, values: dict[str, str]) -> Chain:
        key = (block.name, number, tuple(sorted(values.items())))
        if key not in self.parsed:
            text = substitute(body, values, f"block {block.name}", f"the block is {block.signature()}",
                              MAX_EXPANDED_CHARS - self.chars)
            self.chars += len(text.value)
            self.parsed[key] = chains.parse(text, is_merge)
        return self.parsed[key]

    # -- nodes and parameters

    def add(self, kind, params, text, where, calls, inputs, scope, name=None) -> Node:
        if len(self.nodes) >= MAX_LAYERS:
            raise UserError(f"the network has more than {MAX_LAYERS:,} layers", "check the repeat counts", where, text)
        if name is None:
            name = scope.name(kind.name, params.pop("name"), where, text)
        node = Node(len(self.nodes), name, kind, params, text, where, list(calls), list(inputs))
        self.nodes.append(node)
        return node

    def params(self, kind: type[LayerKind], args: list[Arg], call, calls) -> dict[str, Any]:
        values: dict[str, Any] = {}
        positional = kind.positional()
        used_positional = 0
        for arg in args:
            try:
                if arg.key is None:
                    if used_positional >= len(positional):
                        names = ", ".join(p.name for p in positional)
                        raise LayerError(
                            f"unexpected value '{arg.value}'"
                            + (f": {kind.name} takes {len(positional)} value{'s' if len(positional) > 1 else ''} "
                               f"without a name ({names})" if positional else f": {kind.name} takes only key=value settings"),
                            _usage(kind),
                        )
                    param = positional[used_positional]
                    used_positional += 1
                else:
                    param = kind.param(arg.key)
                    if param is None:
                        close = suggest(arg.key, [p.name for p in kind.all_params()])
                        raise LayerError(f"{kind.name} has no parameter '{arg.key}'",
                                         (f"did you mean {close}? " if close else "") + _usage(kind))
                if param.name in values:
                    raise LayerError(f"{param.name} is given twice", _usage(kind))
                values[param.name] = param.parse(arg.value)
            except LayerError as exc:
                raise UserError(exc.message, exc.hint, call.source.where(arg.offset), call.text, None,
                                list(calls)) from None
        for param in kind.all_params():
            if param.name in values:
                continue
            if param.name in self.defaults.get(kind.name, {}):
                values[param.name] = self.defaults[kind.name][param.name]
            elif param.required:
                raise UserError(f"{kind.name} needs {param.name} ({param.doc})", _usage(kind),
                                call.where, call.text, None, list(calls))
            else:
                values[param.name] = None if param.default is None else param.parse(param.default)
        return values

    def unknown(self, call: Call, where: Where, calls) -> UserError:
        close = suggest(call.name, spellings() + list(self.blocks))
        hint = f"did you mean '{close}'? " if close else ""
        hint += "layer kinds: " + ", ".join(KINDS)
        if self.blocks:
            hint += "; blocks: " + ", ".join(self.blocks)
        return UserError(f"unknown layer kind '{call.name}'", hint, where, call.text, None, list(calls))


def _place(item) -> Where:
    """Where an item of a parsed chain begins."""
    while isinstance(item, Chain):
        item = item.items[0]
    return item.where


def _usage(kind: type[LayerKind]) -> str:
    named = ", ".join(p.name for p in kind.params)
    return f"e.g. {kind.example}; {kind.name} takes " + (named or "no parameters") + f" (cnn layers {kind.name})"


def infer(nodes: list[Node], input_shape: Shape) -> list[UserError]:
    """Fill in every node's shapes, sizes and receptive field; return the warnings."""
    warnings: list[UserError] = []
    for node in nodes:
        ins = [input_shape if i == INPUT else nodes[i].shape for i in node.inputs]
        try:
            node.info = node.kind().infer(node.params, ins)
        except LayerError as exc:
            raise node.error(exc) from None
        node.in_shapes = ins
        rf_in = [(1, 1) if i == INPUT else nodes[i].rf for i in node.inputs]
        jump_in = [(1, 1) if i == INPUT else nodes[i].jump for i in node.inputs]
        r = (max(r[0] for r in rf_in), max(r[1] for r in rf_in))
        j = (max(x[0] for x in jump_in), max(x[1] for x in jump_in))
        k, s = node.info.rf_kernel, node.info.rf_stride
        node.rf = (r[0] + (k[0] - 1) * j[0], r[1] + (k[1] - 1) * j[1])
        node.jump = (j[0] * s[0], j[1] * s[1])
        warnings += [node.error(LayerError(text, DROPPED_HINT)) for text in node.info.warnings]
    return warnings

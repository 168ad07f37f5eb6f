"""Parsers for the top-level settings of a spec other than `train:` (see spec/train.py): each
takes the YAML node of one setting and returns its checked value, or raises a UserError there."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ..errors import LayerError, UserError, printable
from ..layers import KINDS, lookup
from ..layers.base import Shape, describe_shape
from ..limits import MAX_NUMBER_DIGITS
from .blocks import Block, parse_signature, substitute
from .chain import suggest
from . import yamlsrc
from .yamlsrc import Text, type_name


def name(node, file: str) -> str:
    if node is None:
        return Path(file).stem if not file.startswith("<") else "network"
    if not isinstance(node.value, (str, int)) or isinstance(node.value, bool):
        raise UserError(f"name must be text, not {type_name(node.value)}", None, node.where)
    return str(node.value)


def description(node) -> str | None:
    """One line of free text (`cnn zoo` shows it); line breaks in the YAML become spaces."""
    if node is None:
        return None
    if not isinstance(node.value, str):
        raise UserError(f"description must be text, not {type_name(node.value)}", None, node.where)
    return " ".join(node.value.split())


_SHAPE = re.compile(r"^\s*([0-9]+)\s*[x×,*]\s*([0-9]+)\s*[x×,*]\s*([0-9]+)\s*$")


def input_shape(node) -> Shape:
    value = node.value
    dims = None
    if isinstance(value, str):
        m = _SHAPE.match(value)
        if m and max(len(g) for g in m.groups()) > MAX_NUMBER_DIGITS:
            raise UserError(f"input {printable(value, 40)} is too large", f"numbers in a spec have at most {MAX_NUMBER_DIGITS} digits",
                            node.where)
        dims = tuple(int(g) for g in m.groups()) if m else None
    elif isinstance(value, list) and len(value) == 3 and all(
        isinstance(v.value, int) and not isinstance(v.value, bool) for v in value
    ):
        dims = tuple(v.value for v in value)
    if dims is None:
        hint = "write channels x height x width, e.g. 1x28x28 (grey) or 3x32x32 (colour), or [1, 28, 28]"
        if isinstance(value, str) and re.match(r"^\s*\d+\s*x\s*\d+\s*$", value):
            hint = f"add the channels in front: 1x{value.strip()} (grey) or 3x{value.strip()} (colour)"
        raise UserError(f"input must be C x H x W, not {type_name(value)}", hint, node.where)
    if min(dims) < 1:
        raise UserError(f"input {describe_shape(dims)} has a zero size", "every dimension must be at least 1", node.where)
    return dims


def count(node, key: str) -> int | None:
    if node is None:
        return None
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (key == "classes" and value < 2):
        need = "a whole number of at least 2" if key == "classes" else "a whole number of at least 1"
        raise UserError(f"{key} must be {need}, not {type_name(value)}",
                        "for a single output use output: 1 (regression)" if key == "classes" else None, node.where)
    return value


def chain_texts(node, what: str) -> list[Text]:
    """A chain string, or a list of chain strings (one stage per line)."""
    items = node.value if isinstance(node.value, list) else [node]
    texts = []
    for item in items:
        if not isinstance(item.value, str) or not item.value.strip():
            raise UserError(
                f"each item of {what} must be a chain of layers as text, not {type_name(item.value)}",
                "e.g. conv k=16 f=5 p=2 -> relu (quote it if it contains ': ' or starts with '[')", item.where,
            )
        texts.append(item.text)
    if not texts:
        raise UserError(f"{what} is empty", "list at least one layer", node.where)
    return texts


def variables(node) -> dict[str, str]:
    """The spec's `vars:` as text to substitute, e.g. {width: 16} -> {"width": "16"}."""
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"vars: must map names to values, not {type_name(node.value)}",
                        "e.g. vars: {width: 16, rate: 0.25}", node.where)
    out = {}
    for key, item in node.value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"'{printable(key)}' is not a variable name", "use letters, digits and _, e.g. width",
                            item.where)
        value = item.value
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str) and not value.strip()):
            raise UserError(f"vars.{key} must be a number or a word, not {type_name(value)}",
                            f"e.g. {key}: 16", item.where)
        out[key] = str(value)
    return out


def net_texts(node, values: dict[str, str]) -> list[Text]:
    """net:'s chains with the spec's vars substituted."""
    hint = ("declare it under vars:, e.g. vars: {name: 16}" if not values
            else "the spec's vars are: " + ", ".join(values))
    return [substitute(text, values, "the spec's vars", hint) if "$" in text.value else text
            for text in chain_texts(node, "net")]


def blocks(node) -> dict[str, Block]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"blocks: must be a mapping of 'name(params): body', not {type_name(node.value)}",
                        "e.g. blocks: {'vgg(k, n)': '(conv k=$k f=3 p=1 -> relu) x$n -> pool 2'}", node.where)
    found: dict[str, Block] = {}
    for key, body in node.value.items():
        block, params, values = parse_signature(key, body.where, lambda n: lookup(n) is not None)
        if block in found:
            raise UserError(f"block {block} is defined twice", "give each block its own name", body.where)
        found[block] = Block(block, params, values, chain_texts(body, f"block {block}"), body.where)
    return found


@functools.cache
def shipped_blocks() -> dict[str, Block]:
    """The blocks in shipped-blocks.yaml (such as `se`), callable from every spec."""
    path = Path(__file__).with_name("shipped-blocks.yaml")
    return blocks(yamlsrc.load(path.read_text(encoding="utf-8"), f"cnncli/spec/{path.name}"))


def defaults(node) -> dict[str, dict[str, Any]]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"defaults: must map layer kinds to settings, not {type_name(node.value)}",
                        "e.g. defaults: {conv: {bias: false}, bn: {eps: 0.001}}", node.where)
    out: dict[str, dict[str, Any]] = {}
    for kind_name, settings in node.value.items():
        kind = lookup(kind_name)
        if kind is None or kind.passthrough:
            close = suggest(kind_name, KINDS)
            raise UserError(f"defaults for unknown layer kind '{kind_name}'",
                            (f"did you mean '{close}'? " if close else "") + "layer kinds: " + ", ".join(KINDS),
                            settings.where)
        if not isinstance(settings.value, dict):
            raise UserError(f"defaults.{kind_name} must map parameters to values, not {type_name(settings.value)}",
                            "e.g. conv: {bias: false}", settings.where)
        parsed = out.setdefault(kind.name, {})
        for param_name, value in settings.value.items():
            param = kind.param(param_name)
            if param is None or param.name == "name":
                close = suggest(param_name, [p.name for p in kind.params])
                raise UserError(f"{kind.name} has no parameter '{param_name}' to default",
                                (f"did you mean {close}? " if close else "")
                                + f"{kind.name} takes: {', '.join(p.name for p in kind.params) or 'nothing'}",
                                value.where)
            try:
                parsed[param.name] = param.parse(value.value)
            except LayerError as exc:
                raise UserError(exc.message, exc.hint, value.where) from None
    return out

"""YAML with positions: every value remembers its file, line and column for error messages.

Uses PyYAML's safe loader only (no Python tags, no eval); duplicate keys are an error rather
than silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import UserError, Where


@dataclass
class Text:
    """A string from the spec that can say where each of its characters stands in the file."""

    value: str
    file: str
    buffer: str = ""
    start: int = 0
    end: int = 0
    _pointers: list[int] | None = field(default=None, repr=False)
    origin: list[int] | None = None  # after substitution: offset in the original text for each char

    def where(self, offset: int = 0) -> Where:
        if not self.buffer:
            return Where(self.file)
        if self.origin is not None:
            offset = self.origin[min(max(offset, 0), len(self.origin) - 1)] if self.origin else 0
        pointers = self._align()
        pointer = pointers[min(max(offset, 0), len(pointers) - 1)] if pointers else self.start
        line = self.buffer.count("\n", 0, pointer) + 1
        column = pointer - (self.buffer.rfind("\n", 0, pointer) + 1) + 1
        return Where(self.file, line, column)

    def _align(self) -> list[int]:
        # The value's characters are a subsequence of the raw scalar (plain, quoted or block style);
        # a greedy match maps each to its place, folded line breaks standing for spaces.
        if self._pointers is None:
            source = self.original_value
            pointers, j = [], self.start
            for ch in source:
                while j < self.end and not (
                    self.buffer[j] == ch or (ch in " \n" and self.buffer[j] in " \n")
                ):
                    j += 1
                pointers.append(min(j, max(self.end - 1, self.start)))
                j += 1
            self._pointers = pointers
        return self._pointers

    # `original_value` is the text as it stands in the file, before any block substitution.
    original_value: str = ""

    def __post_init__(self) -> None:
        if not self.original_value:
            self.original_value = self.value


@dataclass
class Node:
    """A YAML value: a scalar, a dict of Nodes, or a list of Nodes, with its position."""

    value: Any
    where: Where
    text: Text | None = None  # for string scalars


def load(text: str, file: str) -> Node:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise UserError("the file is empty", "a spec needs at least `input:` and `net:`", Where(file))
        return _convert(loader, root, file, text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = Where(file, mark.line + 1, mark.column + 1) if mark else Where(file)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        raise UserError(message, _yaml_hint(problem or ""), where) from None
    finally:
        loader.dispose()


def _yaml_hint(problem: str) -> str:
    if "mapping values" in problem:
        return "a ':' inside a value needs quotes, or the line is indented wrongly"
    if "tab" in problem or "'\\t'" in problem:
        return "YAML indents with spaces, not tabs"
    if "could not find expected ':'" in problem or "simple key" in problem:
        return "each setting is `key: value` on its own line"
    if "constructor" in problem or "tag" in problem:
        return "YAML tags (!!python/...) are not allowed in a spec"
    return "check the indentation and quoting around this place"


def _where(node: yaml.Node, file: str) -> Where:
    return Where(file, node.start_mark.line + 1, node.start_mark.column + 1)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _convert(loader: yaml.SafeLoader, node: yaml.Node, file: str, buffer: str) -> Node:
    where = _where(node, file)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise UserError(f"YAML tag {node.tag} is not allowed in a spec", "remove the tag (the part after '!!')", where)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise UserError("a key must be a plain word", None, _where(key_node, file))
            key = str(key)
            if key in out:
                raise UserError(
                    f"'{key}' is given twice", "remove one of them (YAML would silently keep the last)",
                    _where(key_node, file),
                )
            out[key] = _convert(loader, value_node, file, buffer)
            out[key].where = out[key].where if out[key].where.line else _where(key_node, file)
        return Node(out, where)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(loader, item, file, buffer) for item in node.value], where)
    value = loader.construct_object(node, deep=True)
    text = None
    if isinstance(value, str):
        text = Text(value, file, buffer, node.start_mark.index, node.end_mark.index)
    return Node(value, where, text)


def type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"'{value}'"

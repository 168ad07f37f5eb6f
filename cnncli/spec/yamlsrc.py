"""YAML with positions: every value remembers its file, line and column for error messages.

Uses PyYAML's safe loader only (no Python tags, no eval); duplicate keys are an error rather
than silently overwritten.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import SHOWN_CHARS, UserError, Where, printable
from ..limits import MAX_NUMBER_DIGITS, MAX_SPEC_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES


_LOOKAHEAD = 80  # characters: more than any escape or the indentation of a folded line


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
        return _position(self.buffer, self.file, pointer)

    def _align(self) -> list[int]:
        # The value's characters are a subsequence of the raw scalar (plain, quoted or block style);
        # a greedy match maps each to its place, folded line breaks standing for spaces. A character
        # not found close ahead came from an escape such as \e in double quotes: it maps to the escape.
        if self._pointers is None:
            source = self.original_value
            pointers, j, last = [], self.start, max(self.end - 1, self.start)
            for ch in source:
                k, ahead = j, min(self.end, j + _LOOKAHEAD)
                while k < ahead and not (self.buffer[k] == ch or (ch in " \n" and self.buffer[k] in " \n")):
                    k += 1
                if k < ahead:
                    j = k
                pointers.append(min(j, last))
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
    """Parse spec text; any problem, including a hostile document, is a UserError with a position."""
    if len(text) > MAX_SPEC_BYTES:
        raise UserError(f"the spec has {len(text):,} characters, more than the limit of {MAX_SPEC_BYTES:,}",
                        "a spec is a few lines of YAML; blocks: and repeats (x N) describe large networks", Where(file))
    _check_characters(text, file)
    loader = _SpecLoader(text, file)
    try:
        root = loader.get_single_node()
        if root is None:
            raise UserError("the file is empty", "a spec needs at least `input:` and `net:`", Where(file))
        return _Converter(loader, file, text).convert(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = Where(file, mark.line + 1, mark.column + 1) if mark else Where(file)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        raise UserError(message, _yaml_hint(problem or ""), where) from None
    finally:
        loader.dispose()


# PyYAML's own rule for characters a YAML file may hold (its Reader refuses the rest with a traceback).
_NOT_YAML = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _check_characters(text: str, file: str) -> None:
    bad = _NOT_YAML.search(text)
    if bad:
        raise UserError(f"character {printable(bad.group())} (U+{ord(bad.group()):04X}) is not allowed in a spec",
                        "a spec is plain text: remove the character", _position(text, file, bad.start()))


def _position(text: str, file: str, index: int) -> Where:
    starts = _line_starts(text)
    line = bisect.bisect_right(starts, index)
    return Where(file, line, index - starts[line - 1] + 1)


@functools.lru_cache(maxsize=8)
def _line_starts(buffer: str) -> list[int]:
    """Offsets where each line begins; cached per spec text (a str caches its own hash)."""
    return [0] + [m.end() for m in re.finditer("\n", buffer)]


_TEXT_TAGS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge")
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_SCALAR_TAGS = ("tag:yaml.org,2002:str", _INT, _FLOAT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null")
_NUMBER_CHARS = MAX_NUMBER_DIGITS + 12  # room for a sign, underscores, a point and an exponent


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, where dates, `=` and `<<` are plain text (a spec has no use for them, and a
    date such as 2026-13-45 made PyYAML raise), and with a bound on nesting and on the number of values."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _TEXT_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.composed = 0

    def fetch_flow_collection_start(self, token_class):
        # The scanner looks ahead through a whole flow collection ([[[...]]]) before the composer sees
        # it, in quadratic time: stop at the first bracket too deep.
        if self.flow_level >= MAX_YAML_DEPTH:
            raise _too_deep(self.get_mark(), self.file)
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        self.composed += 1
        if self.composed > MAX_YAML_VALUES:
            raise _too_many(Where(self.file, mark.line + 1, mark.column + 1))
        if self.depth >= MAX_YAML_DEPTH:
            raise _too_deep(mark, self.file)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _too_deep(mark, file: str) -> UserError:
    return UserError(f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep",
                     "a spec needs only a few levels: settings, lists of chains, train options",
                     Where(file, mark.line + 1, mark.column + 1))


def _too_many(where: Where) -> UserError:
    return UserError(f"the YAML holds more than {MAX_YAML_VALUES:,} values (aliases *name counted each time they "
                     "are used)", "write large networks with repeats (x N) and blocks:, not long YAML lists", where)


class _Converter:
    """YAML nodes -> Nodes with positions, bounded: aliases may not expand past the limits or into themselves."""

    def __init__(self, loader: _SpecLoader, file: str, buffer: str):
        self.loader, self.file, self.buffer = loader, file, buffer
        self.values = 0
        self.chars = 0
        self.open: set[int] = set()  # collections being converted, to catch an alias inside itself

    def convert(self, node: yaml.Node) -> Node:
        where = _where(node, self.file)
        self.values += 1
        if self.values > MAX_YAML_VALUES:
            raise _too_many(where)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _PLAIN_TAGS:
            raise _tag_refused(node.tag, where)
        if id(node) in self.open:
            raise UserError("a YAML alias (*name) refers to the list or mapping that contains it",
                            "an alias may only repeat a value defined before it, outside it", where)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return Node([self.convert(item) for item in node.value], where)
            return Node(self.mapping(node), where)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node).value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)):
                raise UserError("a key must be a plain word", None, _where(key_node, self.file))
            key = str(key)
            if key in out:
                raise UserError(
                    f"'{key}' is given twice", "remove one of them (YAML would silently keep the last)",
                    _where(key_node, self.file),
                )
            out[key] = self.convert(value_node)
            out[key].where = out[key].where if out[key].where.line else _where(key_node, self.file)
        return out

    def scalar(self, node: yaml.ScalarNode) -> Node:
        where = _where(node, self.file)
        if node.tag not in _SCALAR_TAGS:  # refused before anything is constructed
            raise _tag_refused(node.tag, where)
        self.chars += len(node.value)
        if self.chars > MAX_SPEC_BYTES:
            raise UserError(f"the YAML expands to more than {MAX_SPEC_BYTES:,} characters (aliases *name counted "
                            "each time they are used)", "repeat layers with x N or blocks:, not with aliases", where)
        if node.tag in (_INT, _FLOAT) and len(node.value) > _NUMBER_CHARS:
            raise _too_large(node.value, where)
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{node.value} is not a finite number", "write an ordinary number such as 0.001", where)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_NUMBER_DIGITS:
            raise _too_large(node.value, where)
        text = None
        if isinstance(value, str):
            text = Text(value, self.file, self.buffer, node.start_mark.index, node.end_mark.index)
        return Node(value, where, text)


def _tag_refused(tag: str, where: Where) -> UserError:
    return UserError(f"YAML tag {printable(tag, SHOWN_CHARS)} is not allowed in a spec",
                     "remove the tag (the part after '!!')", where)


def _too_large(written: str, where: Where) -> UserError:
    return UserError(f"the number {printable(written, 40)} is too large",
                     f"numbers in a spec have at most {MAX_NUMBER_DIGITS} digits", where)


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

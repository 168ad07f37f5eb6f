"""The chain language: `conv k=16 f=5 -> bn -> relu`, `(a -> b) x2`, `add(a | b)`, `vgg(64, 2)`.

Grammar (whitespace separates words; `->`, `|`, `(`, `)` and `,` stand alone):

    chain  := item ('->' item)*
    item   := atom [repeat]              repeat := 'xN' | 'x N'
    atom   := '(' chain ')'
            | NAME '(' chain ('|' chain)* ')' [ARG*]     a merge (add, cat)
            | NAME '(' [ARG (',' ARG)*] ')' [ARG*]       a block call
            | NAME ARG*                                  a layer, or a block call without parentheses
    ARG    := VALUE | KEY=VALUE
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

from ..errors import UserError, Where, printable
from ..limits import MAX_NESTING, MAX_REPEAT
from .yamlsrc import Text

# ----------------------------------------------------------------------------- syntax tree


@dataclass
class Arg:
    key: str | None
    value: str
    offset: int


class _Placed:
    """An item that knows its place in the file; computed once, as a block body parsed once is
    expanded at every call."""

    offset: int
    source: Text

    @functools.cached_property
    def where(self) -> Where:
        return self.source.where(self.offset)


@dataclass
class Call(_Placed):
    """A layer or a block call, as written. Which one it is is decided when blocks are known."""

    name: str
    args: list[Arg]
    offset: int
    text: str
    source: Text
    parenthesised: bool = False


@dataclass
class Merge(_Placed):
    name: str  # add / cat, or an alias
    branches: list["Chain"]
    args: list[Arg]
    offset: int
    text: str
    source: Text


@dataclass
class Repeat(_Placed):
    body: "Item"
    count: int
    offset: int
    source: Text


@dataclass
class Chain:
    items: list["Item"] = field(default_factory=list)


Item = Call | Merge | Repeat | Chain


# ----------------------------------------------------------------------------- tokens

_TOKEN = re.compile(r"\s*(?:(->)|([|(),])|((?:[^\s|(),-]|-(?!>))+))")
_REPEAT = re.compile(r"^[x×]([0-9]+)$")
_DIGITS = re.compile(r"[0-9]+")


@dataclass
class _Tok:
    kind: str  # '->', '|', '(', ')', ',', 'word', 'end'
    text: str
    start: int
    end: int


def _tokenize(source: Text) -> list[_Tok]:
    text, pos, out = source.value, 0, []
    while True:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:]
            if rest.strip():
                start = pos + len(rest) - len(rest.lstrip())
                raise UserError(f"unexpected character '{text[start]}'", None, source.where(start))
            out.append(_Tok("end", "", len(text), len(text)))
            return out
        arrow, punct, word = m.groups()
        start = m.start(m.lastindex)
        if arrow:
            out.append(_Tok("->", arrow, start, m.end()))
        elif punct:
            out.append(_Tok(punct, punct, start, m.end()))
        else:
            if "$" in word:
                raise UserError(
                    f"'{word}' uses '$' without a name",
                    "$name refers to a block parameter or to one of the spec's vars:", source.where(start + word.index("$")),
                )
            out.append(_Tok("word", word, start, m.end()))
        pos = m.end()


def _is_repeat(tokens: list[_Tok], i: int) -> bool:
    tok = tokens[i]
    if tok.kind != "word":
        return False
    if _REPEAT.match(tok.text):
        return True
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return tok.text in ("x", "×") and nxt is not None and nxt.kind == "word" and bool(_DIGITS.fullmatch(nxt.text))


# ----------------------------------------------------------------------------- parser


def parse(source: Text, is_merge) -> Chain:
    """Parse chain text. `is_merge(name)` says whether NAME( opens branches (add, cat)."""
    return _Parser(source, is_merge).parse()


class _Parser:
    def __init__(self, source: Text, is_merge):
        self.source = source
        self.text = source.value
        self.tokens = _tokenize(source)
        self.i = 0
        self.depth = 0
        self.is_merge = is_merge

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def error(self, message: str, hint: str | None = None, tok: _Tok | None = None) -> UserError:
        return UserError(message, hint, self.source.where((tok or self.tok).start))

    def parse(self) -> Chain:
        if self.tok.kind == "end":
            raise self.error("the network is empty", "write layers joined by '->', e.g. conv k=16 f=3 -> relu -> fc 10")
        chain = self.chain()
        if self.tok.kind != "end":
            raise self.error(*self._stray(self.tok))
        return chain

    def _stray(self, tok: _Tok) -> tuple[str, str]:
        if tok.kind == ")":
            return "unmatched ')'", "remove it or add the '(' it closes"
        if tok.kind in ("|", ","):
            return f"'{tok.text}' outside add(...), cat(...) or a block call", "branches go inside add( | ) or cat( | )"
        return f"expected '->' before '{tok.text}'", "layers are joined with '->'"

    def chain(self) -> Chain:
        self.depth += 1  # every '(' and merge opens a chain inside the current one
        if self.depth > MAX_NESTING:
            raise self.error(f"parentheses and merges are nested more than {MAX_NESTING} deep",
                             "flatten the chain, or move the inner part into a block")
        items = [self.item()]
        while self.tok.kind == "->":
            self.i += 1
            items.append(self.item())
        self.depth -= 1
        return Chain(items)

    def item(self):
        start = self.tok.start
        atom = self.atom()
        if _is_repeat(self.tokens, self.i):
            tok = self.tok
            joined = _REPEAT.match(tok.text)
            digits = joined.group(1) if joined else self.tokens[self.i + 1].text
            self.i += 1 if joined else 2
            count = int(digits) if len(digits) <= len(str(MAX_REPEAT)) else 0
            if not 1 <= count <= MAX_REPEAT:
                raise self.error(f"repeat count {printable(digits, 20)} is out of range",
                                 f"repeat between 1 and {MAX_REPEAT} times", tok)
            return Repeat(atom, count, start, self.source)
        return atom

    def atom(self):
        tok = self.tok
        if tok.kind == "(":
            self.i += 1
            inner = self.chain()
            self.expect(")", tok, "a '(' opened here is never closed")
            return inner
        if tok.kind != "word":
            what = "end of the text" if tok.kind == "end" else f"'{tok.text}'"
            raise self.error(f"expected a layer but found {what}",
                             "every '->' and '|' must have a layer on both sides")
        if "=" in tok.text:
            raise self.error(f"expected a layer name but found '{tok.text}'",
                             "a layer starts with its kind, e.g. conv k=16 f=3")
        self.i += 1
        nxt = self.tok
        if nxt.kind == "(" and nxt.start == tok.end:
            if self.is_merge(tok.text):
                return self.merge(tok)
            return self.call_with_parens(tok)
        args = self.args()
        return Call(tok.text, args, tok.start, self.text[tok.start : self._end()].strip(), self.source)

    def _end(self) -> int:
        return self.tokens[self.i - 1].end

    def args(self) -> list[Arg]:
        out = []
        while self.tok.kind == "word" and not _is_repeat(self.tokens, self.i):
            out.append(self.arg(self.tok))
            self.i += 1
        return out

    def arg(self, tok: _Tok) -> Arg:
        if "=" in tok.text:
            key, _, value = tok.text.partition("=")
            if not key or not value:
                raise self.error(f"'{tok.text}' is not key=value", "write e.g. k=16 with no spaces around '='", tok)
            return Arg(key.lower(), value, tok.start)
        return Arg(None, tok.text, tok.start)

    def expect(self, kind: str, opener: _Tok, message: str) -> None:
        if self.tok.kind != kind:
            if self.tok.kind == "end":
                raise self.error(message, f"add the missing '{kind}'", opener)
            raise self.error(*self._stray(self.tok)) if self.tok.kind != "|" else self.error(
                "'|' is not allowed here", "branches go inside add( | ) or cat( | )")
        self.i += 1

    def merge(self, name: _Tok) -> Merge:
        opener = self.tok
        self.i += 1
        branches = [self.chain()]
        while self.tok.kind == "|":
            self.i += 1
            branches.append(self.chain())
        self.expect(")", opener, f"{name.text}( is never closed")
        if len(branches) < 2:
            raise self.error(f"{name.text}(...) needs at least two branches separated by '|'",
                             f"e.g. {name.text}(conv k=64 f=3 p=1 | id)", name)
        args = self.args()
        return Merge(name.text, branches, args, name.start, self.text[name.start : self._end()].strip(), self.source)

    def call_with_parens(self, name: _Tok) -> Call:
        opener = self.tok
        self.i += 1
        args: list[Arg] = []
        while self.tok.kind != ")":
            if self.tok.kind != "word":
                if self.tok.kind == "end":
                    raise self.error(f"{name.text}( is never closed", "add the missing ')'", opener)
                raise self.error(f"unexpected '{self.tok.text}' in the arguments of {name.text}(...)",
                                 f"block arguments are values separated by commas, e.g. {name.text}(64, 2)")
            args.append(self.arg(self.tok))
            self.i += 1
            if self.tok.kind == ",":
                self.i += 1
            elif self.tok.kind == "word":
                raise self.error("block arguments are separated by commas", f"e.g. {name.text}(64, 2)")
        self.i += 1
        args += self.args()
        return Call(name.text, args, name.start, self.text[name.start : self._end()].strip(), self.source, True)


def suggest(word: str, choices) -> str | None:
    if len(word) > 40:  # difflib's time grows with the product of the lengths; no name is this long
        return None
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None

"""Parameterised blocks: `vgg(k, n=2): (conv k=$k f=3 p=1 -> relu) x$n -> pool 2`.

Substitution is textual and safe: `$name` is replaced by the argument as written, `${expr}` by the
value of integer arithmetic over the arguments (+ - * / and parentheses; / floors). Never eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SHOWN_CHARS, UserError, Where, printable
from ..layers.base import eval_int
from ..limits import MAX_EXPANDED_CHARS
from .chain import Arg, suggest
from .yamlsrc import Text

_SIGNATURE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")
_PARAM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=\s*(\S+))?\s*$")
# `[^}$]`: an unclosed ${ ends its search at the next $, so many of them cost linear time, not quadratic.
_VAR = re.compile(r"\$(?:\{([^}$]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NAME_IN_EXPR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Block:
    name: str
    params: list[str]
    defaults: dict[str, str]
    body: list[Text]  # one chain text, or one per list item
    where: Where

    def signature(self) -> str:
        shown = [f"{p}={self.defaults[p]}" if p in self.defaults else p for p in self.params]
        return f"{self.name}({', '.join(shown)})" if self.params else self.name

    def bind(self, args: list[Arg], call_text: str, where: Where) -> tuple[dict[str, str], str | None]:
        """Match a call's arguments to the parameters; returns the values and a `name=` if given."""
        values: dict[str, str] = {}
        scope_name = None
        positional = [a for a in args if a.key is None]
        if len(positional) > len(self.params):
            raise UserError(
                f"block {self.name} takes {len(self.params)} argument{'s' if len(self.params) != 1 else ''} "
                f"but '{call_text}' gives {len(positional)}",
                f"call it as {self.signature()}", where,
            )
        for param, arg in zip(self.params, positional):
            values[param] = arg.value
        for arg in args:
            if arg.key is None:
                continue
            if arg.key == "name" and "name" not in self.params:
                scope_name = arg.value
                continue
            if arg.key not in self.params:
                close = suggest(arg.key, self.params)
                raise UserError(
                    f"block {self.name} has no parameter '{arg.key}'",
                    (f"did you mean {close}? " if close else "") + f"it is defined as {self.signature()}", where,
                )
            if arg.key in values:
                raise UserError(f"{arg.key} is given twice in '{call_text}'", f"call it as {self.signature()}", where)
            values[arg.key] = arg.value
        for param in self.params:
            if param not in values:
                if param not in self.defaults:
                    raise UserError(
                        f"block {self.name} needs a value for {param}, but '{call_text}' gives none",
                        f"call it as {self.signature()}", where,
                    )
                values[param] = self.defaults[param]
        return values, scope_name


def parse_signature(key: str, where: Where, is_layer) -> tuple[str, list[str], dict[str, str]]:
    m = _SIGNATURE.match(key)
    if not m:
        raise UserError(f"'{key}' is not a block signature", "write it as name(param, param=default): body", where)
    name, inner = m.group(1), m.group(2)
    if is_layer(name):
        raise UserError(f"block '{name}' has the name of a layer kind", "give the block another name", where)
    params: list[str] = []
    defaults: dict[str, str] = {}
    for part in (inner or "").split(",") if (inner or "").strip() else []:
        pm = _PARAM.match(part)
        if not pm:
            raise UserError(f"'{part.strip()}' in '{key}' is not a parameter name",
                            "parameters are words, optionally with a default: name(k, s=1)", where)
        if pm.group(1) in params:
            raise UserError(f"parameter '{pm.group(1)}' appears twice in '{key}'", None, where)
        if defaults and not pm.group(2):
            raise UserError(f"parameter '{pm.group(1)}' without a default follows one with a default in '{key}'",
                            "put the parameters with defaults last", where)
        params.append(pm.group(1))
        if pm.group(2):
            defaults[pm.group(1)] = pm.group(2)
    return name, params, defaults


def substitute(body: Text, values: dict[str, str], owner: str, hint: str, room: int = MAX_EXPANDED_CHARS) -> Text:
    """Replace $name and ${expr} in chain text (a block body, or net: with the spec's vars); the
    result still maps back to the file. `owner` names what declares the names ("block vgg", "the
    spec's vars"), `hint` how to fix an unknown one.

    `room`: how many characters the result may have (arguments passed on through nested blocks can
    double the text at every level)."""
    src = body.value
    out: list[str] = []
    origin: list[int] = []
    pos = 0
    matches = list(_VAR.finditer(src))
    unclosed = {m.start() for m in re.finditer(r"\$\{", src)} - {m.start() for m in matches}
    if unclosed:
        raise UserError("'${' has no closing '}'", "write ${expression} with names but no $ inside, e.g. ${k*2}",
                        body.where(min(unclosed)))
    for m in matches:
        if len(origin) > room:
            break
        out.append(src[pos : m.start()])
        origin.extend(range(pos, m.start()))
        if m.group(2) is not None:
            replacement = _lookup(owner, hint, body, m.group(2), values, m.start())
        else:
            expr = _NAME_IN_EXPR.sub(
                lambda n: _lookup(owner, hint, body, n.group(0), values, m.start()), m.group(1)
            )
            try:
                replacement = str(eval_int(expr))
            except ValueError as exc:
                raise UserError(
                    f"cannot compute ${{{printable(m.group(1), SHOWN_CHARS)}}} = {printable(expr, SHOWN_CHARS)} "
                    f"in {owner}: {exc}",
                    "${...} takes whole numbers and + - * / ( ); / rounds down",
                    body.where(m.start()),
                ) from None
        out.append(replacement)
        origin.extend([m.start()] * len(replacement))
        pos = m.end()
    out.append(src[pos:])
    origin.extend(range(pos, len(src)))
    if len(origin) > room:
        raise UserError(f"block bodies grow to more than {MAX_EXPANDED_CHARS:,} characters after substitution",
                        f"{owner} passes long arguments on, or is called very often with different ones",
                        body.where(0))
    return Text("".join(out), body.file, body.buffer, body.start, body.end, origin=origin,
                original_value=body.original_value, _pointers=body._align())


def _lookup(owner: str, hint: str, body: Text, name: str, values: dict[str, str], offset: int) -> str:
    if name not in values:
        close = suggest(name, list(values))
        raise UserError(
            f"${name} is not {'a parameter of ' if owner.startswith('block') else 'in '}{owner}",
            (f"did you mean ${close}? " if close else "") + hint,
            body.where(offset),
        )
    return values[name]

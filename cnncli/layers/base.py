"""What every layer kind declares: its parameters and its shape/size rules.

Pure Python: `cnn shapes` reads this without importing numba.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import SHOWN_CHARS, LayerError, printable
from ..limits import MAX_NESTING, MAX_NUMBER_DIGITS

if TYPE_CHECKING:
    from .window import Window

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (N,) for flat vectors

REQUIRED = object()
DEPTHWISE = "depthwise"  # the parsed value of conv's g=dw: one group per input channel


# ----------------------------------------------------------------------------- integer arithmetic
# Values may hold integer arithmetic left by block substitution (`k=$k*2` -> `k=64*2`).
# A tiny recursive-descent evaluator: numbers, + - * / (floor division), parentheses. Never eval.
# Bounded: numbers and every result below 10^MAX_NUMBER_DIGITS, parentheses and signs MAX_NESTING deep.

_ARITH_TOKEN = re.compile(r"\s*(?:([0-9]+)|(.))")
_LARGEST = 10**MAX_NUMBER_DIGITS


def eval_int(text: str) -> int:
    tokens: list[str | int] = []
    for number, other in _ARITH_TOKEN.findall(text.strip()):
        if number:
            if len(number) > MAX_NUMBER_DIGITS:
                raise ValueError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
            tokens.append(int(number))
        elif other.strip():
            if other not in "+-*/()":
                raise ValueError(f"'{other}' is not allowed in integer arithmetic")
            tokens.append(other)
    if not tokens:
        raise ValueError("empty value")
    pos = 0
    depth = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def nested(inner) -> int:
        nonlocal depth
        depth += 1
        if depth > MAX_NESTING:
            raise ValueError(f"parentheses and minus signs are nested more than {MAX_NESTING} deep")
        value = inner()
        depth -= 1
        return value

    def atom() -> int:
        tok = take() if peek() is not None else None
        if isinstance(tok, int):
            return tok
        if tok == "-":
            return -nested(atom)
        if tok == "(":
            value = nested(expr)
            if take() != ")" if peek() is not None else True:
                raise ValueError("unbalanced parentheses")
            return value
        raise ValueError("expected a number")

    def bounded(value: int) -> int:
        if abs(value) >= _LARGEST:
            raise ValueError(f"the result has more than {MAX_NUMBER_DIGITS} digits")
        return value

    def term() -> int:
        value = atom()
        while peek() in ("*", "/"):
            op, rhs = take(), atom()
            if op == "/" and rhs == 0:
                raise ValueError("division by zero")
            value = bounded(value * rhs if op == "*" else value // rhs)
        return value

    def expr() -> int:
        value = term()
        while peek() in ("+", "-"):
            op, rhs = take(), term()
            value = bounded(value + rhs if op == "+" else value - rhs)
        return value

    result = expr()
    if pos != len(tokens):
        raise ValueError("unexpected text after the number")
    return result


# ----------------------------------------------------------------------------- parameters

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Param:
    """One parameter of a layer kind. `kind` is one of the parsers in `_PARSERS`."""

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    positional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_type(self) -> str:
        return {
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "pair": "a number or HxW (e.g. 3 or 3x5)",
            "padding": "a number, HxW, or 'same'",
            "groups": "a number or 'dw' (depthwise: one group per input channel)",
            "choice": "one of " + ", ".join(self.choices),
            "name": "a name of letters, digits and _",
            "ints": "whole numbers separated by commas, e.g. 30,60",
        }[self.kind]

    def parse(self, raw: Any) -> Any:
        """Turn text from the spec (or a YAML scalar from `defaults:`) into a typed value."""
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw).strip()
        try:
            value = _PARSERS[self.kind](self, text)
        except ValueError as exc:
            raise LayerError(
                f"{self.name}={printable(text, SHOWN_CHARS)} is not valid: {exc}",
                f"{self.name} takes {self.describe_type()}" + (f" ({self.doc})" if self.doc else ""),
            ) from None
        return value

    def _check_range(self, value: float) -> None:
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {_fmt(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {_fmt(self.maximum)}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _parse_int(p: Param, text: str) -> int:
    value = eval_int(text)
    p._check_range(value)
    return value


def _parse_float(p: Param, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            value = float(eval_int(text))
        except ValueError:
            raise ValueError("expected a number such as 0.5 or 1e-3") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    p._check_range(value)
    return value


def _parse_bool(p: Param, text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("expected true or false")


def _parse_pair(p: Param, text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) == 1:
        a = b = eval_int(parts[0])
    elif len(parts) == 2:
        a, b = eval_int(parts[0]), eval_int(parts[1])
    else:
        raise ValueError("expected N or HxW")
    p._check_range(a)
    p._check_range(b)
    return (a, b)


def _parse_padding(p: Param, text: str):
    if text.lower() == "same":
        return "same"
    return _parse_pair(p, text)


def _parse_groups(p: Param, text: str):
    if text.lower() in ("dw", DEPTHWISE):
        return DEPTHWISE
    return _parse_int(p, text)


def _parse_choice(p: Param, text: str) -> str:
    low = text.lower()
    if low not in p.choices:
        raise ValueError("expected one of " + ", ".join(p.choices))
    return low


def _parse_name(p: Param, text: str) -> str:
    if not _NAME.match(text):
        raise ValueError("use letters, digits and _ only, starting with a letter")
    return text


def _parse_ints(p: Param, text: str) -> tuple[int, ...]:
    values = tuple(eval_int(part) for part in text.replace(":", ",").split(",") if part.strip())
    if not values:
        raise ValueError("expected at least one number")
    for value in values:
        p._check_range(value)
    return values


_PARSERS = {
    "ints": _parse_ints,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "pair": _parse_pair,
    "padding": _parse_padding,
    "groups": _parse_groups,
    "choice": _parse_choice,
    "name": _parse_name,
}

INITS = ("default", "he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "zeros")
NAME_PARAM = Param("name", "name", None, "a stable name for this layer, used in shapes, checkpoints and errors")
INIT_PARAM = Param("init", "choice", "default", "weight initialisation; 'default' is PyTorch's", choices=INITS)


# ----------------------------------------------------------------------------- inference results


@dataclass
class Inferred:
    """What one layer does to one sample. `rf_kernel`/`rf_stride` are (h, w) for the receptive field."""

    shape: Shape
    params: int = 0
    buffers: int = 0  # non-learnable state, e.g. BN running mean/var
    macs: int = 0
    rf_kernel: tuple[int, int] = (1, 1)
    rf_stride: tuple[int, int] = (1, 1)
    warnings: list[str] = field(default_factory=list)
    window: Window | None = None  # conv and window pooling: the geometry, resolved once for this input
    groups: int = 1  # conv: the number of groups, g=dw resolved to the input channels


def describe_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def need_map(kind: str, shape: Shape) -> tuple[int, int, int]:
    """The C, H, W of an input that must be a feature map, or a clear error."""
    if len(shape) != 3:
        raise LayerError(
            f"{kind} needs a CxHxW feature map, but its input is a flat vector of {shape[0]}",
            f"put {kind} before fc/flatten/global pooling, or remove it",
        )
    return shape  # type: ignore[return-value]


# ----------------------------------------------------------------------------- layer kinds


class LayerKind:
    """A kind of layer. Subclasses set the class attributes and implement `infer`."""

    name: ClassVar[str]  # canonical spec name, also the prefix of stable node names
    aliases: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    example: ClassVar[str] = ""
    is_merge: ClassVar[bool] = False  # takes several inputs (add, cat)
    passthrough: ClassVar[bool] = False  # creates no node (id)

    def infer(self, p: dict[str, Any], inputs: list[Shape]) -> Inferred:
        raise NotImplementedError

    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        return cls.params + (NAME_PARAM,)

    @classmethod
    def param(cls, name: str) -> Param | None:
        return next((p for p in cls.all_params() if p.name == name), None)

    @classmethod
    def positional(cls) -> list[Param]:
        return [p for p in cls.params if p.positional]

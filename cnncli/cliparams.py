"""Command-line values converted without pydantic.

Recent typer releases turn every value that is not a flag into its type through a pydantic
TypeAdapter, and importing pydantic alone took longer than all the rest of `cnn shapes`
(benchmarks/startup.py measures it). cnncli's options are plain str, int, float, bool and Path values,
some with a minimum or maximum: this module converts those itself, raising typer's own error
type (so a bad value still reads `Invalid value for '--batch': ...`), and leaves anything else
(lists, choices, files) to typer. It hooks typer's private `_TyperParameter.get_runtime_param`:
where that does not exist (older typer releases convert through click and never import pydantic,
and a later one may rename it), typer is left alone and works as before, only slower to start.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SIMPLE = (str, int, float, bool, Path)
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def install() -> None:
    """Give typer's parameters the light conversion where it applies (once per process)."""
    try:
        from typer import _coercion, core
    except ImportError:  # a typer without pydantic coercion
        return
    param_cls = getattr(core, "_TyperParameter", None)
    base = getattr(_coercion, "RuntimeParam", None)
    original = getattr(param_cls, "get_runtime_param", None)
    if original is None or base is None or getattr(param_cls, "_cnncli_light", False):
        return

    class Light(base):
        def _coerce_value(self, value: Any, param, ctx) -> Any:
            return convert(self.annotation, self.parameter_info, value, param, ctx)

    def get_runtime_param(self):
        descriptor = getattr(self, "type_descriptor", None)
        if getattr(self, "_runtime_param", True) is None and light(descriptor.annotation, descriptor.parameter_info):
            self._runtime_param = Light(descriptor.parameter_info, descriptor.annotation)
        return original(self)

    param_cls.get_runtime_param = get_runtime_param
    param_cls._cnncli_light = True


_PATH_CHECKS = ("exists", "writable", "resolve_path", "allow_dash", "path_type")


def light(annotation: Any, info: Any) -> bool:
    """Whether a value of this annotation and these settings is converted here."""
    if annotation not in SIMPLE or getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return False
    if annotation is Path:
        return not any(getattr(info, name, None) for name in _PATH_CHECKS) and getattr(info, "file_okay", True) \
            and getattr(info, "dir_okay", True) and getattr(info, "readable", True)
    return True


def convert(annotation: type, info: Any, value: Any, param=None, ctx=None) -> Any:
    from typer._click.exceptions import BadParameter

    if isinstance(value, annotation) and annotation is not Path:
        result = value
    elif annotation is bool:
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise BadParameter(f"{value!r} is not true or false.", ctx=ctx, param=param)
        return text in _TRUE
    else:
        try:
            result = annotation(value)
        except (TypeError, ValueError):
            kind = {int: "an integer", float: "a number"}.get(annotation, annotation.__name__)
            raise BadParameter(f"{value!r} is not {kind}.", ctx=ctx, param=param) from None
    if annotation is float and not math.isfinite(result):
        raise BadParameter(f"{value!r} is not a finite number.", ctx=ctx, param=param)
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if low is not None and result < low:
        raise BadParameter(f"{result} is less than the minimum {low}.", ctx=ctx, param=param)
    if high is not None and result > high:
        raise BadParameter(f"{result} is more than the maximum {high}.", ctx=ctx, param=param)
    return result

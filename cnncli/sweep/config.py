"""SWEEP.yaml: which spec and data, the metric, the sampler and pruner, fixed settings and the search
space. Checked completely before any trial runs, with file:line messages like a spec's.

Imports neither numba nor optuna, so a mistake is reported at once.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError, Where
from ..spec import yamlsrc
from ..spec import shipped
from ..spec.loader import load_mapping, read_spec_file
from ..spec.chain import suggest
from ..spec.train import METRICS, SETTINGS, TrainSettings
from ..spec.yamlsrc import Node, type_name

KEYS = {
    "spec": "the network: a spec file (relative to SWEEP.yaml) or a shipped name",
    "data": "a dataset name or path (default: the spec's train.data)",
    "metric": "what to optimise and which way, e.g. val_acc max (the default) or val_loss min",
    "sampler": "grid, random or tpe (the default)",
    "pruner": "median or hyperband: stop poor trials early on the per-epoch metric (default: none)",
    "trials": "how many trials (default 10; a grid: its size)",
    "seed": "the sampler's seed (default 0)",
    "set": "train settings fixed for every trial, as --set: e.g. {epochs: 2}",
    "space": "what to vary: a train setting or a $variable of the spec -> loguniform A B | uniform A B | "
             "int A B [step=S] [log] | choice A B ...",
}
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband")
KINDS = ("loguniform", "uniform", "int", "choice")
HIGHER_IS_BETTER = {"val_acc": True, "acc": True, "val_loss": False, "loss": False}
DEFAULT_TRIALS = 10
_SPACE_EXAMPLE = "e.g. lr: loguniform 1e-4 1e-1, batch: choice 32 64 128, width: int 8 64 step=8"


@dataclass
class Dimension:
    """One searched parameter: a train setting (`target` "set") or a spec variable ("var")."""

    name: str
    target: str
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] = field(default_factory=list)

    def grid(self) -> list[Any] | None:
        """The values a grid sampler visits, or None for a continuous range."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        return None

    def samples(self) -> list[Any]:
        """Values to check against the spec before any trial runs."""
        return self.choices if self.kind == "choice" else [self.low, self.high]


@dataclass
class Sweep:
    spec_text: str
    spec_file: str  # where the spec came from, for messages and the trials' run files
    data: str | None
    metric: str
    maximize: bool
    sampler: str
    pruner: str | None
    trials: int
    seed: int
    fixed: dict[str, str]  # setting -> YAML text, as --set
    space: list[Dimension]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Sweep":
        return cls(**{**data, "space": [Dimension(**d) for d in data["space"]]})

    def trial_settings(self, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        """A trial's --set overrides and spec variables from its sampled parameters."""
        overrides, variables = dict(self.fixed), {}
        for dim in self.space:
            if dim.target == "set":
                overrides[dim.name] = yaml_text(params[dim.name])
            else:
                variables[dim.name] = params[dim.name]
        return overrides, variables


def yaml_text(value: Any) -> str:
    """A value as YAML text that parses back to it (1e-05 -> 1.0e-05, which PyYAML reads as a float)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).removesuffix("\n...\n").strip()


def spec_with_vars(text: str, values: dict[str, Any]) -> str:
    """The spec text with some `vars:` replaced: what a trial trains and keeps in its run directory."""
    if not values:
        return text
    doc = yaml.safe_load(text)
    doc["vars"] = {**(doc.get("vars") or {}), **values}
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    return f"# cnn sweep trial: vars {shown}\n" + yaml.safe_dump(doc, sort_keys=False, width=1 << 30)


# ----------------------------------------------------------------------------- loading


def load(path: Path) -> Sweep:
    return loads(read_spec_file(Path(path), "sweep"), str(path), Path(path).resolve().parent)


def loads(text: str, file: str, base: Path) -> Sweep:
    doc = load_mapping(text, file, KEYS, "sweep file", ("spec", "space"),
                               "`spec: fashion-tutorial` and `space:`", unknown="sweep setting")
    spec_text, spec_file = _spec(doc["spec"], base)
    from .. import spec as specs

    try:
        spec = specs.loads(spec_text, spec_file)
    except UserError as exc:
        exc.calls.append(f"in the spec named at {doc['spec'].where}")
        raise
    data = _data(doc.get("data"), base)
    metric, maximize = _metric(doc.get("metric"))
    sampler = _word(doc.get("sampler"), "sampler", SAMPLERS, "tpe")
    pruner = _word(doc.get("pruner"), "pruner", PRUNERS, None)
    fixed = _fixed(doc.get("set"), spec)
    space = _space(doc["space"], spec, spec_text, fixed)
    trials = _whole(doc.get("trials"), "trials", 1)
    seed = _whole(doc.get("seed"), "seed", 0) or 0
    if sampler == "grid":
        size = _grid_size(doc["space"], space)
        trials = min(trials, size) if trials else size
    sweep = Sweep(spec_text, spec_file, data, metric, maximize, sampler, pruner, trials or DEFAULT_TRIALS, seed,
                  fixed, space)
    if metric.startswith("val_"):
        if _settings(spec, fixed).val == 0:
            raise UserError(f"metric {metric} needs a validation split, but the settings have val: 0",
                            f"use metric: {metric[4:]}, or set val (e.g. set: {{val: 0.1}})", doc["metric"].where
                            if "metric" in doc else Where(file))
    return sweep


def _spec(node: Node, base: Path) -> tuple[str, str]:
    if not isinstance(node.value, str) or not node.value.strip():
        raise UserError(f"spec must be a file or a shipped network's name, not {type_name(node.value)}",
                        "e.g. spec: fashion-tutorial or spec: nets/small.yaml", node.where)
    from .. import spec as specs

    given = node.value.strip()
    path = Path(given).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        if not path.is_file():
            path = shipped.resolve(given)  # a shipped network's name
        return read_spec_file(path), str(path)
    except UserError as exc:
        exc.where = exc.where or node.where
        raise exc from None


def _data(node: Node | None, base: Path) -> str | None:
    if node is None:
        return None
    if not isinstance(node.value, str) or not node.value.strip():
        raise UserError(f"data must be a dataset name or a path, not {type_name(node.value)}",
                        "e.g. data: fashion-mnist-sample", node.where)
    from ..data import NAMES

    given = node.value.strip()
    if given.lower() in NAMES:
        return given
    path = Path(given).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _metric(node: Node | None) -> tuple[str, bool]:
    if node is None:
        return "val_acc", True
    words = str(node.value).split() if isinstance(node.value, str) else []
    if not 1 <= len(words) <= 2 or words[0] not in METRICS or (len(words) == 2 and words[1] not in ("max", "min")):
        raise UserError(f"metric must be one of {', '.join(METRICS)}, optionally followed by max or min, "
                        f"not {type_name(node.value)}", "e.g. metric: val_acc max", node.where)
    return words[0], (words[1] == "max") if len(words) == 2 else HIGHER_IS_BETTER[words[0]]


def _word(node: Node | None, key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    if node is None:
        return default
    value = str(node.value).strip().lower() if isinstance(node.value, str) else None
    if value not in allowed:
        close = suggest(value, allowed) if value else None
        raise UserError(f"unknown {key} {type_name(node.value)}",
                        (f"did you mean {close}? " if close else "") + f"choose one of: {', '.join(allowed)}", node.where)
    return value


def _whole(node: Node | None, key: str, minimum: int) -> int | None:
    if node is None:
        return None
    if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < minimum:
        raise UserError(f"{key} must be a whole number of at least {minimum}, not {type_name(node.value)}", None,
                        node.where)
    return node.value


def _fixed(node: Node | None, spec) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"set: must map train settings to values, not {type_name(node.value)}",
                        "e.g. set: {epochs: 2, batch: 64}", node.where)
    out = {}
    for key, item in node.value.items():
        out[key] = yamlsrc_text(item)
        _check(spec, {key: out[key]}, item.where, f"set.{key}")
    return out


def yamlsrc_text(item: Node) -> str:
    """A YAML node's value as YAML text (lists and mappings included)."""
    def plain(n: Node):
        if isinstance(n.value, dict):
            return {k: plain(v) for k, v in n.value.items()}
        if isinstance(n.value, list):
            return [plain(v) for v in n.value]
        return n.value
    return yaml_text(plain(item))


def _settings(spec, overrides: dict[str, str]) -> TrainSettings:
    """The spec's train settings with --set overrides, checked by the same rules as `cnn train --set`."""
    settings = spec.train.copy()
    for key, text in overrides.items():
        settings.set_text(key, text)
    return settings


def _check(spec, overrides: dict[str, str], where: Where | None, what: str) -> None:
    """Validate settings with the spec's own rules; the message points into the sweep file."""
    try:
        _settings(spec, overrides)
    except UserError as exc:
        raise UserError(f"{what}: {exc.message}", exc.hint, where) from None


# ----------------------------------------------------------------------------- the search space


def _space(node: Node, spec, spec_text: str, fixed: dict[str, str]) -> list[Dimension]:
    if not isinstance(node.value, dict) or not node.value:
        raise UserError(f"space: must map settings or $variables to ranges, not {type_name(node.value)}",
                        _SPACE_EXAMPLE, node.where)
    from ..spec.sections import variables

    spec_vars = variables(yamlsrc.load(spec_text, spec.file).value.get("vars"))
    out = []
    for key, item in node.value.items():
        name = key.removeprefix("$")
        if key.startswith("$") or (name not in SETTINGS and name in spec_vars):
            if name not in spec_vars:
                close = suggest(name, spec_vars)
                raise UserError(f"the spec has no variable ${name}",
                                (f"did you mean ${close}? " if close else "")
                                + (f"its vars are: {', '.join(spec_vars)}" if spec_vars else
                                   "declare it in the spec, e.g. vars: {width: 16}, and use $width in net:"),
                                item.where)
            target = "var"
        elif name in SETTINGS:
            target = "set"
        else:
            close = suggest(name, list(SETTINGS) + list(spec_vars))
            raise UserError(f"'{name}' is neither a train setting nor a variable of the spec",
                            (f"did you mean {close}? " if close else "") + "settings: " + ", ".join(SETTINGS)
                            + (f"; the spec's vars: {', '.join(spec_vars)}" if spec_vars else ""), item.where)
        dim = _dimension(name, target, item)
        for value in dim.samples():
            if target == "set":
                _check(spec, {**fixed, name: yaml_text(value)}, item.where, f"space.{name} = {value}")
            else:
                _check_vars(spec_text, spec.file, {name: value}, item.where, f"space.{name} = {value}")
        out.append(dim)
    return out


def _check_vars(spec_text: str, file: str, values: dict[str, Any], where: Where, what: str) -> None:
    from .. import spec as specs

    try:
        specs.loads(spec_with_vars(spec_text, values), file)
    except UserError as exc:
        raise UserError(f"{what}: {exc.message}", exc.hint, where) from None


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _number(word: str) -> int | float | None:
    if not _NUMBER.match(word):
        return None
    return int(word) if re.fullmatch(r"[-+]?\d+", word) else float(word)


def _dimension(name: str, target: str, item: Node) -> Dimension:
    if isinstance(item.value, list):  # [32, 64, 128] is a choice
        choices = [v.value for v in item.value]
        if not choices or any(isinstance(c, (dict, list)) or c is None for c in choices):
            raise UserError(f"space.{name}: a list is a choice of plain values, not {type_name(item.value)}",
                            _SPACE_EXAMPLE, item.where)
        return Dimension(name, target, "choice", choices=choices)
    if not isinstance(item.value, str):
        raise UserError(f"space.{name} must be a range or a choice, not {type_name(item.value)}",
                        _SPACE_EXAMPLE, item.where)

    def where(word: str | None = None) -> Where:
        offset = item.value.find(word) if word else 0
        return item.text.where(max(offset, 0)) if item.text is not None else item.where

    try:
        words = shlex.split(item.value)
    except ValueError as exc:
        raise UserError(f"space.{name}: {exc}", "close the quote", item.where) from None
    kind = words[0].lower() if words else ""
    if kind not in KINDS:
        close = suggest(kind, KINDS) if kind else None
        raise UserError(f"space.{name}: unknown range '{words[0] if words else ''}'",
                        (f"did you mean {close}? " if close else "") + "write one of: " + ", ".join(KINDS), where())
    args = words[1:]
    if kind == "choice":
        if not args:
            raise UserError(f"space.{name}: choice needs at least one value", "e.g. choice 32 64 128", where())
        values = [_number(a) if _number(a) is not None else a for a in args]
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"space.{name}: a value is listed twice", "list each value once", where())
        return Dimension(name, target, "choice", choices=values)
    options = {a.partition("=")[0].lower(): a.partition("=")[2] for a in args if "=" in a or a.lower() == "log"}
    bounds = [a for a in args if "=" not in a and a.lower() != "log"]
    allowed = {"int": ("step", "log")}.get(kind, ())
    for key in options:
        if key not in allowed:
            raise UserError(f"space.{name}: {kind} takes no option '{key}'",
                            "int takes step=S and log; uniform and loguniform take only their bounds", where(key))
    if len(bounds) != 2:
        raise UserError(f"space.{name}: {kind} needs a low and a high bound, e.g. {kind} 1 10", None, where())
    low, high = (_number(b) for b in bounds)
    for word, value in zip(bounds, (low, high)):
        if value is None or (kind == "int" and not isinstance(value, int)):
            raise UserError(f"space.{name}: '{word}' is not a{' whole' if kind == 'int' else ''} number", None, where(word))
    if not low < high:
        raise UserError(f"space.{name}: the range {bounds[0]} .. {bounds[1]} is empty",
                        "write the low bound first, below the high one", where(bounds[0]))
    if kind == "loguniform" and low <= 0:
        raise UserError(f"space.{name}: loguniform needs a low bound above 0, not {bounds[0]}",
                        "use uniform for ranges that include 0", where(bounds[0]))
    step = None
    if "step" in options:
        step = _number(options["step"])
        if not isinstance(step, int) or step < 1 or ("log" in options):
            raise UserError(f"space.{name}: step must be a whole number of at least 1 (and not with log)", None,
                            where("step"))
        if (high - low) % step:
            raise UserError(f"space.{name}: {high} - {low} is not a multiple of step {step}",
                            f"e.g. int {low} {low + step * max(1, (high - low) // step)} step={step}", where("step"))
    if "log" in options and low <= 0:
        raise UserError(f"space.{name}: int ... log needs a low bound of at least 1", None, where())
    is_float = kind != "int"
    return Dimension(name, target, kind, float(low) if is_float else low, float(high) if is_float else high,
                     step, kind == "loguniform" or "log" in options)


def _grid_size(node: Node, space: list[Dimension]) -> int:
    size = 1
    for dim in space:
        values = dim.grid()
        if values is None:
            raise UserError(f"sampler grid needs choice or int ranges, but space.{dim.name} is {dim.kind}",
                            f"write e.g. {dim.name}: choice 0.001 0.01 0.1, or use sampler: tpe",
                            node.value[dim.name if dim.name in node.value else "$" + dim.name].where)
        size *= len(values)
    return size

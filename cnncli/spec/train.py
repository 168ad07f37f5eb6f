"""The `train:` section: defaults for `cnn train`, checked here so that `cnn shapes` catches mistakes.

Component settings (optimizer, schedule, loss, augmentation, early stopping) use the layer syntax,
`adam lr=0.001`, and are declared once in the tables below; the training code reads these tables.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from typing import Any, Callable

from ..errors import LayerError, UserError, Where
from ..layers.base import REQUIRED, Param
from . import yamlsrc
from .chain import suggest
from .yamlsrc import Node, type_name


@dataclass(frozen=True)
class Component:
    name: str
    summary: str
    params: tuple[Param, ...] = ()
    # an optimizer's state: settings -> names of the arrays it keeps, each the size of the parameters.
    # Declared here once; the optimizer allocates them, checkpoints store them, `cnn shapes` counts them.
    state: Callable[[dict[str, Any]], tuple[str, ...]] | None = None


def _lr(default: float) -> Param:
    return Param("lr", "float", default, "learning rate", positional=True, minimum=0.0)


_WD = Param("weight_decay", "float", 0.0, "L2 penalty added to the gradient (decoupled for adamw)", minimum=0.0)

OPTIMIZERS = {c.name: c for c in (
    Component("sgd", "stochastic gradient descent, PyTorch's update rule", (
        _lr(0.01), Param("momentum", "float", 0.0, "", minimum=0.0), Param("nesterov", "bool", False), _WD,
        Param("dampening", "float", 0.0, "", minimum=0.0)),
        lambda s: ("momentum_buffer",) if s.get("momentum") else ()),
    Component("adam", "Adam (Kingma & Ba), PyTorch's update rule", (
        _lr(0.001), Param("beta1", "float", 0.9, "", minimum=0.0, maximum=0.99999),
        Param("beta2", "float", 0.999, "", minimum=0.0, maximum=0.99999999), Param("eps", "float", 1e-8, "", minimum=0.0), _WD),
        lambda s: ("exp_avg", "exp_avg_sq")),
    Component("adamw", "Adam with decoupled weight decay (Loshchilov & Hutter)", (
        _lr(0.001), Param("beta1", "float", 0.9, "", minimum=0.0, maximum=0.99999),
        Param("beta2", "float", 0.999, "", minimum=0.0, maximum=0.99999999), Param("eps", "float", 1e-8, "", minimum=0.0),
        Param("weight_decay", "float", 0.01, "decoupled weight decay", minimum=0.0)),
        lambda s: ("exp_avg", "exp_avg_sq")),
    Component("rmsprop", "RMSprop, PyTorch's update rule", (
        _lr(0.01), Param("alpha", "float", 0.99, "", minimum=0.0, maximum=1.0), Param("eps", "float", 1e-8, "", minimum=0.0),
        Param("momentum", "float", 0.0, "", minimum=0.0), _WD),
        lambda s: ("square_avg",) + (("momentum_buffer",) if s.get("momentum") else ())),
)}

SCHEDULES = {c.name: c for c in (
    Component("constant", "the same learning rate throughout"),
    Component("step", "multiply by gamma every `every` epochs", (
        Param("every", "int", REQUIRED, "epochs between drops", positional=True, minimum=1),
        Param("gamma", "float", 0.1, "", minimum=0.0))),
    Component("multistep", "multiply by gamma at the listed epochs", (
        Param("at", "ints", REQUIRED, "epochs, e.g. at=30,60", positional=True, minimum=1),
        Param("gamma", "float", 0.1, "", minimum=0.0))),
    Component("exponential", "multiply by gamma every epoch", (Param("gamma", "float", 0.95, "", positional=True, minimum=0.0),)),
    Component("cosine", "cosine decay to min_lr, after an optional linear warm-up", (
        Param("warmup", "int", 0, "warm-up epochs", minimum=0), Param("min_lr", "float", 0.0, "", minimum=0.0))),
    Component("onecycle", "one-cycle policy (Smith): up to max_lr, then down", (
        Param("max_lr", "float", None, "peak learning rate (default 10x lr)", minimum=0.0),
        Param("pct", "float", 0.3, "share of the run spent rising", minimum=0.0, maximum=1.0))),
    Component("cyclic", "triangular cycles between lr and max_lr", (
        Param("max_lr", "float", REQUIRED, "", minimum=0.0), Param("period", "int", 2, "epochs per cycle", minimum=1))),
    Component("plateau", "multiply by factor when the monitored metric stops improving", (
        Param("factor", "float", 0.1, "", minimum=0.0, maximum=1.0), Param("patience", "int", 2, "", minimum=0))),
)}

LOSSES = {c.name: c for c in (
    Component("cross_entropy", "softmax cross-entropy, fused and numerically stable", (
        Param("smoothing", "float", 0.0, "label smoothing", minimum=0.0, maximum=1.0),)),
    Component("mse", "mean squared error (regression)"),
    Component("mae", "mean absolute error (regression)"),
)}

AUGMENTATIONS = {c.name: c for c in (
    Component("flip", "random horizontal flip", (Param("p", "float", 0.5, "probability", positional=True, minimum=0.0, maximum=1.0),)),
    Component("crop", "pad, then a random crop back to size (random translation)", (
        Param("pad", "int", 4, "padding in pixels", positional=True, minimum=0),)),
    Component("rotate", "random rotation", (Param("deg", "float", 10.0, "maximum angle in degrees", positional=True, minimum=0.0),)),
    Component("zoom", "random zoom", (Param("max", "float", 0.1, "maximum relative zoom", positional=True, minimum=0.0, maximum=0.9),)),
    Component("brightness", "random brightness shift", (Param("max", "float", 0.2, "", positional=True, minimum=0.0),)),
    Component("contrast", "random contrast scaling", (Param("max", "float", 0.2, "", positional=True, minimum=0.0),)),
)}

METRICS = ("val_loss", "val_acc", "loss", "acc")

STOPPING = {"early_stop": Component("early_stop", "stop when the metric has not improved for `patience` epochs", (
    Param("metric", "choice", "val_loss", "", positional=True, choices=METRICS),
    Param("patience", "int", 5, "", minimum=1),
    Param("min_delta", "float", 0.0, "", minimum=0.0)))}


@dataclass(frozen=True)
class Setting:
    """One row of the settings table: how a value is checked, its default, and whether a resumed
    run may change it (`cnn train --resume RUN --epochs 20`)."""

    kind: str  # 'int', 'float', 'str', 'fraction_or_count', 'patterns', or a component table name
    doc: str
    default: Any = None
    minimum: float | None = None
    resumable: bool = False
    name: str = ""  # the field's name, filled in below


def _field(kind: str, doc: str, default: Any = None, minimum: float | None = None, resumable: bool = False):
    meta = {"setting": Setting(kind, doc, default, minimum, resumable)}
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainSettings:
    """The `train:` section parsed once into typed values, with where each value came from (a place
    in the spec, or the command-line option) for error messages. `cnn train` options and `--set`
    change fields through the same checks; the field declarations below are the one settings table."""

    data: str | None = _field("str", "a dataset name (fashion-mnist, mnist, ...) or a path")
    epochs: int = _field("int", "passes over the training set", 5, 1, resumable=True)
    batch: int = _field("int", "samples per step", 64, 1)
    lr: float | None = _field("float", "learning rate (overrides the optimizer's)", None, 0.0)
    weight_decay: float | None = _field("float", "L2 penalty (overrides the optimizer's)", None, 0.0)
    l1: float = _field("float", "L1 penalty on weights", 0.0, 0.0)
    clip: float = _field("float", "clip the gradient's global norm to this (0: no clipping)", 0.0, 0.0)
    seed: int = _field("int", "fixes initialisation, shuffling, dropout and augmentation", 0, 0)
    val: float | int = _field("fraction_or_count", "validation split: a fraction (0.1) or a count (5000)", 0.1, 0)
    threads: int | None = _field("int", "CPU threads", None, 1, resumable=True)
    optimizer: dict | None = _field("optimizer", "e.g. adam lr=0.001, sgd lr=0.1 momentum=0.9 nesterov=true")
    schedule: dict | None = _field("schedule", "e.g. cosine warmup=2, step 10 gamma=0.1")
    loss: dict | None = _field("loss", "cross_entropy smoothing=0.1, mse or mae")
    augment: list = _field("augment", "a list, e.g. [flip, crop 4]", [])
    early_stop: dict | None = _field("early_stop", "e.g. early_stop val_acc patience=3", resumable=True)
    freeze: list = _field("patterns", "layers whose parameters (and BN statistics) stay fixed: [conv1, stage1.*]", [])
    where: dict[str, Where] = field(default_factory=dict, repr=False, compare=False)

    def loss_setting(self, classes: int | None) -> dict:
        """The loss these settings name, else cross-entropy for a classifier and mse otherwise."""
        return self.loss or {"name": "cross_entropy" if classes else "mse", "smoothing": 0.0}

    @classmethod
    def parse(cls, node: Node) -> "TrainSettings":
        """Check the spec's `train:` mapping."""
        if not isinstance(node.value, dict):
            raise UserError(f"train: must be a mapping of settings, not {type_name(node.value)}",
                            "e.g. train: {epochs: 5, batch: 100, optimizer: adam lr=0.001}", node.where)
        settings = cls()
        for key, item in node.value.items():
            settings._assign(_setting(key, item.where), item)
        return settings

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainSettings":
        """Settings as a run stored them (run.json, a checkpoint's `train`); older runs stored only
        the settings they were given, the rest take their defaults."""
        return cls(**{k: v for k, v in values.items() if k in SETTINGS})

    def set(self, key: str, value: Any, where: Where) -> None:
        """Set a typed value (from a command-line option), checked as a spec value would be."""
        self._assign(_setting(key, where), _node(value, where))

    def update(self, other: "TrainSettings") -> None:
        """Take the settings other was given explicitly (e.g. a spec's `train:`), already checked."""
        for key, where in other.where.items():
            setattr(self, key, deepcopy(getattr(other, key)))
            self.where[key] = where

    def set_text(self, key: str, text: str) -> None:
        """`--set key=value`: the value is read as YAML (`--set augment='[flip, crop 2]'`)."""
        key = key.strip().removeprefix("train.")
        where = Where(f"--set {key}={text}")
        setting = _setting(key, where)
        node = yamlsrc.load(text, f"--set {key}") if text.strip() else Node(None, where)
        node.where = where
        self._assign(setting, node)

    def _assign(self, setting: Setting, node: Node) -> None:
        setattr(self, setting.name, _value(setting, node))
        self.where[setting.name] = node.where

    def copy(self) -> "TrainSettings":
        return deepcopy(self)

    def to_json(self) -> dict[str, Any]:
        """Every setting as JSON values, for run files and checkpoints."""
        return jsonable({name: getattr(self, name) for name in SETTINGS})

    def describe(self, key: str) -> str:
        """A setting's value as a user would write it, for messages."""
        value = getattr(self, key)
        if isinstance(value, dict):
            return " ".join([value["name"]] + [f"{k}={_text(v)}" for k, v in value.items() if k != "name"])
        if isinstance(value, list):
            return "[" + ", ".join(v["name"] if isinstance(v, dict) else str(v) for v in value) + "]"
        return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


SETTINGS = {f.name: replace(f.metadata["setting"], name=f.name) for f in fields(TrainSettings) if "setting" in f.metadata}


def _setting(key: str, where: Where | None) -> Setting:
    setting = SETTINGS.get(key)
    if setting is None:
        close = suggest(key, SETTINGS)
        raise UserError(f"unknown train setting '{key}'",
                        (f"did you mean {close}? " if close else "") + "settings: " + ", ".join(SETTINGS), where)
    return setting


def _node(value: Any, where: Where) -> Node:
    if isinstance(value, (list, tuple)):
        return Node([_node(v, where) for v in value], where)
    return Node(value, where)


def frozen_layers(patterns: list[str], names: list[str], where: Where | None) -> list[str]:
    """The layer names matched by `freeze:` glob patterns; a pattern that matches nothing is a mistake."""
    matched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatchcase(n, pattern)]
        if not hits:
            close = suggest(pattern, names)
            raise UserError(f"train.freeze: no layer matches '{pattern}'",
                            (f"did you mean {close}? " if close else "")
                            + "patterns match layer names as cnn shapes prints them, e.g. conv1, stage1.*", where)
        matched += hits
    return [n for n in names if n in matched]


_TABLES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "loss": LOSSES, "augment": AUGMENTATIONS,
           "early_stop": STOPPING}


def parse_component(text: str, table: dict[str, Component], what: str) -> tuple[str, dict[str, Any]]:
    """`adam lr=0.001` -> ("adam", {"lr": 0.001, ...defaults}). Raises LayerError."""
    words = text.split()
    if not words:
        raise LayerError(f"empty {what}", "one of: " + ", ".join(table))
    head, rest = words[0].lower(), words[1:]
    if head not in table and what == "early stopping" and head in METRICS:
        head, rest = "early_stop", words  # `early_stop: val_acc patience=3`
    if head not in table:
        close = suggest(head, table)
        raise LayerError(f"unknown {what} '{words[0]}'",
                         (f"did you mean {close}? " if close else "") + "choose one of: " + ", ".join(table))
    comp = table[head]
    values: dict[str, Any] = {}
    positional = [p for p in comp.params if p.positional]
    for word in rest:
        if "=" in word:
            key, _, raw = word.partition("=")
            param = next((p for p in comp.params if p.name == key.lower()), None)
            if param is None:
                close = suggest(key, [p.name for p in comp.params])
                raise LayerError(f"{head} has no setting '{key}'",
                                 (f"did you mean {close}? " if close else "")
                                 + (f"it takes: {', '.join(p.name for p in comp.params)}" if comp.params else f"{head} takes no settings"))
        else:
            param = next((p for p in positional if p.name not in values), None)
            raw = word
            if param is None:
                raise LayerError(f"too many values for {head}: '{word}'", f"write it as {head} key=value")
        if param.name in values:
            raise LayerError(f"{param.name} is given twice", None)
        values[param.name] = param.parse(raw)
    for param in comp.params:
        if param.name not in values:
            if param.required:
                raise LayerError(f"{head} needs {param.name}", f"e.g. {head} {param.name}=...")
            values[param.name] = param.default
    return head, values


def _value(setting: Setting, item: Node) -> Any:
    value = item.value
    try:
        if setting.kind == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no point) as text
            value = Param(setting.name, "float", doc=setting.doc).parse(value)
        if setting.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (setting.kind == "int" and not isinstance(value, int)):
                raise LayerError(f"train.{setting.name} must be {'a whole number' if setting.kind == 'int' else 'a number'}, "
                                 f"not {type_name(value)}", setting.doc)
            if setting.minimum is not None and value < setting.minimum:
                raise LayerError(f"train.{setting.name} must be at least {setting.minimum:g}", setting.doc)
            return value
        if setting.kind == "fraction_or_count":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (isinstance(value, float) and value >= 1):
                raise LayerError(f"train.{setting.name} must be a fraction below 1 or a whole count, not {type_name(value)}", setting.doc)
            return value
        if setting.kind == "patterns":
            items = value if isinstance(value, list) else [item]
            patterns = [sub.value for sub in items]
            if not all(isinstance(p, str) and p.strip() for p in patterns):
                raise LayerError(f"train.{setting.name} must be layer names or glob patterns, not {type_name(value)}",
                                 setting.doc)
            return [p.strip() for p in patterns]
        if setting.kind == "str":
            if not isinstance(value, str):
                raise LayerError(f"train.{setting.name} must be text, not {type_name(value)}", setting.doc)
            return value
        table = _TABLES[setting.kind]
        what = {"augment": "augmentation", "early_stop": "early stopping"}.get(setting.kind, setting.kind)
        if setting.kind == "augment":
            items = value if isinstance(value, list) else [item]
            return [_component(sub if isinstance(sub, Node) else item, table, what) for sub in items]
        return _component(item, table, what)
    except LayerError as exc:
        raise UserError(exc.message, exc.hint, item.where) from None


def _component(item: Node, table, what: str):
    if not isinstance(item.value, str):
        raise LayerError(f"{what} must be written as text like '{next(iter(table))} ...', not {type_name(item.value)}",
                         "choose one of: " + ", ".join(table))
    name, params = parse_component(item.value, table, what)
    return {"name": name, **params}


def jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON values (tuples become lists), for run files and checkpoints."""
    def convert(v):
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        return v
    return convert(settings)

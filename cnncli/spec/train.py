"""The `train:` section: defaults for `cnn train`, checked here so that `cnn shapes` catches mistakes.

Component settings (optimizer, schedule, loss, augmentation, early stopping) use the layer syntax,
`adam lr=0.001`, and are declared once in the tables below; the training code reads these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import LayerError, UserError, Where
from ..layers.base import REQUIRED, Param
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
    name: str
    kind: str  # 'int', 'float', 'str', 'fraction_or_count', or a component table name
    doc: str
    minimum: float | None = None


SETTINGS = {s.name: s for s in (
    Setting("data", "str", "a dataset name (fashion-mnist, mnist, ...) or a path"),
    Setting("epochs", "int", "passes over the training set", 1),
    Setting("batch", "int", "samples per step", 1),
    Setting("lr", "float", "learning rate (overrides the optimizer's)", 0.0),
    Setting("weight_decay", "float", "L2 penalty (overrides the optimizer's)", 0.0),
    Setting("l1", "float", "L1 penalty on weights", 0.0),
    Setting("clip", "float", "clip the gradient's global norm to this", 0.0),
    Setting("seed", "int", "fixes initialisation, shuffling, dropout and augmentation", 0),
    Setting("val", "fraction_or_count", "validation split: a fraction (0.1) or a count (5000)", 0),
    Setting("threads", "int", "CPU threads", 1),
    Setting("optimizer", "optimizer", "e.g. adam lr=0.001, sgd lr=0.1 momentum=0.9 nesterov=true"),
    Setting("schedule", "schedule", "e.g. cosine warmup=2, step 10 gamma=0.1"),
    Setting("loss", "loss", "cross_entropy smoothing=0.1, mse or mae"),
    Setting("augment", "augment", "a list, e.g. [flip, crop 4]"),
    Setting("early_stop", "early_stop", "e.g. early_stop val_acc patience=3"),
)}

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


def validate(node: Node) -> dict[str, Any]:
    """Check the `train:` mapping; returns plain values (component strings parsed)."""
    if not isinstance(node.value, dict):
        raise UserError(f"train: must be a mapping of settings, not {type_name(node.value)}",
                        "e.g. train: {epochs: 5, batch: 100, optimizer: adam lr=0.001}", node.where)
    out: dict[str, Any] = {}
    for key, item in node.value.items():
        setting = SETTINGS.get(key)
        if setting is None:
            close = suggest(key, SETTINGS)
            raise UserError(f"unknown train setting '{key}'",
                            (f"did you mean {close}? " if close else "") + "settings: " + ", ".join(SETTINGS), item.where)
        out[key] = _value(setting, item)
    return out


def _value(setting: Setting, item: Node) -> Any:
    value = item.value
    try:
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


def with_overrides(spec, overrides: dict[str, str]) -> dict[str, Any]:
    """The spec's train settings with command-line `--set key=value` overrides (values in YAML)."""
    from . import yamlsrc

    root = yamlsrc.load(spec.source, spec.file) if spec.source.strip() else Node({}, None)
    node = root.value.get("train") if isinstance(root.value, dict) else None
    merged = dict(node.value) if node is not None and isinstance(node.value, dict) else {}
    for key, text in overrides.items():
        value = yamlsrc.load(text, f"--set train.{key}")
        value.where = Where(f"--set train.{key}={text}")
        merged[key] = value
    return validate(Node(merged, node.where if node is not None else None))


def jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON values (tuples become lists), for run files and checkpoints."""
    def convert(v):
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        return v
    return convert(settings)

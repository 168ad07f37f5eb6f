"""Read a spec file and run the pipeline: YAML -> top-level settings -> expanded layer graph ->
inferred shapes -> a checked Spec."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import UserError, Where
from ..layers.base import describe_shape
from ..limits import MAX_SPEC_BYTES
from . import sections, shipped, yamlsrc
from . import train as train_section
from .chain import suggest
from .graph import INPUT, Expander, infer
from .network import Spec
from .yamlsrc import type_name

TOP_LEVEL = {
    "name": "a name for the network",
    "description": "free text",
    "input": "the input shape C x H x W, e.g. 1x28x28 or [3, 32, 32]",
    "classes": "number of classes; the network must end with that many outputs",
    "output": "number of regression outputs (instead of classes)",
    "net": "the layers: a chain 'conv k=16 f=5 -> relu -> ...' or a list of chains",
    "blocks": "parameterised blocks, e.g. 'vgg(k, n): (conv k=$k f=3 p=1 -> relu) x$n -> pool 2'",
    "defaults": "per-kind parameter defaults, e.g. {conv: {bias: false}, bn: {eps: 0.001}}",
    "vars": "named values that net: uses as $name or ${expr}, e.g. vars: {width: 16} (cnn sweep varies them)",
    "train": "defaults for cnn train (epochs, batch, optimizer, ...)",
}


def load(path: str | Path, strict: bool = False, input_shape: str | None = None) -> Spec:
    """Load a spec file, or a shipped network by name (`resnet-50`; a path that exists wins)."""
    path = shipped.resolve(path)
    return loads(read_spec_file(path), str(path), strict=strict, input_shape=input_shape)


def read_spec_file(path: Path, what: str = "spec") -> str:
    """The text of a spec file (or of another YAML file of cnncli's, `what`: "sweep"): a regular file of
    at most MAX_SPEC_BYTES in UTF-8. Never reads a FIFO or a device (reading one would block or never end)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the checks use the opened file itself.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", "check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a {what} file", "name a .yaml file") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{path} is a directory, not a {what} file", "name a .yaml file")
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path} is not a regular file (a pipe, socket or device)", f"save the {what} to a file first")
        if info.st_size > MAX_SPEC_BYTES:
            raise _too_big(path, info.st_size, what)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SPEC_BYTES + 1)  # the file may have grown since fstat()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    finally:
        os.close(fd)
    if len(data) > MAX_SPEC_BYTES:
        raise _too_big(path, len(data), what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start})", f"a {what} is a YAML text file") from None


def _too_big(path: Path, size: int, what: str) -> UserError:
    return UserError(f"{path} has {size:,} bytes, more than a {what} may have ({MAX_SPEC_BYTES:,})",
                     f"a {what} is a few lines of YAML" + ("; blocks: and repeats (x N) describe large networks"
                                                          if what == "spec" else ""))


def load_mapping(text: str, file: str, keys: dict[str, str], what: str, required: tuple[str, ...],
                 example: str, unknown: str = "setting") -> dict[str, yamlsrc.Node]:
    """A YAML file that is a mapping of known keys (a spec, a sweep file); a stray or missing key is an error.
    `keys` maps each key to what it means, for the hints."""
    root = yamlsrc.load(text, file)
    if not isinstance(root.value, dict):
        raise UserError(f"a {what} is a mapping of settings, not {type_name(root.value)}", f"start with e.g. {example}",
                        root.where)
    for key, node in root.value.items():
        if key not in keys:
            close = suggest(key, keys)
            raise UserError(f"unknown {unknown} '{key}'",
                            (f"did you mean '{close}'? " if close else "") + f"a {what} may have: " + ", ".join(keys),
                            node.where)
    for key in required:
        if key not in root.value:
            raise UserError(f"the {what} has no `{key}:`", f"add `{key}:` - {keys[key]}", Where(file, 1, 1))
    return root.value


def loads(text: str, file: str = "<spec>", strict: bool = False, input_shape: str | None = None) -> Spec:
    """Parse and check spec text. `input_shape` (e.g. "3x32x32") replaces the spec's input."""
    doc = load_mapping(text, file, TOP_LEVEL, "spec", ("input", "net"),
                       "`input: 1x28x28` and `net: conv k=16 f=5 -> ...`")
    name = sections.name(doc.get("name"), file)
    given = doc["input"] if input_shape is None else yamlsrc.Node(input_shape, Where("--input"))
    shape = sections.input_shape(given)
    classes = sections.count(doc.get("classes"), "classes")
    output = sections.count(doc.get("output"), "output")
    if classes is not None and output is not None:
        raise UserError("give either classes (classification) or output (regression), not both", None,
                        doc["output"].where)
    defaults = sections.defaults(doc.get("defaults"))
    blocks = sections.blocks(doc.get("blocks"))  # a spec's own blocks first; they win over shipped ones
    blocks.update({name: b for name, b in sections.shipped_blocks().items() if name not in blocks})
    train = train_section.TrainSettings.parse(doc["train"]) if "train" in doc else train_section.TrainSettings()
    texts = sections.net_texts(doc["net"], sections.variables(doc.get("vars")))
    nodes, tree, last = Expander(blocks, defaults).expand(texts)
    if not nodes:
        raise UserError("the network has no layers (only id)", "add layers to net:", doc["net"].where)
    warnings = infer(nodes, shape)
    spec = Spec(name, file, shape, classes, output, nodes, tree, last, warnings, train, blocks, text,
                sections.description(doc.get("description")))
    check_output(spec)
    spec.frozen_layers()  # every freeze pattern must match a layer
    if strict and warnings:
        first = warnings[0]
        first.hint = "--strict makes dropped input an error: pad so that (size - kernel + 2*padding) divides by the stride"
        raise first
    return spec


def check_output(spec: Spec) -> None:
    """The network must end with `classes` (or `output`) values."""
    want = spec.classes or spec.output
    if want is None:
        return
    shape = spec.output_shape
    size = 1
    for d in shape:
        size *= d
    ok = shape == (want,) or (len(shape) == 3 and shape[1:] == (1, 1) and shape[0] == want)
    if ok:
        return
    last = spec.nodes[spec.output_node] if spec.output_node != INPUT else spec.nodes[-1]
    what = f"classes: {spec.classes}" if spec.classes else f"output: {spec.output}"
    raise UserError(
        f"the network ends with {describe_shape(shape)} ({size} values), but {what} needs {want}",
        f"end the net with fc {want}" + (" (fc flattens a feature map by itself)" if len(shape) == 3 else ""),
        last.where, last.text, last.name, list(last.calls),
    )

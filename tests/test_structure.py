"""The project's structure, checked: the op registry pairs every layer declaration with its op,
window geometry is resolved once, light modules stay light, and the package has no import cycles."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from cnncli.layers import KINDS, LayerKind
from cnncli.layers.base import Inferred
from cnncli.layers.window import Window

from .helpers import ARCHITECTURES, ROOT, net


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter, output piped as in a CI log (no COLUMNS, which pytest sets)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


# ----------------------------------------------------------------------------- the op registry


class Fake(LayerKind):
    name, family, summary = "fake", "activation", "a kind declared without an op"

    def infer(self, p, inputs):
        return Inferred(shape=inputs[0])


def test_every_layer_kind_has_exactly_one_op():
    from cnncli.ops.registry import OPS

    computing = [kind for kind in KINDS.values() if not kind.passthrough]
    assert sorted(k.name for k in OPS) == sorted(k.name for k in computing)
    for kind, op in OPS.items():
        assert kind in op.kinds


def test_registry_refuses_a_kind_without_op_two_ops_or_an_unknown_kind():
    from cnncli.ops.activation import ActivationOp, DropoutOp
    from cnncli.ops.registry import RegistryError, pair

    kinds = list(ActivationOp.kinds)
    assert set(pair(kinds, [ActivationOp])) == set(kinds)
    with pytest.raises(RegistryError, match="without an op: fake"):
        pair([*kinds, Fake], [ActivationOp])
    with pytest.raises(RegistryError, match="has two ops"):
        pair(kinds, [ActivationOp, type("Again", (ActivationOp,), {})])
    with pytest.raises(RegistryError, match="not in the layer registry"):
        pair(kinds, [ActivationOp, DropoutOp])


def test_a_declaration_without_op_fails_on_import():
    r = run_python(
        "from cnncli.layers import KINDS\nfrom tests.test_structure import Fake\nKINDS['fake'] = Fake\n"
        "import cnncli.ops.registry\n")
    assert r.returncode != 0 and "RegistryError: layer kinds without an op: fake" in r.stderr


# ----------------------------------------------------------------------------- window geometry


def test_window_is_resolved_once_with_same_padding_per_side():
    spec = net("conv k=2 f=3 s=2 p=same d=2 -> pool 2 s=2 p=1 ceil=true", input="1x6x10")
    conv, pool = spec.nodes
    # effective kernel 2*(3-1)+1 = 5; rows: ceil(6/2) = 3, total padding (3-1)*2 + 5 - 6 = 3 -> 1 top, 2 bottom;
    # columns: ceil(10/2) = 5, (5-1)*2 + 5 - 10 = 3 -> 1 left, 2 right
    assert conv.info.window == Window((3, 3), (2, 2), (2, 2), (1, 2), (1, 2), (3, 5))
    assert conv.info.window.effective == (5, 5)
    # pool on 3x5 with ceil, rows: (3 + 2 - 2)/2 + 1 = 2.5 rounds up to 3, columns: (5 + 2 - 2)/2 + 1 = 3.5 to 4;
    # but each last window would start in the bottom/right padding (at 4 = 3 + 1, at 6 = 5 + 1): PyTorch drops it
    assert pool.info.window == Window((2, 2), (2, 2), (1, 1), (1, 1), (1, 1), (2, 3))
    assert pool.shape == (2, 2, 3)


def test_ops_take_their_geometry_from_the_node():
    import numpy as np

    from cnncli.ops.conv import ConvOp
    from cnncli.ops.pool import SumPoolOp

    spec = net("conv k=2 f=3 p=same -> avgpool 2 p=1", input="1x6x6")
    conv, pool = spec.nodes
    conv.info.window = dataclasses.replace(conv.info.window, pad_h=(2, 0))
    op = ConvOp(conv, np.float32)
    assert (op.pt, op.pl, op.geometry) == (2, 1, (1, 1, 2, 1, 1, 1))
    pool.info.window = dataclasses.replace(pool.info.window, pad_w=(0, 1))
    op = SumPoolOp(pool, np.float32)
    assert (op.pt, op.pb, op.pl, op.pr) == (1, 1, 0, 1)


# ----------------------------------------------------------------------------- dependencies


def test_optimizers_and_augmentation_do_not_load_the_op_registry():
    r = run_python("import sys\nimport cnncli.optim, cnncli.data.augment\n"
                   "print(sorted(m for m in sys.modules if m.startswith('cnncli.ops')))")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.replace("'", '"')) == ["cnncli.ops", "cnncli.ops.jit", "cnncli.ops.threads"]


def test_cnn_shapes_imports_only_what_it_needs():
    """Neither the engine nor numpy, pydantic or rich's table: benchmarks/startup.py measures the time."""
    code = ("import contextlib, io, sys\nfrom cnncli.cli import app\n"
            f"sys.argv = ['cnn', 'shapes', {str(ARCHITECTURES / 'resnet-50.yaml')!r}]\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        app()\n    except SystemExit:\n        pass\n"
            "assert 'bottleneck12.relu1' in out.getvalue()\n"
            "print(' '.join(sorted(sys.modules)))")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert "cnncli.spec" in loaded
    for heavy in ("numba", "numpy", "pydantic", "cnncli.ops", "cnncli.model", "rich.table", "threadpoolctl"):
        assert heavy not in loaded, heavy


def _imports(path, module: str, is_package: bool, modules) -> set[str]:
    """The cnncli modules `module` imports, at any depth of its code, except under TYPE_CHECKING.
    `from . import x` is an import of the module x when there is one, else of the package."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # drop `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found & set(modules)


def test_the_package_has_no_import_cycles_and_the_spec_side_no_engine():
    modules = {}
    for path in (ROOT / "cnncli").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    edges = {m: _imports(path, m, pkg, modules) for m, (path, pkg) in modules.items()}
    for m in edges:  # a package's __init__ importing its own modules is how packages work
        edges[m].discard(m)
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for target in sorted(edges[m]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(target):] + [m, target]))
            if target not in state:
                visit(target, trail + [m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert edges["cnncli.data.formats"] >= {"cnncli.data.dataset"} and "cnncli.data" not in edges["cnncli.data.formats"]
    # the spec side never reaches into the engine; the ops depend on the declarations, not the reverse
    for m, targets in edges.items():
        if m.startswith(("cnncli.spec", "cnncli.layers")):
            assert not {t for t in targets if t.startswith(("cnncli.ops", "cnncli.model"))}, m


# ----------------------------------------------------------------------------- the shapes table


def _rich(spec, terminal: bool) -> str:
    import io

    from rich.console import Console

    from cnncli.report.shapes import table

    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False, force_terminal=terminal, color_system=None)
    console.print(table(spec, ascii_only=not terminal))
    return out.getvalue()


@pytest.mark.parametrize("name", ["resnet-50", "googlenet", "fashion-tutorial"])
def test_shapes_table_laid_out_directly_is_the_rich_table(name):
    from cnncli.report.shapes import layout
    from cnncli.spec import load

    spec = load(ARCHITECTURES / f"{name}.yaml")
    spec.file = f"architectures/{name}.yaml"  # as a user types it; the title is part of the table
    for terminal in (False, True):
        lines = layout(spec, 200, ascii_only=not terminal)
        assert lines is not None and "".join(text + "\n" for text, _, _ in lines) == _rich(spec, terminal)
    styles = {style for _, style, span in layout(spec, 200, ascii_only=False) if span}
    assert styles == {"italic", "bold", "dim"} | ({"cyan"} if name != "fashion-tutorial" else set())
    assert layout(spec, 40, ascii_only=True) is None  # too wide: rich shrinks the columns
    spec.file = "x" * 150
    assert layout(spec, 200, ascii_only=True) is None  # a title wider than the table: rich wraps it


# ----------------------------------------------------------------------------- kernels


def _sliced(node) -> bool:
    return isinstance(node, ast.Subscript) and any(isinstance(n, ast.Slice) for n in ast.walk(node.slice))


def kernel_slice_copies(source: str) -> list[str]:
    """Array-to-array slice assignments (`a[i:j] = b[k:l]`, `a[i:j] += ...`) in @kernel functions."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and any(isinstance(d, ast.Name) and d.id == "kernel"
                                                        for d in fn.decorator_list)):
            continue
        for node in ast.walk(fn):
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) for t in node.targets)
                    and _sliced(node.value)) or (isinstance(node, ast.AugAssign) and _sliced(node.target)):
                found.append(f"{fn.name}: {ast.unparse(node)}")
    return found


def test_kernels_copy_with_loops_not_slice_assignments():
    """Numba compiles a slice assignment's shape-mismatch message with string formatting: seconds of
    every cold start (benchmarks/first_step.py --kernels shows it). Kernels copy with loops instead."""
    sample = ("@kernel\ndef f(a, b, n):\n    a[1:n] = b[1:n]\n    a[0] += 1\n    a[:n] += b[:n]\n    a[2:n] = 0\n"
              "def g(a, b):\n    a[:] = b[:]\n")
    assert kernel_slice_copies(sample) == ["f: a[1:n] = b[1:n]", "f: a[:n] += b[:n]"]
    offenders = [f"{path.relative_to(ROOT)} {found}" for path in sorted((ROOT / "cnncli").rglob("*.py"))
                 for found in kernel_slice_copies(path.read_text(encoding="utf-8"))]
    assert offenders == []

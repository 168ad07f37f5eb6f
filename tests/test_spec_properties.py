"""Property tests: shapes agree with a brute-force window count; no input text crashes the loader."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncli.errors import UserError
from cnncli.spec import loads

from .helpers import ARCHITECTURES


def windows(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    """Count window positions by walking them, PyTorch's rules (0 when none fit)."""
    span = dilation * (kernel - 1) + 1
    count, start = 0, -pad
    while True:
        end = start + span  # exclusive, in input coordinates
        fits = end <= size + pad
        if ceil:  # may hang over the padded end by less than a stride, but must start inside the input
            fits = start < size and end <= size + pad + stride - 1
        if not fits:
            return count
        count += 1
        start += stride


conv = st.fixed_dictionaries({"kind": st.just("conv"), "k": st.integers(1, 6), "f": st.integers(1, 5),
                              "s": st.integers(1, 3), "p": st.integers(0, 2), "d": st.integers(1, 2),
                              "bias": st.booleans()})
pool = st.integers(1, 3).flatmap(lambda f: st.fixed_dictionaries(
    {"kind": st.sampled_from(["pool", "avgpool"]), "f": st.just(f), "s": st.integers(1, 3),
     "p": st.integers(0, f // 2), "ceil": st.booleans()}))


def text_of(layer: dict) -> str:
    if layer["kind"] == "conv":
        return (f"conv k={layer['k']} f={layer['f']} s={layer['s']} p={layer['p']} d={layer['d']} "
                f"bias={str(layer['bias']).lower()}")
    return f"{layer['kind']} {layer['f']} s={layer['s']} p={layer['p']} ceil={str(layer['ceil']).lower()}"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.integers(4, 40), st.integers(4, 40), st.lists(st.one_of(conv, pool), min_size=1, max_size=6))
def test_shapes_and_params_agree_with_brute_force(channels, height, width, layers):
    text = f"input: {channels}x{height}x{width}\nnet: " + " -> ".join(text_of(layer) for layer in layers) + "\n"
    c, h, w = channels, height, width
    expected_shapes, expected_params, collapsed = [], 0, False
    for layer in layers:
        d = layer.get("d", 1)
        h = windows(h, layer["f"], layer["s"], layer["p"], d, layer.get("ceil", False))
        w = windows(w, layer["f"], layer["s"], layer["p"], d, layer.get("ceil", False))
        if h <= 0 or w <= 0:
            collapsed = True
            break
        if layer["kind"] == "conv":
            weight = np.zeros((layer["k"], c, layer["f"], layer["f"]))
            expected_params += weight.size + (layer["k"] if layer["bias"] else 0)
            c = layer["k"]
        expected_shapes.append((c, h, w))
    try:
        spec = loads(text, "t.yaml")
    except UserError as exc:
        assert collapsed, str(exc)
        assert "collapses" in exc.message
        return
    assert not collapsed
    assert [n.shape for n in spec.nodes] == expected_shapes
    assert spec.total_params == expected_params


VALID = (ARCHITECTURES / "googlenet.yaml").read_text() + "\ntrain:\n  optimizer: sgd lr=0.1 momentum=0.9\n"
ALPHABET = "abcdefgkpsxyz0123456789 =->|(),$*/{}:[]#'\"\n\t.!&@"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 3), st.text(ALPHABET, max_size=4)),
                min_size=1, max_size=4))
def test_mutated_specs_give_only_user_errors(edits):
    text = VALID
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    try:
        loads(text, "fuzz.yaml")
    except UserError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=400, deadline=None)
@given(st.text(ALPHABET, max_size=80))
def test_random_chains_give_only_user_errors(chain):
    try:
        loads("input: 3x16x16\nblocks:\n  b(k, n=2): conv k=$k f=3 p=1 x$n\nnet: " + chain + "\n", "fuzz.yaml")
    except UserError:
        pass

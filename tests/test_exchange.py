"""cnn export (ONNX, safetensors) and cnn import, checked by running the graphs in onnxruntime.

Needs the `onnx`, `onnxruntime` and `safetensors` extras (in `dev`); skipped without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnncli import spec as specs  # noqa: E402
from cnncli.errors import UserError  # noqa: E402
from cnncli.evaluate import load_trained  # noqa: E402
from cnncli.exchange import export  # noqa: E402
from cnncli.exchange.common import Source, load_source  # noqa: E402
from cnncli.exchange.onnx_export import build  # noqa: E402
from cnncli.exchange.onnx_import import import_onnx  # noqa: E402
from cnncli.model import Model  # noqa: E402

from .helpers import ARCHITECTURES, ROOT  # noqa: E402
from .test_cli_shapes import cnn  # noqa: E402

TOLERANCE = 1e-4


def session(proto_or_path):
    data = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else proto_or_path
    data = str(data) if isinstance(data, Path) else data
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # each operator as written
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def logits(model: Model, x: np.ndarray) -> np.ndarray:
    """cnncli's eval-mode output before a folded softmax, as (N, outputs)."""
    model.forward_internal(model.to_internal(x), train=False)
    y = model.output_of(model.logits_node)
    return y.reshape(y.shape[0], -1).T.astype(np.float64)


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-12))


def imported_outputs(npz: Path, x: np.ndarray) -> np.ndarray:
    """The imported model on inputs the ONNX graph takes: the checkpoint's normalisation first."""
    trained = load_trained(npz)
    norm = trained.meta["normalisation"]
    mean = np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
    model = trained.model
    model.forward_internal(model.to_internal((x - mean) / std), train=False)
    y = model.output_of(model.spec.output_node)  # the whole network, a final softmax included
    return y.reshape(y.shape[0], -1).T.astype(np.float64)


def spec_file(tmp_path: Path, text: str, name: str = "net.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- every layer option

OPTIONS = """\
name: options
input: 3x10x13
classes: 5
net:
  - conv k=8 f=3 s=2 p=same -> bn -> relu6 -> conv k=8 f=3 d=2 p=2 g=2 -> bn affine=false eps=0.001 -> lrelu 0.2
  - conv f=3 g=dw p=1 -> elu alpha=0.7 -> lrn 3 alpha=0.01 beta=0.6 k=2 -> pool 3 s=1 p=1 ceil=true
  - mul(id | gap -> conv k=8 f=1 -> hardsigmoid) -> gelu -> silu -> hardswish
  - add(conv k=8 f=1 -> sigmoid | id | id) -> avgpool 2 s=2 p=1 ceil=true
  - cat(conv k=6 f=3 p=1 -> tanh | l2pool 3 s=1 p=1 | conv k=4 f=1 bias=false) -> l2pool 2 ceil=true
  - add(shortcut k=20 s=2 | conv k=20 f=1 s=2) -> dropout 0.3 -> cat(gap | gmp) -> flatten -> fc 12 -> bn
  - relu -> fc 5 -> softmax
"""


def test_every_layer_option_exports_and_runs_in_onnxruntime(tmp_path):
    spec = specs.loads(OPTIONS, "options.yaml")
    widths = {n.name: n.shape for n in spec.nodes}
    assert widths["avgpool1"] == (8, 3, 4)  # ceil, and a last window may not start in the padding
    model = Model(spec, np.float32, seed=3)
    rng = np.random.default_rng(1)
    for name, value in model.buffers().items():  # running statistics that are not 0 and 1
        value[...] = rng.uniform(0.2, 1.5, value.shape) if "var" in name else rng.normal(0, 0.3, value.shape)
    source = Source(model, None, None, "test")
    proto = build(source)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    x = rng.random((4, 3, 10, 13), dtype=np.float32)
    got_logits, got_probs = session(proto).run(["logits", "probabilities"], {"input": x})
    want = logits(model, x)
    assert relative(got_logits, want) < TOLERANCE
    e = np.exp(want - want.max(axis=1, keepdims=True))
    assert relative(got_probs, e / e.sum(axis=1, keepdims=True)) < TOLERANCE
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "BatchNormalization", "Clip", "LeakyRelu", "Elu", "LRN", "MaxPool", "AveragePool", "LpPool",
            "Slice", "Pad", "Sum", "Concat", "Dropout", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Gemm",
            "Softmax", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Mul"} <= ops
    conv2 = next(n for n in proto.graph.node if n.name == "conv2")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv2.attribute}
    assert attrs["group"] == 2 and attrs["dilations"] == [2, 2] and attrs["pads"] == [2, 2, 2, 2]
    conv1 = next(n for n in proto.graph.node if n.name == "conv1")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv1.attribute}
    assert attrs["pads"] == [0, 1, 1, 1]  # 'same': top, left, bottom, right; the odd pixel at the end

    # and back: the same layers, weights and outputs
    path = tmp_path / "options.onnx"
    path.write_bytes(proto.SerializeToString())
    import_onnx(path, tmp_path / "back.yaml")
    back = specs.load(tmp_path / "back.yaml")
    # fc flattens by itself, and the final softmax is what `probabilities` computes
    assert [n.kind.name for n in back.nodes] == [n.kind.name for n in spec.nodes if n.name not in ("softmax1", "flatten1")]
    assert (back.total_params, back.total_macs, back.buffers) == (spec.total_params, spec.total_macs, spec.buffers)
    assert relative(imported_outputs(tmp_path / "back.npz", x), want) < TOLERANCE


def test_even_lrn_window_is_written_out(tmp_path):
    """ONNX centres an even LRN window one channel later than PyTorch; the export spells it out."""
    spec = specs.loads("input: 6x4x4\nnet: lrn 4 alpha=0.5 beta=0.75 k=1 -> gap\n", "lrn.yaml")
    model = Model(spec, np.float32)
    proto = build(Source(model, None, None, "test"))
    assert "LRN" not in {n.op_type for n in proto.graph.node}
    x = np.random.default_rng(0).normal(0, 2, (2, 6, 4, 4)).astype(np.float32)
    (got,) = session(proto).run(["output"], {"input": x})
    # by hand, channel 0 sees channels 0..1 (c - 2 .. c + 1, clipped)
    lrn0 = x[:, 0] / (1 + 0.5 / 4 * (x[:, 0] ** 2 + x[:, 1] ** 2)) ** 0.75
    assert np.allclose(got[:, 0], lrn0.mean(axis=(1, 2)), rtol=1e-5)
    assert relative(got, logits(model, x)) < TOLERANCE


def test_a_layer_without_an_onnx_form_is_refused_by_name(monkeypatch):
    from cnncli.exchange.onnx_export import GraphBuilder

    monkeypatch.delattr(GraphBuilder, "layer_gelu")  # as a kind added later without its ONNX form would be
    spec = specs.loads("input: 1x4x4\nnet:\n  - conv k=2 f=3 -> gelu -> gap\n", "g.yaml")
    with pytest.raises(UserError) as info:
        build(Source(Model(spec, np.float32), None, None, "test"))
    assert str(info.value).startswith("g.yaml:3:21: layer 'gelu' (gelu1): gelu has no ONNX form in this cnncli")


def test_regression_model_gives_output(tmp_path):
    spec = specs.loads("input: 1x6x6\noutput: 2\nnet: conv k=3 f=3 -> relu -> fc 2\n", "reg.yaml")
    model = Model(spec, np.float32, seed=1)
    proto = build(Source(model, None, None, "test"))
    assert [o.name for o in proto.graph.output] == ["output"]
    x = np.random.default_rng(0).random((3, 1, 6, 6), dtype=np.float32)
    assert relative(session(proto).run(["output"], {"input": x})[0], model.forward(x)) < TOLERANCE
    path = tmp_path / "reg.onnx"
    path.write_bytes(proto.SerializeToString())
    import_onnx(path, tmp_path / "reg.yaml")
    assert "output: 2" in (tmp_path / "reg.yaml").read_text()


# ----------------------------------------------------------------------------- the shipped architectures


def smallest_input(path: Path) -> str:
    c = specs.load(path).input[0]
    for size in range(8, 257):
        try:
            specs.load(path, input_shape=f"{c}x{size}x{size}")
            return f"{c}x{size}x{size}"
        except UserError:
            continue
    raise AssertionError(path)


@pytest.mark.parametrize("name", sorted(p.stem for p in ARCHITECTURES.glob("*.yaml")))
def test_shipped_architecture_exports_runs_and_imports_back(name, tmp_path):
    path = ARCHITECTURES / f"{name}.yaml"
    shape = smallest_input(path)
    source = load_source(path, seed=2, input_shape=shape)
    model = source.model
    proto = build(source)
    data = proto.SerializeToString()
    c, h, w = model.spec.input
    x = np.random.default_rng(0).random((2, c, h, w), dtype=np.float32)
    want = logits(model, x)
    (got,) = session(data).run(["logits"], {"input": x})
    assert relative(got, want) < TOLERANCE
    # Deep nets at their initial weights fade to almost nothing before the head, so every layer's
    # output is compared, each relative to its own scale (cnncli's model here is unfused).
    produced = {o for n in proto.graph.node for o in n.output}
    layers = [n for n in model.spec.nodes if n.name in produced]
    assert len(layers) >= len(model.spec.nodes) - 2
    proto.graph.output.extend(helper.make_tensor_value_info(n.name, TensorProto.FLOAT, None) for n in layers)
    for node, value in zip(layers, session(proto).run([n.name for n in layers], {"input": x})):
        y = model.output_of(node.index)
        mine = y.reshape(y.shape[0], -1).T if len(node.shape) == 1 else y.transpose(3, 0, 1, 2)
        assert np.abs(mine).max() > 0 and relative(value.reshape(mine.shape), mine) < TOLERANCE, node.name

    onnx_file = tmp_path / f"{name}.onnx"
    onnx_file.write_bytes(data)
    import_onnx(onnx_file, tmp_path / f"{name}.yaml")
    back = specs.load(tmp_path / f"{name}.yaml").summary()
    original = model.spec.summary()
    for key in ("input", "output", "classes", "total_params", "trainable_params", "buffers", "total_macs"):
        assert back[key] == original[key], key
    imported = load_trained(tmp_path / f"{name}.npz").model  # the same weights, layer by layer in order
    for mine, theirs in ((model.params(), imported.params()), (model.buffers(), imported.buffers())):
        assert all(np.array_equal(a, b) for a, b in zip(mine.values(), theirs.values(), strict=True))
    assert relative(imported_outputs(tmp_path / f"{name}.npz", x), want) < TOLERANCE


# ----------------------------------------------------------------------------- a trained run, through the CLI

from .test_evaluate import run  # noqa: E402,F401  (the module's briefly trained run, a fixture)
from .test_runs import sample_npz  # noqa: E402


def test_trained_run_probabilities_equal_cnn_predict(run, tmp_path):
    out = tmp_path / "tiny.onnx"
    r = cnn("export", str(run), str(out))
    assert r.returncode == 0 and r.stdout == "" and r.stderr.startswith(f"wrote {out}: tiny")
    predicted = json.loads(cnn("predict", str(run), "--data", "fashion-mnist-sample", "--index", "0,1,7",
                               "--top", "10", "--json").stdout)
    from cnncli.data import resolve

    images = resolve("fashion-mnist-sample").x_test[[0, 1, 7]].astype(np.float32) / 255  # as cnn predict scales
    probs = session(out).run(["probabilities"], {"input": images})[0]
    for row, result in zip(probs, predicted):
        want = {t["index"]: t["probability"] for t in result["top"]}
        assert np.allclose([row[k] for k in sorted(want)], [want[k] for k in sorted(want)], rtol=TOLERANCE, atol=1e-7)
    model = onnx.load(str(out))
    assert [n.op_type for n in model.graph.node][:2] == ["Sub", "Div"]  # the stored normalisation
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["cnncli.class_names"])[0] == "T-shirt/top"

    # imported back, the run's normalisation and class names return, and cnn eval gives the same accuracy
    r = cnn("import", str(out), str(tmp_path / "tiny.yaml"))
    assert r.returncode == 0, r.stderr
    meta = load_trained(tmp_path / "tiny.npz").meta
    assert np.allclose(meta["normalisation"]["mean"], load_trained(run).meta["normalisation"]["mean"])
    assert meta["class_names"][9] == "Ankle boot"
    a = json.loads(cnn("eval", str(run), "--json").stdout)
    b = json.loads(cnn("eval", str(tmp_path / "tiny.npz"), "--data", "fashion-mnist-sample", "--json").stdout)
    assert a["accuracy"] == b["accuracy"] and abs(a["loss"] - b["loss"]) < 1e-5
    assert cnn("shapes", str(tmp_path / "tiny.yaml")).returncode == 0
    # ... and fine-tuned from its imported weights
    r = cnn("train", str(tmp_path / "tiny.yaml"), "--weights", str(tmp_path / "tiny.npz"), "--data",
            sample_npz(tmp_path / "few.npz", count=600), "--epochs", "1", "--set", "val=200", "--out",
            str(tmp_path / "tuned"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["weights"]["new"] == [] and "loaded conv1, bn1, fc1" in r.stderr


def test_safetensors_holds_every_weight_in_pytorch_layout(run, tmp_path):
    out = tmp_path / "w.safetensors"
    assert cnn("export", str(run / "checkpoints" / "best.npz"), str(out)).returncode == 0  # a checkpoint file
    tensors = safetensors_numpy.load_file(str(out))
    trained = load_trained(run)
    want = {**trained.model.params(), **trained.model.buffers()}
    assert set(tensors) == set(want)
    for key, value in want.items():
        assert tensors[key].dtype == np.float32 and np.array_equal(tensors[key], value), key
    assert tensors["conv1.weight"].shape == (8, 1, 5, 5) and tensors["fc1.weight"].shape == (10, 8 * 14 * 14)


def test_safetensors_loads_into_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    path = ARCHITECTURES / "fashion-tutorial.yaml"
    out = tmp_path / "t.safetensors"
    export(path, out, seed=4)

    class Tutorial(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16)
            self.conv2, self.bn2 = nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32)
            self.fc1 = nn.Linear(32 * 7 * 7, 10)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
            x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
            return self.fc1(torch.flatten(x, 1))

    net = Tutorial().eval()
    missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in
                                               safetensors_numpy.load_file(str(out)).items()}, strict=False)
    assert unexpected == [] and all(m.endswith("num_batches_tracked") for m in missing)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert relative(got, Model.from_spec(path, seed=4).forward(x)) < TOLERANCE


# ----------------------------------------------------------------------------- ONNX files from other exporters


def _model(nodes, inits, shape, outputs, opset=13):
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", None]) for name in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32 if k not in INT_NAMES else np.int64), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


INT_NAMES = {"flat_shape", "pads", "shape"}


def _round(model, tmp_path, name, shape, rng):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    import_onnx(path, tmp_path / f"{name}.yaml")
    x = rng.random((3, *shape), dtype=np.float32)
    want = session(path).run([model.graph.output[0].name], {"x": x})[0]
    got = imported_outputs(tmp_path / f"{name}.npz", x)
    text = (tmp_path / f"{name}.yaml").read_text()
    chain = " -> ".join(line[4:] for line in text.splitlines() if line.startswith("  - "))  # the net: lines
    return text, chain, relative(got, want.reshape(len(x), -1))


def test_pytorch_style_conv_bias_bn_reshape_gemm(tmp_path):
    """torch.onnx.export's way: Conv with bias then BatchNormalization, Flatten as a Reshape with a
    constant shape, Linear as Gemm with transB=1, and input normalisation as Sub and Div."""
    rng = np.random.default_rng(0)
    r = lambda *s: rng.normal(0, 0.3, s)  # noqa: E731
    inits = {"mean": [[[0.5]], [[0.4]]], "std": [[[0.2]], [[0.3]]], "c1.w": r(6, 2, 3, 3), "c1.b": r(6),
             "bn.s": rng.uniform(0.5, 1.5, 6), "bn.b": r(6), "bn.m": r(6), "bn.v": rng.uniform(0.5, 2, 6),
             "flat_shape": [-1, 6 * 4 * 4], "fc.w": r(7, 96), "fc.b": r(7), "fc2.w": r(3, 7), "fc2.b": r(3)}
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xc"], name="/Sub"),
        helper.make_node("Div", ["xc", "std"], ["xn"], name="/Div"),
        helper.make_node("Conv", ["xn", "c1.w", "c1.b"], ["c1"], name="/features/0/Conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.s", "bn.b", "bn.m", "bn.v"], ["b1"], epsilon=1e-3,
                         name="/features/1/BatchNormalization"),
        helper.make_node("Relu", ["b1"], ["r1"], name="/features/2/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="/features/3/MaxPool"),
        helper.make_node("Reshape", ["p1", "flat_shape"], ["f"], name="/Reshape"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["g1"], transB=1, alpha=1.0, beta=1.0, name="/fc/Gemm"),
        helper.make_node("Relu", ["g1"], ["r2"], name="/Relu_1"),
        helper.make_node("Gemm", ["r2", "fc2.w", "fc2.b"], ["logits"], transB=1, name="/fc2/Gemm"),
    ]
    model = _model(nodes, inits, (2, 8, 8), ["logits"])
    text, chain, error = _round(model, tmp_path, "torchlike", (2, 8, 8), rng)
    assert chain == "conv k=6 f=3 p=1 -> bn eps=0.001 -> relu -> pool 2 -> fc 7 -> relu -> fc 3"
    assert "classes: 3" in text and error < TOLERANCE
    meta = load_trained(tmp_path / "torchlike.npz").meta
    assert np.allclose(meta["normalisation"]["mean"], [0.5, 0.4]) and np.allclose(meta["normalisation"]["std"], [0.2, 0.3])


def test_keras_style_same_padding_clip_matmul_softmax(tmp_path):
    """tf2onnx's way: auto_pad SAME_UPPER, an explicit Pad before a strided conv, ReLU6 as Clip,
    depthwise conv, global pooling, Flatten, Dense as MatMul + Add, a Softmax output."""
    rng = np.random.default_rng(1)
    r = lambda *s: rng.normal(0, 0.3, s)  # noqa: E731
    inits = {"w1": r(8, 3, 3, 3), "b1": r(8), "pads": [0, 0, 0, 0, 0, 0, 1, 1], "dw": r(8, 1, 3, 3),
             "lo": np.float32(0), "hi": np.float32(6), "pw": r(12, 8, 1, 1), "pwb": r(12), "dense": r(12, 4),
             "dense_b": r(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], auto_pad="SAME_UPPER", kernel_shape=[3, 3], strides=[2, 2],
                         name="model/conv1/Conv2D"),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"], name="model/conv1_relu/Relu6"),
        helper.make_node("Pad", ["a1", "pads"], ["pd"], mode="constant", name="model/pad/Pad"),
        helper.make_node("Conv", ["pd", "dw"], ["c2"], group=8, kernel_shape=[3, 3], strides=[2, 2],
                         name="model/conv_dw/depthwise"),
        helper.make_node("Conv", ["c2", "pw", "pwb"], ["c3"], kernel_shape=[1, 1], name="model/conv_pw/Conv2D"),
        helper.make_node("LeakyRelu", ["c3"], ["a3"], alpha=0.1, name="model/leaky"),
        helper.make_node("GlobalAveragePool", ["a3"], ["gp"], name="model/gap"),
        helper.make_node("Flatten", ["gp"], ["fl"], name="model/flatten"),
        helper.make_node("MatMul", ["fl", "dense"], ["mm"], name="model/dense/MatMul"),
        helper.make_node("Add", ["mm", "dense_b"], ["ad"], name="model/dense/BiasAdd"),
        helper.make_node("Softmax", ["ad"], ["probs"], axis=-1, name="model/dense/Softmax"),
    ]
    model = _model(nodes, inits, (3, 12, 12), ["probs"])
    text, chain, error = _round(model, tmp_path, "keraslike", (3, 12, 12), rng)
    assert chain == ("conv k=8 f=3 s=2 p=same -> relu6 -> conv k=8 f=3 s=2 p=same g=dw bias=false -> conv k=12 f=1 "
                     "-> lrelu 0.1 -> gap -> fc 4 -> softmax")
    assert "classes: 4" in text and error < TOLERANCE


def test_caffe_style_inception_lrn_ceil_pool_dropout(tmp_path):
    """Caffe converters' way: LRN, ceil-mode pooling, an Inception concat, AveragePool counting the
    padding, Dropout with a ratio attribute (opset 10), Gemm with transB=0 and alpha/beta."""
    rng = np.random.default_rng(2)
    r = lambda *s: rng.normal(0, 0.3, s)  # noqa: E731
    inits = {"w0": r(8, 3, 5, 5), "b0": r(8), "wa": r(4, 8, 1, 1), "ba": r(4), "wb": r(6, 8, 3, 3), "bb": r(6),
             "fc": r(10 * 4 * 4, 5), "fcb": r(5)}
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], name="conv1"),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu1"),
        helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, name="pool1"),
        helper.make_node("LRN", ["p0"], ["n0"], size=5, alpha=1e-3, beta=0.75, bias=2.0, name="norm1"),
        helper.make_node("Conv", ["n0", "wa", "ba"], ["ia"], kernel_shape=[1, 1], name="inception/1x1"),
        helper.make_node("Conv", ["n0", "wb", "bb"], ["ib"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         name="inception/3x3"),
        helper.make_node("Relu", ["ib"], ["ibr"], name="inception/relu_3x3"),
        helper.make_node("Concat", ["ia", "ibr"], ["cat"], axis=1, name="inception/output"),
        helper.make_node("AveragePool", ["cat"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1, ceil_mode=1, name="pool2"),
        helper.make_node("Dropout", ["ap"], ["dr"], ratio=0.4, name="drop"),
        helper.make_node("Flatten", ["dr"], ["fl"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["fl", "fc", "fcb"], ["out"], alpha=0.5, beta=2.0, name="loss3/classifier"),
    ]
    model = _model(nodes, inits, (3, 14, 14), ["out"], opset=10)
    text, chain, error = _round(model, tmp_path, "caffelike", (3, 14, 14), rng)
    assert chain == ("conv k=8 f=5 p=2 -> relu -> pool 3 s=2 ceil=true -> lrn 5 alpha=0.001 k=2 -> "
                     "cat(conv k=4 f=1 | conv k=6 f=3 p=1 -> relu) -> avgpool 3 s=2 p=1 ceil=true -> dropout 0.4 -> fc 5")
    assert error < TOLERANCE


# ----------------------------------------------------------------------------- mistakes and hostile files


def _write(tmp_path, model, name="bad.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString() if hasattr(model, "SerializeToString") else model)
    return path


def _simple(op_nodes, inits=None, outputs=("y",)):
    graph = helper.make_graph(op_nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 4, 4])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_operator_names_it_and_the_node(tmp_path):
    model = _simple([helper.make_node("Relu", ["x"], ["r"], name="ok"),
                     helper.make_node("Transpose", ["r"], ["y"], perm=[0, 1, 3, 2], name="swap\x1b[31m")])
    r = cnn("import", str(_write(tmp_path, model)), str(tmp_path / "o.yaml"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) <= 2 and "Traceback" not in r.stderr
    assert "node 'swap\\x1b[31m' (Transpose): operator Transpose has no counterpart" in r.stderr
    assert "\x1b" not in r.stderr and not (tmp_path / "o.yaml").exists()


@pytest.mark.parametrize("case", ["truncated", "garbage", "huge tensor", "cycle", "external data", "dynamic input",
                                  "empty"])
def test_hostile_files_end_in_one_error(tmp_path, case):
    good = _simple([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])],
                   [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")])
    if case == "truncated":
        data = good.SerializeToString()[:-20]
    elif case == "garbage":
        data = os.urandom(4096)
    elif case == "huge tensor":
        huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**20, 2**20, 3, 3], raw_data=b"\0" * 16)
        good.graph.initializer[0].CopyFrom(huge)  # claims 40 TB, holds 16 bytes
        data = good
    elif case == "cycle":
        data = _simple([helper.make_node("Relu", ["x2"], ["y"], name="a"), helper.make_node("Add", ["y", "x"], ["x2"],
                                                                                             name="b")])
    elif case == "external data":
        t = good.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="/etc/passwd")
        data = good
    elif case == "dynamic input":
        good.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
        data = good
    else:
        data = b""
    r = cnn("import", str(_write(tmp_path, data)), str(tmp_path / "o.yaml"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert {"truncated": "not a readable ONNX model", "garbage": "not a readable ONNX model",
            "huge tensor": "claims 9,895,604,649,984 values but holds 4", "cycle": "node 'a' (Relu): is part of a cycle",
            "external data": "stored in an external file", "dynamic input": "is [?, 1, ?, 4]",
            "empty": "holds no graph"}[case] in r.stderr
    assert not (tmp_path / "o.yaml").exists() and not (tmp_path / "o.npz").exists()


def test_export_mistakes_are_one_line(tmp_path):
    tutorial = str(ARCHITECTURES / "fashion-tutorial.yaml")
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, words in (([tutorial, str(tmp_path / "x.pt")], "ends neither in .onnx nor in .safetensors"),
                        ([tutorial, str(blocker / "x.onnx")], "cannot write"),
                        ([str(tmp_path / "none.npz"), str(tmp_path / "x.onnx")], "no such checkpoint"),
                        ([tutorial, str(tmp_path / "x.onnx"), "--input", "1x2x2"], "collapses")):
        r = cnn("export", *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert list(tmp_path.iterdir()) == [blocker]


def test_import_mistakes_are_one_line(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(build(load_source(ARCHITECTURES / "lenet-5.yaml")).SerializeToString())
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, words in (([str(onnx_file), str(tmp_path / "m.txt")], "must end in .yaml"),
                        ([str(onnx_file), str(blocker / "m.yaml")], "cannot write"),
                        ([str(tmp_path / "none.onnx"), str(tmp_path / "m.yaml")], "no such file"),
                        ([str(tmp_path), str(tmp_path / "m.yaml")], "is a directory")):
        r = cnn("import", *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.onnx"]


def test_export_input_override_and_seed(tmp_path):
    out = tmp_path / "r.onnx"
    r = cnn("export", str(ARCHITECTURES / "resnet-20-cifar.yaml"), str(out), "--input", "3x16x16", "--seed", "5")
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(out))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ref = Model.from_spec(specs.load(ARCHITECTURES / "resnet-20-cifar.yaml", input_shape="3x16x16"), seed=5)
    assert np.array_equal(weights["conv1.weight"], ref.param("conv1.weight"))
    assert "normalisation.mean" not in weights  # a bare spec has none


def test_help_examples_work(tmp_path):
    env = {"PYTHONPATH": str(ROOT)}
    for command in ("export", "import"):
        help_text = cnn(command, "--help").stdout
        example = next(line for line in help_text.splitlines() if "Example: cnn " + command in line)
        args = example.split("Example: cnn ", 1)[1].split()
        args = [str(ROOT / a) if a.startswith("architectures/") else a for a in args]
        r = subprocess.run([sys.executable, "-m", "cnncli", *args], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, **env}, timeout=120)
        assert r.returncode == 0, (args, r.stderr)
    assert specs.load(tmp_path / "lenet-5.yaml").total_params == 61_706

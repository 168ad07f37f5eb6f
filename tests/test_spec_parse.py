"""The spec language: chains, repeats, branches, blocks, defaults, naming."""

from __future__ import annotations

from cnncli.spec import Fork, Identity, loads

from .helpers import net

TUTORIAL = "conv k=16 f=5 p=2 -> bn -> relu -> pool 2 -> conv k=32 f=5 p=2 -> bn -> relu -> pool 2 -> fc 10"


def test_design_card_chain_parses_exactly_as_written():
    spec = net(TUTORIAL)
    assert [n.name for n in spec.nodes] == [
        "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2", "fc1"]
    assert [n.kind.name for n in spec.nodes] == [
        "conv", "bn", "relu", "pool", "conv", "bn", "relu", "pool", "fc"]
    conv1 = spec.nodes[0]
    assert conv1.params["k"] == 16 and conv1.params["f"] == (5, 5) and conv1.params["p"] == (2, 2)
    assert conv1.params["s"] == (1, 1) and conv1.params["bias"] is True
    assert spec.nodes[3].params["f"] == (2, 2) and spec.nodes[3].params["s"] is None
    assert spec.nodes[-1].params["units"] == 10
    assert [n.inputs for n in spec.nodes] == [[-1], [0], [1], [2], [3], [4], [5], [6], [7]]
    assert conv1.text == "conv k=16 f=5 p=2"


def test_positional_forms():
    spec = net("conv 8 3 -> pool 3 2 -> dropout 0.25 -> lrelu 0.2 -> fc 10")
    conv, pool, drop, lrelu, fc = spec.nodes
    assert conv.params["k"] == 8 and conv.params["f"] == (3, 3)
    assert pool.params["f"] == (3, 3) and pool.params["s"] == (2, 2)
    assert drop.params["rate"] == 0.25 and lrelu.params["slope"] == 0.2 and fc.params["units"] == 10


def test_rectangular_kernel_stride_padding_and_same():
    spec = net("conv k=4 f=3x5 s=1x2 p=1x2 -> conv k=4 f=4 s=2 p=same", input="1x10x11")
    a, b = spec.nodes
    assert a.shape == (4, 10, 6)  # H: (10-3+2)/1+1 = 10 ; W: (11-5+4)/2+1 = 6
    assert b.shape == (4, 5, 3)  # 'same' with stride 2: ceil(10/2), ceil(6/2)


def test_input_as_list_and_yaml_list_net():
    spec = loads("input: [3, 32, 32]\nnet:\n  - conv k=8 f=3 p=1 -> relu\n  - pool 2\n  - fc 10\n", "t.yaml")
    assert spec.input == (3, 32, 32)
    assert [n.shape for n in spec.nodes] == [(8, 32, 32), (8, 32, 32), (8, 16, 16), (10,)]


def test_repeat_of_a_sub_chain():
    spec = net("(conv k=8 f=3 p=1 -> relu) x3 -> pool 2")
    assert [n.name for n in spec.nodes] == ["conv1", "relu1", "conv2", "relu2", "conv3", "relu3", "pool1"]
    assert spec.nodes[2].in_shapes == [(8, 28, 28)]
    assert spec.total_params == (9 * 1 * 8 + 8) + 2 * (9 * 8 * 8 + 8)


def test_repeat_with_space_and_single_layer():
    spec = net("conv k=4 f=3 p=1 x 2 -> relu x2")
    assert [n.name for n in spec.nodes] == ["conv1", "conv2", "relu1", "relu2"]


def test_residual_sum_with_identity_and_projection():
    spec = net("add(conv k=1 f=3 p=1 -> bn | id) -> add(conv k=8 f=3 s=2 p=1 | conv k=8 f=1 s=2)")
    add1 = spec.node("add1")
    assert add1.inputs == [spec.node("bn1").index, -1]
    add2 = spec.node("add2")
    assert add2.shape == (8, 14, 14)
    assert [spec.nodes[i].name for i in add2.inputs] == ["conv2", "conv3"]
    fork = spec.tree[0]
    assert isinstance(fork, Fork) and isinstance(fork.branches[1][0], Identity)


def test_parameter_free_shortcut():
    spec = net("add(conv k=32 f=3 s=2 p=1 | shortcut k=32 s=2)", input="16x32x32")
    assert spec.node("shortcut1").shape == (32, 16, 16)
    assert spec.node("shortcut1").info.params == 0
    assert spec.node("add1").shape == (32, 16, 16)


def test_concatenation_adds_channels():
    spec = net("cat(conv k=64 f=1 | conv k=96 f=1 -> conv k=128 f=3 p=1 | pool 3 s=1 p=1 -> conv k=32 f=1)",
               input="192x28x28")
    assert spec.node("cat1").shape == (64 + 128 + 32, 28, 28)
    assert len(spec.node("cat1").inputs) == 3


def test_blocks_with_defaults_arithmetic_and_nesting():
    spec = loads(
        "input: 3x32x32\n"
        "blocks:\n"
        "  cbr(k, f=3): conv k=$k f=$f p=${f/2} -> bn -> relu\n"
        "  stage(k, n): cbr($k) x$n -> cbr(${k*2}, 1) -> pool 2\n"
        "net: stage(8, 2) -> stage(k=16, n=1) -> fc 10\n", "t.yaml")
    names = [n.name for n in spec.nodes]
    assert names[:4] == ["stage1.cbr1.conv1", "stage1.cbr1.bn1", "stage1.cbr1.relu1", "stage1.cbr2.conv1"]
    assert spec.node("stage1.cbr3.conv1").params["k"] == 16
    assert spec.node("stage1.cbr3.conv1").params["p"] == (0, 0)
    assert spec.node("stage1.cbr1.conv1").params["p"] == (1, 1)
    assert spec.node("stage2.cbr2.conv1").shape == (32, 16, 16)
    assert spec.node("stage2.pool1").shape == (32, 8, 8)


def test_spec_vars_substitute_into_net_and_block_calls():
    spec = loads("input: 1x8x8\nvars: {width: 6, rate: 0.25}\nblocks:\n  unit(k): conv k=$k f=3 p=1 -> relu\n"
                 "net: unit($width) -> conv k=${width*2} f=1 -> dropout $rate -> fc 10\n", "t.yaml")
    assert spec.node("unit1.conv1").params["k"] == 6
    assert spec.node("conv1").shape == (12, 8, 8)
    assert spec.node("dropout1").params["rate"] == 0.25
    assert spec.node("conv1").where.line == 5


def test_block_call_without_parentheses_and_name():
    spec = loads("input: 1x8x8\nblocks:\n  unit(k): conv k=$k f=3 p=1 -> relu\n"
                 "net: unit 4 name=stem -> unit k=8 -> conv k=2 f=1 name=head\n", "t.yaml")
    assert [n.name for n in spec.nodes] == ["stem.conv1", "stem.relu1", "unit1.conv1", "unit1.relu1", "head"]


def test_defaults_section_applies_per_kind_and_is_overridable():
    spec = loads("input: 3x8x8\ndefaults:\n  conv: {bias: false}\n  bn: {eps: 0.001}\n"
                 "net: conv k=4 f=3 -> bn -> conv k=4 f=3 bias=true\n", "t.yaml")
    assert spec.nodes[0].params["bias"] is False and spec.nodes[0].info.params == 4 * 3 * 9
    assert spec.nodes[1].params["eps"] == 0.001
    assert spec.nodes[2].params["bias"] is True and spec.nodes[2].info.params == 4 * 4 * 9 + 4


def test_aliases_resolve_to_one_kind():
    spec = net("conv2d k=2 f=3 -> batchnorm -> leaky_relu -> maxpool 2 -> dense 5")
    assert [n.kind.name for n in spec.nodes] == ["conv", "bn", "lrelu", "pool", "fc"]
    assert [n.name for n in spec.nodes] == ["conv1", "bn1", "lrelu1", "pool1", "fc1"]


def test_every_layer_kind_parses():
    spec = net("conv k=8 f=3 p=1 -> bn -> relu -> relu6 -> lrelu -> elu -> sigmoid -> tanh -> lrn 3 "
               "-> avgpool 2 -> l2pool 2 -> pool 2 s=1 -> dropout -> softmax -> add(gap | gmp) -> flatten -> fc 4")
    assert spec.output_shape == (4,)
    assert spec.node("add1").shape == (8, 1, 1)


def test_train_section_is_validated_and_parsed():
    spec = loads("input: 1x28x28\nnet: fc 10\ntrain:\n  epochs: 3\n  optimizer: sgd lr=0.1 momentum=0.9 nesterov=true\n"
                 "  schedule: multistep 3,6 gamma=0.5\n  augment: [flip, crop 2]\n  val: 0.1\n", "t.yaml")
    assert spec.train.epochs == 3 and spec.train.batch == 64  # the default
    assert spec.train.optimizer == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                       "weight_decay": 0.0, "dampening": 0.0}
    assert spec.train.schedule == {"name": "multistep", "at": (3, 6), "gamma": 0.5}
    assert spec.train.augment == [{"name": "flip", "p": 0.5}, {"name": "crop", "pad": 2}]


def test_multiline_yaml_chain_and_comments():
    spec = loads("input: 1x28x28  # grey\nnet: >-\n  conv k=4 f=3\n  -> relu\n  -> fc 10\n", "t.yaml")
    assert [n.name for n in spec.nodes] == ["conv1", "relu1", "fc1"]
    assert spec.nodes[1].where.line == 4 and spec.nodes[1].where.column == 6


def test_shipped_se_block_and_a_spec_own_block_wins():
    spec = net("conv k=8 f=3 p=1 -> se(8, 2)", "3x6x6")
    kinds = [n.kind.name for n in spec.nodes]
    assert kinds == ["conv", "gap", "conv", "relu", "conv", "sigmoid", "mul"]
    assert spec.nodes[-1].shape == (8, 6, 6) and spec.total_params == 3 * 9 * 8 + 8 + (8 * 2 + 2) + (2 * 8 + 8)
    own = net("conv k=8 f=3 p=1 -> se(8, 2)", "3x6x6", "blocks:\n  se(c, r): conv k=$c f=1\n")
    assert [n.kind.name for n in own.nodes] == ["conv", "conv"]

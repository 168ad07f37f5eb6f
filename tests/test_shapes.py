"""Shape, parameter, MAC and receptive-field arithmetic against figures from the literature."""

from __future__ import annotations

from .helpers import net


def test_tutorial_net_28_14_14_7():
    spec = net("conv k=16 f=5 p=2 -> pool 2 -> conv k=32 f=5 p=2 -> pool 2 -> fc 10")
    assert [n.shape for n in spec.nodes] == [(16, 28, 28), (16, 14, 14), (32, 14, 14), (32, 7, 7), (10,)]


def test_cs231n_examples():
    # 32x32x3 input, one 5x5 filter: 28x28 output; the filter has 5*5*3 = 75 weights + 1 bias.
    spec = net("conv k=1 f=5", input="3x32x32")
    assert spec.nodes[0].shape == (1, 28, 28)
    assert spec.nodes[0].info.params == 75 + 1
    # 224x224x64 max-pooled 2/2 -> 112x112x64
    spec = net("pool 2 s=2", input="64x224x224")
    assert spec.nodes[0].shape == (64, 112, 112)
    # AlexNet conv1: 227x227x3, 96 filters 11x11 stride 4 -> 55x55x96 with 34,944 parameters
    spec = net("conv k=96 f=11 s=4", input="3x227x227")
    assert spec.nodes[0].shape == (96, 55, 55) and spec.nodes[0].info.params == 34_944
    assert spec.nodes[0].info.macs == 96 * 3 * 11 * 11 * 55 * 55


def test_overlapping_and_ceil_pooling():
    assert net("pool 3 s=2", input="96x55x55").nodes[0].shape == (96, 27, 27)
    # GoogLeNet: 112 -> 3/2 ceil -> 56 ; floor would give 55
    assert net("pool 3 s=2 ceil=true", input="64x112x112").nodes[0].shape == (64, 56, 56)
    assert net("pool 3 s=2", input="64x112x112").nodes[0].shape == (64, 55, 55)
    # PyTorch drops a last window that would start in the padding: 5 -> pool 2 s=2 p=1 ceil -> 3
    assert net("pool 2 s=2 p=1 ceil=true", input="1x5x5").nodes[0].shape == (1, 3, 3)


def test_dilation_groups_depthwise_and_bias():
    spec = net("conv k=8 f=3 d=2", input="4x10x10")
    assert spec.nodes[0].shape == (8, 6, 6)  # effective kernel 5
    spec = net("conv k=8 f=3 g=2 bias=false", input="4x10x10")
    assert spec.nodes[0].info.params == 8 * 2 * 9
    spec = net("conv f=3 p=1 g=dw", input="32x10x10")
    assert spec.nodes[0].shape == (32, 10, 10) and spec.nodes[0].info.params == 32 * 9 + 32
    spec = net("conv k=64 f=3 p=1 g=dw", input="32x10x10")  # depth multiplier 2
    assert spec.nodes[0].info.params == 64 * 9 + 64


def test_same_padding_follows_tensorflow():
    spec = net("conv k=1 f=3 s=2 p=same", input="1x224x224")
    assert spec.nodes[0].shape == (1, 112, 112)
    spec = net("conv k=1 f=4 p=same", input="1x7x7")
    assert spec.nodes[0].shape == (1, 7, 7)


def test_batch_norm_counts_and_buffers():
    spec = net("bn -> fc 5 -> bn", input="16x4x4")
    assert spec.nodes[0].info.params == 32 and spec.nodes[0].info.buffers == 32
    assert spec.nodes[2].info.params == 10 and spec.nodes[2].info.buffers == 10
    assert net("bn affine=false", input="3x4x4").nodes[0].info.params == 0


def test_receptive_field_of_vgg_stack():
    # Three 3x3 convs have the receptive field of one 7x7 (Simonyan & Zisserman).
    spec = net("conv k=1 f=3 p=1 -> conv k=1 f=3 p=1 -> conv k=1 f=3 p=1", input="1x32x32")
    assert [n.rf for n in spec.nodes] == [(3, 3), (5, 5), (7, 7)]
    spec = net("conv k=1 f=7 s=2 p=3 -> pool 3 s=2 p=1 -> conv k=1 f=3 p=1", input="3x224x224")
    assert [n.rf[0] for n in spec.nodes] == [7, 11, 19]
    assert [n.jump[0] for n in spec.nodes] == [2, 4, 4]


def test_memory_estimate_formula():
    """Counted by hand for batch 10 and two threads: a 3x3 conv with 40 filters on a one-channel 4x4
    input (im2col: a Winograd conv needs 4 input channels to pay off, a direct one at most 32 filters),
    then fc 3, mse loss."""
    spec = net("conv k=40 f=3 p=1 -> fc 3", input="1x4x4")
    params = (9 * 40 + 40) + (40 * 16 * 3 + 3)
    mem = spec.memory(batch=10, workers=2)
    assert mem["weights"] == mem["gradients"] == 4 * params
    assert mem["optimizer_state"] == 2 * 4 * params  # adam: two moments
    assert mem["activations"] == 4 * 10 * (40 * 16 + 3)  # the outputs
    # fc's input gradient (the conv reads the network's input: none for it) and the loss's gradient
    assert mem["activation_gradients"] == 4 * 10 * (40 * 16 + 3)
    # each thread's columns for its 8 of the 16 output positions (9 rows x 8 positions x 10 samples),
    # the weight gradient's per-thread sums and products (9 x 40 each)
    assert mem["workspace"] == 4 * (2 * 9 * 8 * 10 + 2 * 2 * 9 * 40)
    assert mem["total"] == 4 * params * 4 + 2 * 4 * 10 * 643 + mem["workspace"]


def test_memory_estimate_formula_of_a_direct_conv():
    """The same with 2 filters: a direct conv, whose only temporary is its input with the padding
    around it (1 x 6 x 6 x 10 values); it computes no input gradient (it reads the network's input)."""
    spec = net("conv k=2 f=3 p=1 -> fc 3", input="1x4x4")
    params = (9 * 2 + 2) + (32 * 3 + 3)
    mem = spec.memory(batch=10, workers=2)
    assert mem["workspace"] == 4 * 6 * 6 * 10
    assert mem["total"] == 4 * params * 4 + 2 * 4 * 10 * 35 + 4 * 360


def test_summary_json_structure():
    spec = net("add(conv k=1 f=3 p=1 | id) -> fc 10", extra="classes: 10\n")
    s = spec.summary()
    assert {"name", "input", "total_params", "trainable_params", "total_macs", "layers"} <= s.keys()
    conv = s["layers"][0]
    assert conv == {**conv, "name": "conv1", "type": "conv", "spec": "conv k=1 f=3 p=1", "output": [1, 28, 28],
                    "params": 10, "macs": 9 * 28 * 28, "rf": {"size": 3, "jump": 1, "size_hw": [3, 3], "jump_hw": [1, 1]},
                    "branch": "add1/1", "inputs": ["input"]}
    assert s["layers"][1]["inputs"] == ["conv1", "input"]
    assert s["total_flops"] == 2 * s["total_macs"]

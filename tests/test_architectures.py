"""Every ready-made architecture loads, has no warnings, and matches its published totals."""

from __future__ import annotations

import pytest

from cnncli.spec import load

from .helpers import ARCHITECTURES

# Parameters as PyTorch counts them (torchvision's model pages); MACs as torchvision's "GFLOPS"
# column (which counts multiply-adds of conv and linear layers).
PUBLISHED = {
    "fashion-tutorial": (29_034, None),
    "fashion-recipe": (871_338, None),  # our own recipe: 288+64+9216+64+18432+128+36864+128+803072+512+2570
    "lenet-5": (61_706, None),
    "alexnet": (61_100_840, 0.71e9),
    "zfnet": (62_357_608, None),
    "vgg-11": (132_863_336, 7.61e9),
    "vgg-16": (138_357_544, 15.47e9),
    "vgg-19": (143_667_240, 19.63e9),
    "googlenet": (6_624_904, 1.50e9),
    "resnet-18": (11_689_512, 1.81e9),
    "resnet-34": (21_797_672, 3.66e9),
    "resnet-50": (25_557_032, 4.09e9),
    "resnet-20-cifar": (269_722, None),
    "densenet-121": (7_978_856, 2.83e9),
    "mobilenet-v1": (4_231_976, 0.569e9),  # Keras' trainable count; MACs from the paper (569M)
    "mobilenet-v2": (3_504_872, 0.30e9),
    # torchvision prints GFLOPS to two digits: 0.39, 0.06, 0.22, 0.35, 4.23
    "efficientnet-b0": (5_288_548, 0.39e9),
    "mobilenet-v3-small": (2_542_856, 0.06e9),
    "mobilenet-v3-large": (5_483_032, 0.22e9),
    "squeezenet-1.1": (1_235_496, 0.35e9),
    "resnext-50-32x4d": (25_028_904, 4.23e9),
}
# MACs published to two digits only: compare at the digits printed.
TWO_DIGITS = {"efficientnet-b0", "mobilenet-v3-small", "mobilenet-v3-large", "squeezenet-1.1", "resnext-50-32x4d"}
# torchvision's SqueezeNet 1.1 starts with an unpadded 3x3 stride-2 conv, which at 224x224 never
# reads the last row and column; the file keeps that (and cnn shapes says so).
FLOORS_AS_PUBLISHED = {"squeezenet-1.1": ["conv1"]}


def test_every_file_is_covered():
    assert sorted(p.stem for p in ARCHITECTURES.glob("*.yaml")) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_totals(name):
    spec = load(ARCHITECTURES / f"{name}.yaml", strict=name not in FLOORS_AS_PUBLISHED)
    params, macs = PUBLISHED[name]
    assert spec.total_params == params
    if name in TWO_DIGITS:
        assert round(spec.total_macs / 1e9, 2) == pytest.approx(macs / 1e9)
    elif macs is not None:
        assert spec.total_macs == pytest.approx(macs, rel=0.006)
    assert [w.node for w in spec.warnings] == FLOORS_AS_PUBLISHED.get(name, [])
    text = (ARCHITECTURES / f"{name}.yaml").read_text()
    assert text.startswith("#"), "each file names its source in a leading comment"


def test_mobilenet_v1_non_trainable_matches_keras():
    assert load(ARCHITECTURES / "mobilenet-v1.yaml").buffers == 21_888


def test_zfnet_map_sizes_follow_the_paper():
    spec = load(ARCHITECTURES / "zfnet.yaml")
    sizes = [n.shape[1] for n in spec.nodes if n.kind.name in ("conv", "pool")]
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]


def test_resnet_50_stage_shapes():
    spec = load(ARCHITECTURES / "resnet-50.yaml")
    adds = [n.shape for n in spec.nodes if n.kind.name == "add"]
    assert adds[0] == (256, 56, 56) and adds[3] == (512, 28, 28) and adds[7] == (1024, 14, 14)
    assert adds[-1] == (2048, 7, 7) and len(adds) == 16


def test_squeeze_and_excitation_widths_follow_torchvision():
    def se_widths(name):
        spec = load(ARCHITECTURES / f"{name}.yaml")
        # the first conv inside each `se`: its output is the squeeze width, its input the block's
        return [(n.in_shapes[0][0], n.shape[0]) for n in spec.nodes
                if n.kind.name == "conv" and n.in_shapes[0][1:] == (1, 1) and n.params["bias"]
                and n.shape[0] < n.in_shapes[0][0]]
    # MobileNet v3: _make_divisible(channels // 4, 8); EfficientNet: block input channels // 4
    assert se_widths("mobilenet-v3-small")[:3] == [(16, 8), (96, 24), (240, 64)]
    assert se_widths("mobilenet-v3-large")[:2] == [(72, 24), (120, 32)]
    assert se_widths("efficientnet-b0")[:3] == [(32, 8), (96, 4), (144, 6)]
    assert len(se_widths("efficientnet-b0")) == 16


def test_densenet_channel_growth():
    spec = load(ARCHITECTURES / "densenet-121.yaml")
    cats = [n.shape[0] for n in spec.nodes if n.kind.name == "cat"]
    assert cats[5] == 64 + 6 * 32 and cats[6 + 11] == 128 + 12 * 32 and cats[-1] == 512 + 16 * 32

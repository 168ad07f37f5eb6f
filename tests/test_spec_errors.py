"""Every class of spec mistake gives one UserError naming the place, the problem and a fix."""

from __future__ import annotations

import pytest

from cnncli.errors import UserError
from cnncli.spec import load, loads

from .helpers import spec_error


def err(chain: str, input: str = "1x28x28", extra: str = "") -> UserError:
    return spec_error(f"input: {input}\n{extra}net: {chain}\n")


def test_yaml_syntax_error_has_line_and_column():
    e = spec_error("input: 1x28x28\nnet: [conv k=3 f=3\nclasses: 10\n")
    assert "YAML syntax error" in e.message
    assert e.where.file == "t.yaml" and e.where.line == 3 and e.where.column is not None


def test_tab_indentation_is_explained():
    e = spec_error("input: 1x28x28\nnet:\n\t- relu\n")
    assert "YAML syntax error" in e.message and "tab" in str(e)


def test_unknown_layer_suggests_closest():
    e = err("conv k=16 f=5 -> rleu -> fc 10")
    assert e.message == "unknown layer kind 'rleu'"
    assert e.hint.startswith("did you mean 'relu'?")
    assert (e.where.line, e.where.column) == (2, 23)
    assert str(e).startswith("t.yaml:2:23: layer 'rleu': unknown layer kind 'rleu'")


def test_unknown_parameter_suggests_and_points_at_it():
    e = err("conv k=16 ff=5")
    assert e.message == "conv has no parameter 'ff'"
    assert "did you mean f?" in e.hint
    assert e.where.column == 16 and e.layer == "conv k=16 ff=5"


def test_missing_parameter():
    e = err("conv k=16")
    assert e.message.startswith("conv needs f (kernel size")
    assert "e.g. conv k=32 f=3" in e.hint


def test_ill_typed_parameter():
    e = err("conv k=sixteen f=3")
    assert e.message.startswith("k=sixteen is not valid")
    assert "whole number" in e.hint
    e = err("dropout 1.5")
    assert e.message == "rate=1.5 is not valid: must be at most 0.999"
    e = err("conv k=8 f=3 bias=maybe")
    assert e.message == "bias=maybe is not valid: expected true or false"
    e = err("conv k=0 f=3")
    assert e.message == "k=0 is not valid: must be at least 1"


def test_too_many_positional_values():
    e = err("conv 16 5 3")
    assert e.message.startswith("unexpected value '3': conv takes 2 values without a name (k, f)")


def test_parameter_given_twice():
    assert err("conv 16 5 k=8").message == "k is given twice"


def test_collapsing_shape_shows_arithmetic_and_fix():
    e = err("conv k=4 f=7", input="1x5x5")
    assert e.message == "output H collapses to -1: (H=5 - 7 + 2*0)/1 + 1 = -1"
    assert "pad with p=1 or more" in e.hint and "kernel of at most 5" in e.hint
    assert e.node == "conv1"


def test_collapse_deep_in_a_network_names_the_layer():
    e = err("conv k=8 f=5 -> pool 2 -> conv k=8 f=5 -> pool 2 -> conv k=8 f=5")
    assert e.node == "conv3" and e.layer == "conv k=8 f=5"
    assert "(H=4 - 5 + 2*0)/1 + 1 = 0" in e.message


def test_dilation_is_shown_in_collapse():
    e = err("conv k=2 f=3 d=3", input="1x6x6")
    assert "effective kernel 7 = 3*(3-1)+1" in e.message


def test_residual_shape_mismatch_shows_both_shapes():
    e = err("add(conv k=16 f=3 | id)")
    assert "branch 1: 16x26x26, branch 2: 1x28x28" in e.message
    assert e.node == "add1"


def test_concat_spatial_mismatch():
    e = err("cat(conv k=4 f=3 | conv k=4 f=1)")
    assert "one height and width" in e.message and "branch 2: 4x28x28" in e.message


def test_merge_needs_two_branches():
    assert err("add(conv k=1 f=1)").message == "add(...) needs at least two branches separated by '|'"


def test_unknown_block_and_wrong_argument_count():
    extra = "blocks:\n  vgg(k, n): (conv k=$k f=3 p=1 -> relu) x$n -> pool 2\n"
    e = err("vggg(64, 2)", extra=extra)
    assert e.message == "unknown layer kind 'vggg'" and "did you mean 'vgg'?" in e.hint and "blocks: vgg" in e.hint
    e = err("vgg(64)", extra=extra)
    assert e.message == "block vgg needs a value for n, but 'vgg(64)' gives none"
    assert e.hint == "call it as vgg(k, n)"
    e = err("vgg(64, 2, 3)", extra=extra)
    assert e.message == "block vgg takes 2 arguments but 'vgg(64, 2, 3)' gives 3"
    e = err("vgg(64, m=2)", extra=extra)
    assert e.message == "block vgg has no parameter 'm'"


def test_recursive_blocks():
    e = err("a(3)", extra="blocks:\n  a(k): b($k)\n  b(k): a($k)\n")
    assert e.message == "block a calls itself (a -> b -> a)"
    assert any("in block b(3)" in c for c in e.calls)


def test_error_inside_block_points_into_block_and_at_the_call():
    e = err("unit(8) -> unit(4)", input="1x6x6", extra="blocks:\n  unit(k): conv k=$k f=5\n")
    assert e.node == "unit2.conv1" and e.where.line == 3  # the body, on line 3
    assert e.calls == ["in block unit(4), called at t.yaml:4:17"]


def test_unknown_block_variable():
    e = err("u(8)", extra="blocks:\n  u(k): conv k=$q f=3\n")
    assert e.message == "$q is not a parameter of block u"


def test_block_named_like_a_layer():
    assert spec_error("input: 1x8x8\nblocks:\n  relu(k): conv k=$k f=1\nnet: relu\n").message == \
        "block 'relu' has the name of a layer kind"


def test_dollar_outside_block_needs_a_spec_variable():
    e = err("conv k=$k f=3")
    assert e.message == "$k is not in the spec's vars" and e.hint == "declare it under vars:, e.g. vars: {name: 16}"
    assert (e.where.line, e.where.column) == (2, 13)
    e = err("conv k=$widht f=3", extra="vars: {width: 8}\n")
    assert e.message == "$widht is not in the spec's vars" and e.hint.startswith("did you mean $width?")
    assert err("conv k=$5 f=3").message == "'k=$5' uses '$' without a name"


def test_spec_variables_bad_values():
    assert err("fc 10", extra="vars: [1, 2]\n").message == "vars: must map names to values, not a list"
    e = err("fc 10", extra="vars:\n  width: [1, 2]\n")
    assert e.message == "vars.width must be a number or a word, not a list" and e.where.line == 3


def test_fc_and_flatten_misuse():
    e = err("fc 10 -> conv k=3 f=3")
    assert e.message == "conv needs a CxHxW feature map, but its input is a flat vector of 10"
    assert "put conv before fc/flatten" in e.hint
    spec = loads("input: 1x8x8\nnet: flatten -> flatten -> fc 2\n", "t.yaml")
    assert "already flat" in str(spec.warnings[0])


def test_classes_must_match_final_layer():
    e = spec_error("input: 1x28x28\nclasses: 10\nnet: conv k=4 f=3 -> fc 12\n")
    assert e.message == "the network ends with 12 (12 values), but classes: 10 needs 10"
    assert e.hint.startswith("end the net with fc 10")


def test_top_level_errors():
    assert spec_error("input: 1x28x28\nnett: relu\n").message == "unknown setting 'nett'"
    assert spec_error("net: relu\n").message == "the spec has no `input:`"
    assert spec_error("input: 28x28\nnet: relu\n").hint.startswith("add the channels in front: 1x28x28")
    assert spec_error("input: 1x28x28\nnet: relu\nnet: tanh\n").message == "'net' is given twice"
    assert spec_error("- a\n- b\n").message.startswith("a spec is a mapping")
    assert spec_error("").message == "the file is empty"
    assert spec_error("input: 1x28x28\nclasses: 1\nnet: fc 1\n").message.startswith("classes must be")
    assert spec_error("input: 1x8x8\nnet: 5\n").message.startswith("each item of net must be a chain")


def test_defaults_errors():
    e = spec_error("input: 1x8x8\ndefaults:\n  cnv: {bias: false}\nnet: relu\n")
    assert e.message == "defaults for unknown layer kind 'cnv'" and "did you mean 'conv'?" in e.hint
    e = spec_error("input: 1x8x8\ndefaults:\n  conv: {biass: false}\nnet: relu\n")
    assert e.message == "conv has no parameter 'biass' to default"


def test_train_errors():
    e = spec_error("input: 1x8x8\nnet: fc 2\ntrain:\n  epoch: 3\n")
    assert e.message == "unknown train setting 'epoch'" and "did you mean epochs?" in e.hint
    e = spec_error("input: 1x8x8\nnet: fc 2\ntrain:\n  optimizer: adamm lr=0.1\n")
    assert e.message == "unknown optimizer 'adamm'" and "did you mean adam?" in e.hint
    assert e.where.line == 4
    e = spec_error("input: 1x8x8\nnet: fc 2\ntrain:\n  epochs: 2.5\n")
    assert e.message == "train.epochs must be a whole number, not the number 2.5"


def test_syntax_errors_in_chains():
    assert err("conv k=4 f=3 -> -> relu").message == "expected a layer but found '->'"
    assert err("(conv k=4 f=3 -> relu").message == "a '(' opened here is never closed"
    assert err("relu)").message == "unmatched ')'"
    assert err("relu | tanh").message.startswith("'|' outside add(...)")
    assert err("relu tanh").message.startswith("unexpected value 'tanh'")
    assert err("conv k=4 f=3 x0").message == "repeat count 0 is out of range"


def test_duplicate_explicit_names():
    assert err("relu name=a -> tanh name=a").message == "the name 'a' is used twice in the same scope"


def test_strict_turns_dropped_pixels_into_errors():
    text = "input: 1x28x28\nnet: conv k=4 f=3 s=2\n"
    spec = loads(text, "t.yaml")
    assert len(spec.warnings) == 1
    assert "1 input row at the bottom never reaches a window: (H=28 - 3 + 2*0)/2 + 1 = 13.5 floors to 13" in str(spec.warnings[0])
    with pytest.raises(UserError) as info:
        loads(text, "t.yaml", strict=True)
    assert "--strict" in info.value.hint


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="is a directory"):
        load(tmp_path)
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(UserError, match="not UTF-8"):
        load(bad)


def test_python_tags_are_refused():
    e = spec_error("input: !!python/object/apply:os.system ['echo hi']\nnet: relu\n")
    assert "YAML" in e.message

"""Hostile and damaged specs (issue 10): each ends in one `error:` line at the right place, exit code 2,
no traceback, within a time and memory bound; huge but valid specs still get their table.

The time bounds are hang guards far above the normal time (under 0.1 s for most cases), not speed
measurements; they count CPU seconds, so that a busy machine does not fail them. The memory bound is
enforced by the kernel on the subprocesses (RLIMIT_AS).
"""

from __future__ import annotations

import json
import os
import resource  # POSIX: the subprocesses run with a bounded address space
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncli import limits
from cnncli.cli import app
from cnncli.errors import UserError, printable
from cnncli.spec import loads

from .helpers import ROOT

H = "input: 1x28x28\n"
LAUGHS = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))
HANG_GUARD = 10.0  # CPU seconds; every case below normally takes well under one
MEMORY = 512 << 20  # bytes of address space for a `cnn shapes` subprocess

# name: (spec text, a part of the message, line, column)
CASES = {
    # values PyYAML or the parameter parsers used to crash on
    "date": (H + "net: fc 10\ntrain:\n  epochs: 2026-13-45\n", "train.epochs must be a whole number, not '2026-13-45'", 4, 11),
    "inf": (H + "net: fc 10\ntrain:\n  lr: .inf\n", ".inf is not a finite number", 4, 7),
    "nan": (H + "net: fc 10\ntrain:\n  val: .nan\n", ".nan is not a finite number", 4, 8),
    "yaml_5000_digits": (H + "net: fc 10\ntrain:\n  epochs: " + "9" * 5000 + "\n", "(5,000 characters) is too large", 4, 11),
    "chain_5000_digits": (H + "net: fc " + "9" * 5000 + "\n", "a number has more than 18 digits", 2, 9),
    "float_overflow": (H + "net: fc 10\ntrain:\n  optimizer: sgd lr=" + "9" * 400 + "\n", "must be a finite number", 4, 14),
    "product_overflow": (H + "net: dropout 999999999*999999999*999999999\n", "expected a number", 2, 14),
    "input_5000_digits": ("input: 1x28x" + "9" * 5000 + "\nnet: fc 10\n", "is too large", 1, 8),
    "nul": (H + "net: fc 10 ->\x00 relu\n", "character \\x00 (U+0000) is not allowed in a spec", 2, 14),
    "raw_escape": (H + "net: fc 10\nname: \x1b]0;x\x07\n", "character \\x1b (U+001B) is not allowed", 3, 7),
    "bool_layer": (H + "net: conv k=16 f=3 bias=maybe\n", "bias=maybe is not valid: expected true or false", 2, 20),
    "bool_default": (H + "defaults: {conv: {bias: maybe}}\nnet: conv k=16 f=3\n", "expected true or false", 2, 25),
    "bool_train": (H + "net: fc 10\ntrain:\n  optimizer: sgd nesterov=maybe\n", "expected true or false", 4, 14),
    "text_for_float": (H + "net: dropout abc\n", "rate=abc is not valid: expected a number", 2, 14),
    "text_for_int": (H + "net: fc abc\n", "units=abc is not valid", 2, 9),
    "text_for_train_float": (H + "net: fc 10\ntrain:\n  lr: abc\n", "lr=abc is not valid: expected a number", 4, 7),
    "python_tag": (H + "net: !!python/object/apply:os.system ['true']\n", "is not allowed in a spec", 2, 6),
    # expansion bombs
    "laughs_in_net": (H + "l0: &l0 [relu, relu, relu, relu, relu, relu, relu, relu, relu, relu]\n" + LAUGHS + "net: *l8\n",
                      "the YAML holds more than 10,000 values", 2, 58),
    "laughs_in_description": (H + "net: fc 10\ndescription: [&l0 [x, x, x, x, x, x, x, x, x, x], "
                              + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)) + "]\n",
                              "the YAML holds more than 10,000 values", 3, 38),
    "recursive_alias": (H + "net: &a [relu, *a]\n", "refers to the list or mapping that contains it", 2, 6),
    "nested_repeats_of_id": (H + "net: fc 10 -> (((id) x1000) x1000) x1000\n", "more than 30,000 steps", 2, 18),
    "nested_repeats_of_relu": (H + "net: ((relu x1000) x1000) x1000\n", "the network has more than 10,000 layers", 2, 8),
    "exponential_blocks": (H + "blocks:\n" + "".join(f"  b{i}: b{i + 1} -> b{i + 1}\n" for i in range(31))
                           + "  b31: id\nnet: b0\n", "more than 30,000 steps", 31, 8),
    "doubling_arguments": (H + "blocks:\n" + "".join(f"  'b{i}(k)': b{i + 1}($k$k)\n" for i in range(31))
                           + "  'b31(k)': fc 10 name=$k\nnet: b0(x)\n", "more than 1,000,000 characters", 21, 13),
    # deep nesting
    "parentheses_5000": (H + "net: " + "(" * 5000 + "fc 10" + ")" * 5000 + "\n", "nested more than 50 deep", 2, 56),
    "expression_parentheses_5000": (H + "blocks: {'b(k)': 'fc ${" + "(" * 5000 + "k" + ")" * 5000 + "}'}\nnet: b(10)\n",
                                    "nested more than 50 deep", 2, 22),
    "unary_minus_5000": (H + "blocks: {'b(k)': 'fc ${" + "-" * 5000 + "k}'}\nnet: b(10)\n", "nested more than 50 deep", 2, 22),
    "nested_block_calls": (H + "blocks:\n" + "".join(f"  b{i}: (b{i + 1})\n" for i in range(30)) + "  b30: fc 10\nnet: b0\n",
                           "parentheses, merges and block calls are nested more than 50 deep", 27, 9),
    "unclosed_expressions": (H + "blocks:\n  b: relu" + " ${" * 20_000 + "\nnet: b\n", "'${' has no closing '}'", 3, 11),
    "flow_lists_5000": (H + "net: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 20 levels deep", 2, 26),
    "block_lists_5000": (H + "net:\n  " + "- " * 5000 + "relu\n", "nested more than 20 levels deep", 3, 41),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_spec_is_one_user_error_at_its_place(name):
    text, message, line, column = CASES[name]
    started = time.process_time()
    with pytest.raises(UserError) as info:
        loads(text, "hostile.yaml")
    assert time.process_time() - started < HANG_GUARD
    error = info.value
    assert message in str(error)
    assert (error.where.file, error.where.line, error.where.column) == ("hostile.yaml", line, column)
    assert len(str(error)) < 10_000  # long input is cut when echoed


@pytest.mark.parametrize("name", CASES)
def test_hostile_spec_through_the_cli(name, tmp_path):
    path = tmp_path / "hostile.yaml"
    path.write_text(CASES[name][0])
    result = CliRunner().invoke(app, ["shapes", str(path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [lines[0]]
    assert lines[0].startswith(f"error: {path}:{CASES[name][2]}:{CASES[name][3]}: ")
    assert "Traceback" not in result.stderr and all(line.isprintable() for line in lines)


def test_a_spec_too_long_to_parse_quickly_is_refused():
    with pytest.raises(UserError, match="more than the limit of 262,144"):
        loads(H + "net: fc 10\ndescription: '" + "x" * limits.MAX_SPEC_BYTES + "'\n", "long.yaml")


def test_dates_and_yaml_specials_are_plain_text():
    spec = loads("name: 2026-02-30 25:00\n" + H + "net: fc 10\n", "t.yaml")
    assert spec.name == "2026-02-30 25:00"
    with pytest.raises(UserError, match="unknown setting '<<'"):
        loads(H + "net: fc 10\n<<: {classes: 10}\n", "t.yaml")


def test_train_numbers_written_without_a_point_are_numbers():
    # YAML 1.1 reads 1e-3 as text; a learning rate written so is still a learning rate.
    assert loads(H + "net: fc 10\ntrain:\n  lr: 1e-3\n").train.lr == 0.001


def test_repeat_counts_and_budgets_name_their_limit():
    with pytest.raises(UserError, match="repeat count 99999999999999999999... \\(5,000 characters\\) is out of range"):
        loads(H + "net: relu x" + "9" * 5000 + "\n")
    # Just under the layer limit is fine, and cheap blocks called often are parsed once.
    spec = loads(H + "blocks:\n  'b(k)': relu -> relu\nnet: (b(1)) x4999 -> relu\n")
    assert len(spec.nodes) == 9999 == limits.MAX_LAYERS - 1


# ----------------------------------------------------------------------------- through a real process


def cnn_limited(*args: str, cwd=ROOT) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI in a subprocess with a bounded address space and a timeout (a hang fails the test);
    returns the result and the CPU seconds the subprocess used."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "cnncli", *args], capture_output=True, text=True, cwd=cwd,
                            env=env, timeout=120, preexec_fn=limit)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def assert_one_error(result: subprocess.CompletedProcess, starts: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(starts), lines[0]
    assert sum(line.startswith("error:") for line in lines) == 1 and all(line.isprintable() for line in lines)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_spec_path_that_is_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    result, _ = cnn_limited("shapes", str(fifo))
    assert_one_error(result, f"error: {fifo} is not a regular file (a pipe, socket or device)")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_spec_path_that_is_a_device_is_not_read():
    result, _ = cnn_limited("shapes", "/dev/zero")
    assert_one_error(result, "error: /dev/zero is not a regular file")


def test_a_50_mb_spec_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(50 << 20)  # sparse: costs no disk
    result, _ = cnn_limited("shapes", str(big))
    assert_one_error(result, f"error: {big} has 52,428,800 bytes, more than a spec may have (262,144)")


def test_directory_as_spec(tmp_path):
    result, _ = cnn_limited("shapes", str(tmp_path))
    assert_one_error(result, f"error: {tmp_path} is a directory, not a spec file")


@pytest.mark.parametrize("name", ["laughs_in_net", "exponential_blocks", "doubling_arguments", "parentheses_5000"])
def test_bombs_stay_within_memory_and_time(name, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(CASES[name][0])
    result, cpu_seconds = cnn_limited("shapes", str(path))
    assert_one_error(result, f"error: {path}:{CASES[name][2]}:{CASES[name][3]}: ")
    assert cpu_seconds < HANG_GUARD  # includes starting Python; a hang would take minutes


def test_huge_but_valid_spec_still_gets_its_table(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("input: 3x100000x100000\nclasses: 10\n"
                    "net: conv k=64 f=3 p=1 -> relu -> gap -> fc 20000000 -> fc 10\n")
    result, _ = cnn_limited("shapes", str(path))  # within 512 MiB: nothing is allocated
    assert result.returncode == 0, result.stderr
    assert "64x100000x100000" in result.stdout
    # conv 64*3*3*3 + 64, fc 64*2*10^7 + 2*10^7, fc 2*10^7*10 + 10
    assert "parameters: 1,500,001,802 " in result.stdout



BIG = "999999999999999999"  # the largest number a spec may hold: 18 digits


def test_largest_numbers_keep_shapes_exact_and_tables_printable(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(f"input: {BIG}x{BIG}x{BIG}\nnet: conv k={BIG} f=1 p={BIG} -> pool {BIG} s={BIG} ceil=true -> fc {BIG}\n")
    result, _ = cnn_limited("shapes", "--json", str(path))
    assert result.returncode == 0, result.stderr
    n = int(BIG)
    layers = json.loads(result.stdout)["layers"]
    assert layers[0]["output"] == [n, 3 * n, 3 * n]  # (n - 1 + 2n)/1 + 1, in exact integers
    assert layers[2]["params"] == n * n * 9 + n
    table, _ = cnn_limited("shapes", str(path))
    assert table.returncode == 0 and f"{n}x{3 * n}x{3 * n}" in table.stdout


def test_window_arithmetic_on_the_largest_numbers_is_exact():
    with pytest.raises(UserError) as info:
        loads(H + f"net: conv k=4 f={BIG} d={BIG}\n")
    kernel = int(BIG) * (int(BIG) - 1) + 1
    assert f"output H collapses to {28 - kernel + 1}: (H=28 - {kernel} + 2*0)/1 + 1 = {28 - kernel + 1} " in str(info.value)

# ----------------------------------------------------------------------------- terminal escapes


ESCAPES = '"\\e]0;retitled\\a\\e[2J\\u202e"'  # YAML double-quoted escapes: OSC title, clear screen, RTL override


def test_escapes_in_a_valid_spec_are_shown_escaped(tmp_path):
    path = tmp_path / "esc.yaml"
    path.write_text(f"name: {ESCAPES}\n" + H + "net: fc 10\n")
    result, _ = cnn_limited("shapes", str(path))
    assert result.returncode == 0 and "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert result.stdout.startswith("\\x1b]0;retitled\\x07\\x1b[2J\\u202e ")


def test_escapes_in_a_layer_reach_the_error_escaped(tmp_path):
    path = tmp_path / "esc.yaml"
    path.write_text(H + 'net: "fc 10 -> \\e[2Jrelu -> \\e]0;x\\a"\n')
    result, _ = cnn_limited("shapes", str(path))
    assert_one_error(result, f"error: {path}:2:16: layer '\\x1b[2Jrelu': unknown layer kind '\\x1b[2Jrelu'")
    assert "\x1b" not in result.stderr


def test_printable_escapes_controls_and_cuts_long_text():
    assert printable("a\x1b[2J\nb\tc\x00\u202e\x85é×") == "a\\x1b[2J\\nb\\tc\\x00\\u202e\\x85é×"
    assert printable("x" * 300, 10) == "xxxxxxxxxx... (300 characters)"
    assert printable("plain text") == "plain text"


# ----------------------------------------------------------------------------- writing outside the run directory


@pytest.mark.parametrize("name, directory", [
    ("../../escaped", "_.._escaped"), ("/tmp/elsewhere", "_tmp_elsewhere"), ("..", "network"), ("a\x00b", "a_b"),
    ("\x1b[2J", "__2J"), ("C:\\Windows", "C__Windows"), ("-rf", "rf"), ("fashion-tutorial", "fashion-tutorial"),
    ("x" * 100, "x" * 64),
])
def test_run_directory_names_are_one_safe_component(name, directory):
    from cnncli.train import directory_name, run_dir

    assert directory_name(name) == directory
    path = run_dir(loads(f"name: {json.dumps(name)}\n" + H + "net: fc 10\n"), None)  # JSON strings are YAML
    assert path.parent.as_posix() == "runs" and path.name.startswith(directory + "-")


def test_a_spec_name_cannot_move_the_run_out_of_runs(tmp_path, monkeypatch):
    from cnncli import train as trainer
    from cnncli.data import SAMPLE
    from cnncli.report.progress import TrainReport

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    spec = work / "climb.yaml"
    spec.write_text(f"name: ../../escaped\n{H}classes: 10\nnet: fc 10\n")
    summary = trainer.start(spec, trainer.Options(str(SAMPLE), None, {"epochs": "1", "val": "100", "batch": "500"}),
                            TrainReport(quiet=True))
    (run,) = (work / "runs").iterdir()
    assert run.name.startswith("_.._escaped-") and (run / "checkpoints" / "last.npz").exists()
    assert summary["run"] == str(Path("runs") / run.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"] and sorted(p.name for p in work.iterdir()) == [
        "climb.yaml", "runs"]


def test_readme_states_the_limits_the_code_has():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Untrusted input"):]
    section = section[:section.index("\n## ", 1)]
    rows = {
        "YAML values, aliases": f"{limits.MAX_YAML_VALUES:,}",
        "characters of YAML text after aliases": f"{limits.MAX_SPEC_BYTES >> 10} Ki",
        "nesting of YAML lists and mappings": f"{limits.MAX_YAML_DEPTH} levels",
        "digits of a number": f"{limits.MAX_NUMBER_DIGITS}",
        "nesting of parentheses, merges and block calls": f"{limits.MAX_NESTING}",
        "blocks calling blocks": f"{limits.MAX_BLOCK_DEPTH} deep",
        "the N of a repeat": f"{limits.MAX_REPEAT:,}",
        "layers after expansion": f"{limits.MAX_LAYERS:,}",
        "expansion steps": f"{limits.MAX_STEPS:,}",
        "characters of block bodies": f"{limits.MAX_EXPANDED_CHARS:,}",
    }
    for what, value in rows.items():
        (row,) = [line for line in section.splitlines() if line.startswith(f"  | {what}")]
        assert row.endswith(f"| {value} |"), row
    assert f"at most {limits.MAX_SPEC_BYTES >> 10} KiB" in section

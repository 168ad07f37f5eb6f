"""Damaged and hostile data files, checkpoints and sizes: a corpus built here from the shipped sample.

Every case must end in exit code 2 and exactly one `error:` line on stderr that names the file,
with no traceback. Most run in-process (fast); those that must stay within a memory bound run as a
subprocess under an address-space limit (`ulimit -v`) and a timeout: had cnncli tried to allocate
what the file claims, the child would die with a MemoryError traceback or be killed.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnncli import checkpoint
from cnncli import train as trainer
from cnncli.cli import app
from cnncli.data import SAMPLE, resolve
from cnncli.data.idx import write_idx
from cnncli.report.progress import TrainReport

from .helpers import ROOT

SPEC = ("name: tiny\ninput: 1x28x28\nclasses: 10\nnet: conv k=4 f=5 p=2 -> relu -> pool 4 -> fc 10\n"
        "train:\n  data: fashion-mnist-sample\n  epochs: 1\n  batch: 100\n  val: 100\n")
LIMIT = 2 << 30  # address space of a child process in the memory-bound cases
GB3 = 3 << 30


@pytest.fixture(scope="module")
def sample():
    """200 real test images and labels of the shipped Fashion-MNIST sample."""
    d = resolve(str(SAMPLE))
    return d.x_test[:200, 0], d.y_test[:200]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("damaged")
    (tmp / "tiny.yaml").write_text(SPEC)
    trainer.start(tmp / "tiny.yaml", trainer.Options(None, tmp / "run", {}), TrainReport(quiet=True))
    return tmp / "run"


def cli(*args) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a crash shows its traceback in the test report
    return r.exit_code, r.stdout, r.stderr


def child(*args, limit: int = LIMIT, timeout: float = 120) -> tuple[int, str, str, float]:
    """`cnn ARGS` in a subprocess whose address space is limited to `limit` bytes."""
    def restrict():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cnncli", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       preexec_fn=restrict, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})
    return r.returncode, r.stdout, r.stderr, time.perf_counter() - started


def refused(result, file, *phrases: str) -> str:
    code, stdout, stderr = result[:3]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2, (code, stderr)
    assert len(errors) == 1, stderr
    assert str(file) in errors[0], stderr
    assert "Traceback" not in stderr and stdout == ""
    for phrase in phrases:
        assert phrase in stderr, (phrase, stderr)
    return errors[0]


# ----------------------------------------------------------------------------- building damaged files


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def good_npz(tmp_path, sample, name="data.npz", **changes) -> Path:
    x, y = sample
    arrays = {"x": x, "y": y, "x_test": x[:50], "y_test": y[:50], **changes}
    return npz(tmp_path / name, **{k: v for k, v in arrays.items() if v is not None})


def zeros_deflate(head: bytes, mebibytes: int) -> bytes:
    """A raw deflate stream of `head` and then `mebibytes` MiB of zeros, built from one compressed
    MiB repeated (each block ends with a full flush, so copies can follow each other)."""
    def block(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    return block(head) + block(bytes(1 << 20)) * mebibytes + b"\x03\x00"  # an empty final block


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip from (name, stored bytes, method, crc, uncompressed size) members, written by hand so that a
    member can be a pre-built deflate stream. The CRC of a bomb's 3 GiB is not computed (3 s): a reader
    only meets it after decompressing everything, and cnncli must refuse long before that."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in members:
        offset = out.tell()
        fields = (20, 0, method, 0, 0x21, crc, len(data), size, len(name))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + name.encode() + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0, offset)
                      + name.encode())
    start, directory = out.tell(), central.getvalue()
    out.write(directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory),
                                      start, 0))
    path.write_bytes(out.getvalue())
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def npy_header(shape, dtype="|u1") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue()


def stored(name: str, array: np.ndarray):
    data = npy_bytes(array)
    return (name + ".npy", data, 0, zlib.crc32(data), len(data))


def bomb(name: str, mebibytes: int, dtype: str = "|u1"):
    head = npy_header(((mebibytes << 20) // np.dtype(dtype).itemsize,), dtype)
    return (name + ".npy", zeros_deflate(head, mebibytes), 8, 0, len(head) + (mebibytes << 20))


def checkpoint_members(run: Path, **replace):
    """The members of the run's last checkpoint as (name, array); `replace` swaps or drops some."""
    with np.load(run / "checkpoints" / "last.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in replace.items():
        key = key.replace("__", "/", 1).replace("__", ".")  # param__fc1__weight -> param/fc1.weight
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return arrays


def meta_of(run: Path) -> dict:
    return checkpoint.load(run / "checkpoints" / "last.npz").meta


def with_meta(run: Path, path: Path, meta: dict) -> Path:
    arrays = checkpoint_members(run)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return npz(path, **arrays)


# ----------------------------------------------------------------------------- .npz data files


def test_npz_truncated_bit_flipped_and_broken_directory(run, tmp_path, sample):
    data = good_npz(tmp_path, sample).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    refused(cli("eval", run, "--data", cut), cut, "damaged .npz data file", "zip directory is missing or damaged")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10  # inside the pixels of x: the CRC catches it
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    refused(cli("eval", run, "--data", tmp_path / "flip.npz"), tmp_path / "flip.npz", "array 'x' cannot be read",
            "Bad CRC-32")
    directory = bytearray(data)
    at = data.rindex(b"PK\x01\x02")
    directory[at : at + 30] = b"\xff" * 30
    (tmp_path / "dir.npz").write_bytes(bytes(directory))
    refused(cli("eval", run, "--data", tmp_path / "dir.npz"), tmp_path / "dir.npz", "zip directory")


@pytest.mark.parametrize("case, change, phrases", [
    ("text-x", {"x": np.array(["a", "b"] * 100)}, ["array 'x' has dtype <U1 (text), not numbers"]),
    ("objects", {"y": np.array([1, None] * 100, dtype=object)}, ["array 'y' holds Python objects"]),
    ("one-hot", {"y": np.eye(10, dtype=np.float32)[np.arange(200) % 10]},
     ["array 'y' has shape (200, 10); a classifier needs one class number", "one-hot: save y.argmax(axis=1)"]),
    ("zero-d", {"y": np.array(3)}, ["array 'y' has shape (); expected one label per sample"]),
    ("empty", {"x": np.zeros((0, 28, 28), np.uint8), "y": np.zeros(0, np.int64)}, ["array 'x' holds no samples"]),
    ("negative", {"y": np.r_[np.zeros(7, np.int64), -1, np.zeros(192, np.int64)]},
     ["array 'y': sample 7 has label -1, outside the spec's classes 0-9"]),
    ("too-big", {"y": np.r_[np.zeros(5, np.int64), 10, np.zeros(194, np.int64)]},
     ["array 'y': sample 5 has label 10, outside the spec's classes 0-9"]),
    ("fraction", {"y": np.r_[np.zeros(3), 0.5, np.zeros(196)]}, ["array 'y': sample 3 has label 0.5, not a class"]),
    ("nan", "nan", ["array 'x': sample 11 holds nan (not a finite number)"]),
    ("inf", "inf", ["array 'x': sample 11 holds inf (not a finite number)"]),
    ("test-shape", {"x_test": np.zeros((50, 32, 32), np.uint8)},
     ["array 'x_test': test images are 1x32x32, the training images 1x28x28"]),
    ("test-unlabelled", {"y_test": None}, ["array 'x_test': there are test images but no test labels"]),
    ("pairs", {"y": np.zeros(150, np.int64)}, ["array 'x' has 200 images but", "array 'y' has 150 labels"]),
])
def test_npz_contents_are_checked_where_loaded(run, tmp_path, sample, case, change, phrases):
    if isinstance(change, str):
        x = sample[0].astype(np.float32)
        x[11, 3, 4] = float(change)
        change = {"x": x}
    path = good_npz(tmp_path, sample, f"{case}.npz", **change)
    refused(cli("eval", run, "--data", path), path, *phrases)


def test_npz_header_claiming_two_terabytes(run, tmp_path):
    head = npy_header((2 << 40,))
    path = write_zip(tmp_path / "claims.npz", [stored("y", np.zeros(3, np.int64)),
                                               ("x.npy", head + bytes(100), 0, zlib.crc32(head + bytes(100)),
                                                len(head) + 100)])
    refused(cli("eval", run, "--data", path), path, "array 'x' claims 2199023255552 values of |u1")


# ----------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("case, body, phrases", [
    ("pixel", b"3,0,300,0,0\n", ["pixel.csv:2: column 3 is 300, not a pixel value 0-255"]),
    ("label", b"-1,0,0,0,0\n", ["label.csv:2: label -1 is negative"]),
    ("digits", b"1,0,12345678901234567890,0,0\n", ["digits.csv:2: column 3 is a 20-digit number"]),
    ("utf8", b"1,0,0,\xff\xfe,0\n", ["utf8.csv:2: not UTF-8 text (byte 16 is 0xff)"]),
    ("float", b"1.5,0,0,0,0\n", ["float.csv:2: column 1 ('1.5') is not a whole number"]),
    ("range", b"10,0,0,0,0\n", ["range.csv (labels, column 1): sample 1 has label 10, outside the spec's classes 0-9"]),
])
def test_csv_values(tmp_path, case, body, phrases):
    spec = tmp_path / "csv.yaml"
    spec.write_text("input: 1x2x2\nclasses: 10\nnet: fc 10\n")
    path = tmp_path / f"{case}.csv"
    path.write_bytes(b"1,0,0,0,0\n" + body)
    refused(cli("train", spec, "--data", path, "--out", tmp_path / "run"), path, *phrases)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- IDX


def idx_folder(tmp_path, images: bytes, labels: bytes, gz: bool = False) -> Path:
    import gzip

    folder = tmp_path / "idx"
    folder.mkdir(exist_ok=True)
    suffix, pack = (".gz", gzip.compress) if gz else ("", bytes)
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(images))
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    return folder


@pytest.mark.parametrize("case", ["huge-claim", "dimensions", "magic", "long", "gzip-long", "gzip-broken"])
def test_corrupt_idx_says_what_is_wrong(run, tmp_path, sample, case):
    import gzip

    images, labels = write_idx(sample[0]), write_idx(sample[1].astype(np.uint8))
    file = "train-images-idx3-ubyte"
    if case == "huge-claim":  # a damaged count: 4,278,190,280 images
        folder, phrase = idx_folder(tmp_path, images[:4] + b"\xff" + images[5:], labels), \
            ("is damaged: its header claims 4278190280x28x28 values (3,354,101,179,520 bytes), the file holds "
                    "156,800 bytes")
    elif case == "dimensions":
        folder, phrase = idx_folder(tmp_path, images[:3] + b"\x63" + images[4:], labels), "claims 99 dimensions"
    elif case == "magic":
        folder, phrase = idx_folder(tmp_path, b"\x50\x4b" + images[2:], labels), "is not an IDX file"
    elif case == "long":
        folder, phrase = idx_folder(tmp_path, images + bytes(10), labels), "is too long"
    elif case == "gzip-long":  # the stream goes on: reading stops one byte after the header's size
        folder, phrase = idx_folder(tmp_path, images + bytes(1 << 20), labels, gz=True), \
            "is too long: its header claims 200x28x28 values"
        file += ".gz"
    else:
        folder = idx_folder(tmp_path, images, labels)
        (folder / (file + ".gz")).write_bytes(gzip.compress(images)[:-10])
        (folder / file).unlink()
        file, phrase = file + ".gz", "is a damaged gzip file"
    refused(cli("eval", run, "--data", folder), folder / file, phrase)


# ----------------------------------------------------------------------------- checkpoints


def test_text_file_named_best_npz_is_no_checkpoint(tmp_path):
    path = tmp_path / "best.npz"
    path.write_text("hello\n")
    line = refused(cli("eval", path), path, "is not a cnncli checkpoint: an .npz is a zip archive")
    assert "pickl" not in line


def test_a_spec_where_a_run_is_expected(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    line = refused(cli("eval", spec), spec, "is a spec, not a trained run", f"cnn train {spec}")
    assert "allow_pickle" not in line


@pytest.mark.parametrize("case, phrase", [
    ("no-spec", "its metadata has no 'spec'"),
    ("not-json", "its metadata is not JSON"),
    ("no-meta", "is not a cnncli checkpoint (it has no metadata)"),
    ("text-param", "array 'param/fc1.weight' has dtype <U1 (text), not numbers"),
    ("int-param", "array 'param/fc1.weight' has dtype <i8, not floating point"),
    ("short-param", "its param arrays hold 2,024 values, the spec stored in it implies 2,074"),
    ("std-zero", "its normalisation 'std' is not 1 finite number(s) above 0"),
    ("bad-spec", "the network stored in this checkpoint no longer parses"),
    ("truncated", "zip directory is missing or damaged"),
])
def test_damaged_checkpoints(run, tmp_path, case, phrase):
    path = tmp_path / f"{case}.npz"
    meta = meta_of(run)
    if case == "no-spec":
        with_meta(run, path, {k: v for k, v in meta.items() if k != "spec"})
    elif case == "not-json":
        npz(path, **checkpoint_members(run, meta=np.frombuffer(b"{not json", np.uint8)))
    elif case == "no-meta":
        npz(path, **checkpoint_members(run, meta=None))
    elif case == "text-param":
        npz(path, **checkpoint_members(run, param__fc1__weight=np.full((10, 196), "x")))
    elif case == "int-param":
        npz(path, **checkpoint_members(run, param__fc1__weight=np.zeros((10, 196), np.int64)))
    elif case == "short-param":
        npz(path, **checkpoint_members(run, param__fc1__weight=np.zeros((10, 191), np.float32)))
    elif case == "std-zero":
        with_meta(run, path, {**meta, "normalisation": {"mean": [0.5], "std": [0.0]}})
    elif case == "bad-spec":
        with_meta(run, path, {**meta, "spec": "input: 1x28x28\nnet: conv k=4 f=99 -> fc 10\n"})
    else:
        data = (run / "checkpoints" / "last.npz").read_bytes()
        path.write_bytes(data[: len(data) - 200])
    refused(cli("eval", path), path, phrase)
    refused(cli("inspect", path), path, phrase)


def test_resume_with_damaged_run_json_or_training_state(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "run.json").write_text('{"data": ')
    refused(cli("train", "--resume", copy, "--epochs", 3), copy / "run.json", "is damaged (JSONDecodeError")
    (copy / "run.json").unlink()
    meta = meta_of(run)
    del meta["epoch"]
    with_meta(run, copy / "checkpoints" / "last.npz", meta)
    refused(cli("train", "--resume", copy, "--epochs", 3), copy / "checkpoints" / "last.npz", "its training state is incomplete")


# ----------------------------------------------------------------------------- special files and images


def test_data_that_is_a_fifo_or_a_device(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(cli("eval", run, "--data", fifo), fifo, "is a named pipe (FIFO), not a data file or directory")
    refused(cli("eval", run, "--data", "/dev/zero"), "/dev/zero", "is a device, not a data file or directory")
    refused(cli("eval", fifo), fifo, "is a named pipe (FIFO), not a cnncli checkpoint")


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels (and holds none)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_png_claiming_30000_by_30000_pixels(run, tmp_path):
    pytest.importorskip("PIL")
    picture = png_claiming(tmp_path / "bomb.png", 30000, 30000)
    refused(cli("predict", run, picture), picture, "refused: Image size (900000000 pixels) exceeds limit")
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    png_claiming(folder / "cat" / "bomb.png", 30000, 30000)
    refused(cli("eval", run, "--data", folder), folder / "cat" / "bomb.png", "decompression bomb")


# ----------------------------------------------------------------------------- memory: bombs and huge networks
# Each runs under a 2 GiB address-space limit, so allocating what the file or spec claims would fail.


def test_npz_bomb_is_refused_from_its_headers(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    path = write_zip(tmp_path / "bomb.npz", [stored("y", np.zeros(3, np.int64)), bomb("x", GB3 >> 20)])
    assert path.stat().st_size < 13 << 20
    result = child("train", spec, "--data", path, "--out", tmp_path / "run")
    refused(result, path, "its arrays needs 3 GiB of memory, more than the")
    assert result[3] < 60


def test_checkpoint_bomb_is_refused_from_its_headers(run, tmp_path):
    arrays = checkpoint_members(run)
    members = [stored(k, v) for k, v in arrays.items() if k != "param/fc1.weight"] + [bomb("param/fc1.weight", 3 << 10, "<f4")]
    path = write_zip(tmp_path / "bomb.npz", members)
    result = child("eval", path, limit=16 << 30)  # enough memory for the bomb: the spec's sizes refuse it
    refused(result, path, "its param arrays hold 805,306,482 values, the spec stored in it implies 2,074")
    result = child("eval", path)
    refused(result, path, "its arrays needs 3 GiB of memory")


def test_gzip_idx_bomb_is_refused_from_its_header(run, tmp_path):
    count = 4_000_000_000 // 784
    head = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (count, 28, 28))
    stream = zeros_deflate(head, (count * 784) >> 20)
    folder = tmp_path / "idx"
    folder.mkdir()
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + stream + struct.pack("<II", 0, 0))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    result = child("eval", run, "--data", folder)
    refused(result, images, "its header claims 5102040x28x28 values", "of memory, more than the")
    assert result[3] < 60


def test_huge_networks_are_refused_with_the_estimate(tmp_path):
    wide = tmp_path / "wide.yaml"  # 79.5 G parameters
    wide.write_text("input: 1x28x28\nclasses: 10\nnet: fc 100000000 -> fc 10\n")
    refused(child("train", wide, "--data", "fashion-mnist-sample", "--out", tmp_path / "run"), wide,
            "training", "at batch 64 needs 1.2 TiB of memory")
    assert not (tmp_path / "run").exists()
    refused(child("inspect", wide), wide, "(79,500,000,010 parameters) needs 592 GiB of memory")
    huge = tmp_path / "huge.yaml"
    huge.write_text("input: 1x100000x100000\nclasses: 10\nnet: conv k=4 f=3 -> gap -> fc 10\n")
    refused(child("bench", huge), huge, "benchmarking", "at batch 64 needs 18.6 TiB")
    refused(child("gradcheck", huge), huge, "checking gradients", "at batch 2 needs 1.16 TiB")
    code, out, err = cli("shapes", huge)  # allocates nothing, so it answers
    assert code == 0 and "(adam, float32): 18.6 TiB = " in out and "activations 9.31 TiB + their gradients 9.31 TiB" in out


def test_checkpoint_of_a_network_too_big_for_memory(run, tmp_path):
    meta = meta_of(run)
    path = with_meta(run, tmp_path / "big.npz", {**meta, "spec": "input: 1x28x28\nclasses: 10\n"
                                                 "net: fc 100000000 -> fc 10\n"})
    refused(child("eval", path), path, "the network stored in it (79,500,000,010 parameters)", "of memory")


def test_regression_targets_must_match_the_outputs(tmp_path, sample):
    spec = tmp_path / "reg.yaml"
    spec.write_text("input: 1x28x28\noutput: 2\nnet: fc 2\ntrain:\n  loss: mse\n")
    path = npz(tmp_path / "reg.npz", x=sample[0], y=np.zeros((200, 3), np.float32))
    refused(cli("train", spec, "--data", path, "--out", tmp_path / "run"), path,
            "array 'y' has 3 target value(s) per sample, the spec has 2 output(s)")
    y = np.zeros((200, 2), np.float32)
    y[150, 1] = np.nan
    npz(path, x=sample[0], y=y)
    refused(cli("train", spec, "--data", path, "--out", tmp_path / "run"), path, "array 'y': sample 150 holds nan")


def test_csv_with_quotes_and_header_still_loads(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('"label","p1","p2","p3","p4"\n"3","0","10","20","255"\n\n1,5,5,5,5\n')
    d = resolve(str(path))
    assert d.y_train.tolist() == [3, 1] and d.x_train[0, 0].tolist() == [[0, 10], [20, 255]]


def test_a_fifo_among_images_is_skipped_not_opened(run, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(folder / "cat" / "a.png")
    os.mkfifo(folder / "cat" / "b.png")
    code, out, err, seconds = child("eval", run, "--data", folder, "--json", timeout=90)
    assert code == 0 and json.loads(out)["samples"] == 1, err

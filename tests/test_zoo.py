"""The shipped networks by name: `cnn zoo`, and a name wherever a spec path is accepted."""

from __future__ import annotations

import json

from .helpers import ARCHITECTURES
from .test_architectures import PUBLISHED
from .test_cli_shapes import cnn

TINY = "input: 1x6x6\nclasses: 2\nnet: conv k=2 f=3 -> relu -> fc 2\n"


def test_zoo_json_lists_every_shipped_network_with_its_size():
    r = cnn("zoo", "--json")
    assert r.returncode == 0, r.stderr
    networks = {n["name"]: n for n in json.loads(r.stdout)}
    assert sorted(networks) == sorted(PUBLISHED)
    for name, (params, _) in PUBLISHED.items():
        assert networks[name]["params"] == params, name
        description = networks[name]["description"]
        assert 20 < len(description) < 120 and "\n" not in description, name
    assert networks["resnet-50"]["input"] == [3, 224, 224] and networks["resnet-50"]["macs"] == 4_089_184_256
    assert networks["lenet-5"]["classes"] == 10


def test_zoo_table_has_one_row_per_network():
    r = cnn("zoo")
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert sorted(rows) == sorted(PUBLISHED)
    assert "| 3x224x224 |  25,557,032 | 4.09 G | ResNet-50" in rows["resnet-50"]
    assert "cnn shapes resnet-50" in r.stderr  # the hint, not in the piped result


def test_a_name_works_wherever_a_spec_path_does(tmp_path):
    by_path = json.loads(cnn("shapes", str(ARCHITECTURES / "resnet-50.yaml"), "--json").stdout)
    for given in ("resnet-50", "resnet-50.yaml"):
        r = cnn("shapes", given, "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert {**json.loads(r.stdout), "file": None} == {**by_path, "file": None}
    r = cnn("gradcheck", "resnet-20-cifar", "--input", "3x4x4", "--entries", "1", "--json", cwd=tmp_path)
    assert r.returncode == 0 and len(json.loads(r.stdout)["layers"]) == 70
    r = cnn("inspect", "lenet-5", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "lenet-5"


def test_an_existing_path_wins_over_a_name(tmp_path):
    (tmp_path / "resnet-50").write_text(TINY)
    r = cnn("shapes", "resnet-50", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["total_params"] == 2 * 9 + 2 + 2 * 16 * 2 + 2


def test_an_unknown_name_gets_a_did_you_mean(tmp_path):
    r = cnn("shapes", "resnet-05", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: no such file: resnet-05 (and no shipped network of that name)")
    assert "did you mean 'resnet-50'?" in r.stderr and "cnn zoo" in r.stderr
    r = cnn("train", "fashion-tutorail", cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'fashion-tutorial'?" in r.stderr
    r = cnn("shapes", "nets/resnet-50.yaml", cwd=tmp_path)  # a path, not a name
    assert r.returncode == 2 and r.stderr.startswith("error: no such file: nets/resnet-50.yaml\n")

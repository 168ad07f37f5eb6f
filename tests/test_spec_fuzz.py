"""A seeded fuzzer for the spec loader: mutated shipped architectures and odd YAML.

Whatever the text, loading it ends in a spec or in a UserError that names the file - never another
exception - and every case finishes within a bound far above its normal time (a hang guard, not a speed
measurement). The seed is fixed so that a failure reproduces; CNNCLI_FUZZ_CASES runs more cases.
"""

from __future__ import annotations

import os
import random
import time

from cnncli.errors import UserError
from cnncli.spec import loads

from .helpers import ARCHITECTURES

CASES = int(os.environ.get("CNNCLI_FUZZ_CASES", "2500"))
SECONDS_PER_CASE = 5.0  # CPU seconds; the slowest shipped spec loads in about 0.1 s, a hang or a blow-up takes minutes

# Small specs are mutated more often: they load fastest, and every construct appears in them too.
SOURCES = [(ARCHITECTURES / name).read_text() for name in (
    "fashion-tutorial.yaml", "fashion-recipe.yaml", "lenet-5.yaml", "alexnet.yaml", "resnet-20-cifar.yaml",
    "mobilenet-v1.yaml", "vgg-11.yaml", "googlenet.yaml")]
WEIGHTS = [8, 8, 8, 4, 4, 2, 2, 1]

# Pieces a user or an attacker might type: syntax, YAML features, odd values and the hostile inputs of issue 10.
SNIPPETS = [
    "(", ")", "->", "|", ",", "=", ":", ": ", "- ", "[", "]", "{", "}", "#", "'", '"', "\n", "\n  ", "  ", "\t",
    "x2", "x 3", "x0", "x10000", "x" + "9" * 30, "$k", "$", "${", "${k*2}", "}", "&a ", "*a", "&b [*b]", "<<: *a",
    "? ", "!!python/object/apply:os.system ['true']", "!!binary aGk=", "!!set", "!!timestamp 2026-01-01", "!", "~",
    "2026-13-45", "2026-02-30 25:00", ".inf", "-.inf", ".nan", "1e999", "1e-3", "0x" + "f" * 40, "1:2:3:4",
    "9" * 25, "9" * 5000, "-" * 80, "(" * 80, "[" * 60, "-" * 5000, "yes", "no", "maybe", "on", "off", "null",
    "true", "1.5", "-1", "0", "same", "dw", "\x00", "\x07", "\x1b[2J", "\x1b]0;title\x07", "\u202e", "\u200b",
    "\ufeff", "é", "×", "²", "add(", "cat(", "id", "conv", "fc", "pool", "bn", "relu", "name=", "k=", "f=",
    "s=", "p=", "g=dw", "bias=", "ceil=", "train:\n  ", "blocks:\n  ", "defaults:\n  ", "net: ", "input: ",
    "classes: ", "output: ", "epochs: ", "optimizer: ", "schedule: ", "augment: [", "early_stop: ",
]


def odd_documents(rng: random.Random) -> str:
    """Whole documents built to expand, nest or overflow."""
    kind = rng.randrange(8)
    head = "input: 1x28x28\n"
    if kind == 0:  # billion laughs, in net:, description: or a block
        width, levels = rng.randint(2, 12), rng.randint(2, 12)
        key = rng.choice(["net", "description", "x"])
        lines = ["a0: &a0 [relu, relu]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
                                              for i in range(1, levels)]
        return head + "\n".join(lines).replace("a0:", f"{key}:", 1) + "\n" + rng.choice(["net: fc 10\n", ""])
    if kind == 1:  # nested repeats of layers without parameters
        inner = rng.choice(["id", "relu", "bn", "dropout 0.1"])
        return head + "net: " + "(" * 3 + inner + "".join(f") x{rng.randint(1, 10000)}" for _ in range(3)) + "\n"
    if kind == 2:  # blocks calling each other several times each
        count, calls = rng.randint(2, 40), rng.randint(1, 4)
        blocks = "".join(f"  b{i}: " + " -> ".join([f"b{i + 1}"] * calls) + "\n" for i in range(count))
        return head + "blocks:\n" + blocks + f"  b{count}: {rng.choice(['id', 'relu'])}\nnet: b0\n"
    if kind == 3:  # deep nesting of every kind
        n = rng.choice([10, 49, 51, 200, 5000])
        return head + rng.choice([
            "net: " + "(" * n + "relu" + ")" * n + "\n",
            "blocks: {'b(k)': 'fc ${" + "-" * n + "$k}'}\nnet: b(10)\n",
            "blocks: {'b(k)': 'fc ${" + "(" * n + "$k" + ")" * n + "}'}\nnet: b(10)\n",
            "net:\n" + "".join("  " * i + "-\n" for i in range(1, min(n, 400))),
            "net: " + "[" * n + "]" * n + "\n",
            "net: " + "add(" * min(n, 300) + "relu | id" + ") x2" * min(n, 300) + "\n",
        ])
    if kind == 4:  # recursive and self-referring aliases
        return head + rng.choice(["net: &a [*a]\n", "net: &a {x: *a}\n", "a: &a [b, *a]\nnet: fc 10\n",
                                  "net: fc 10\ndescription: &d [[*d]]\n"])
    if kind == 5:  # arguments passed on and doubled through nested blocks
        levels = rng.randint(2, 32)
        blocks = "".join(f"  'b{i}(k)': b{i + 1}($k$k)\n" for i in range(levels))
        return head + "blocks:\n" + blocks + f"  'b{levels}(k)': fc 10 name=$k\nnet: b0(x)\n"
    if kind == 6:  # huge and odd numbers where numbers go
        value = rng.choice(["9" * 19, "9" * 300, "9" * 5000, "1e308", "1" + "0" * 400 + ".0", ".nan", "-5",
                            "0", "2026-13-45", "maybe", "1_000", "0b" + "1" * 100, "0o777", "99999*99999*99999"])
        return rng.choice([
            f"input: 1x28x{value}\nnet: fc 10\n", f"input: [1, 28, {value}]\nnet: fc 10\n",
            head + f"net: conv k={value} f=3\n", head + f"net: fc {value}\n", head + f"net: dropout {value}\n",
            head + f"net: relu x{value}\n", head + f"classes: {value}\nnet: fc 10\n",
            head + f"net: fc 10\ntrain: {{lr: {value}, epochs: {value}}}\n",
            head + f"net: fc 10\ntrain:\n  optimizer: sgd lr={value} nesterov={value}\n",
            head + f"defaults: {{conv: {{bias: {value}, s: {value}}}}}\nnet: conv k=4 f=3\n",
            head + f"blocks: {{'b(k)': 'fc ${{$k*$k*$k}}'}}\nnet: b({value})\n",
        ])
    # long, repeated or control-filled text
    return head + rng.choice([
        "net: relu -> " + "a" * rng.choice([100, 10_000, 100_000]) + "\n",
        "name: " + "\x1b[2J" * 3 + "\nnet: fc 10\n",
        "net: add(" + " | ".join(["relu"] * rng.choice([2, 100, 3000])) + ")\n",
        "description: '" + "x" * 300_000 + "'\nnet: fc 10\n",
    ])


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randint(0, len(text))
        if op == 0:  # insert a snippet
            text = text[:at] + rng.choice(SNIPPETS) + text[at:]
        elif op == 1:  # delete a span
            text = text[:at] + text[at + rng.randint(1, 20):]
        elif op == 2:  # duplicate a span (repeated keys, layers, brackets)
            span = text[at:at + rng.randint(1, 60)]
            text = text[:at] + span * rng.randint(2, 5) + text[at:]
        elif op == 3:  # replace a number
            digits = [i for i, ch in enumerate(text) if ch.isdigit()]
            if digits:
                i = rng.choice(digits)
                text = text[:i] + rng.choice(["0", "9" * 25, "-1", "x", ".nan", "2026-13-45"]) + text[i + 1:]
        else:  # swap two lines
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def cases(count: int, seed: int = 10):
    rng = random.Random(seed)
    for _ in range(count):
        if rng.random() < 0.03:  # these run into the limits, which takes longer; each has its own test too
            yield odd_documents(rng)
        else:
            yield mutate(rng, rng.choices(SOURCES, WEIGHTS)[0])


def test_fuzzed_specs_end_in_a_spec_or_a_user_error():
    outcomes = {"spec": 0, "error": 0}
    slowest = (0.0, "")
    started = time.perf_counter()
    for text in cases(CASES):
        t0 = time.process_time()
        try:
            loads(text, "fuzz.yaml")
            outcomes["spec"] += 1
        except UserError as exc:
            message = str(exc)
            assert message.startswith("fuzz.yaml"), message
            assert all(line.isprintable() for line in message.split("\n")), message
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{type(exc).__name__}: {exc}\nfor the spec:\n{text[:2000]!r}") from exc
        elapsed = time.process_time() - t0
        slowest = max(slowest, (elapsed, text[:200]))
    assert slowest[0] < SECONDS_PER_CASE, f"{slowest[0]:.1f} s for {slowest[1]!r}"
    # Both outcomes occur: the mutations keep some specs valid and break others.
    assert outcomes["spec"] > CASES // 20 and outcomes["error"] > CASES // 4, outcomes
    print(f"{CASES} fuzzed specs in {time.perf_counter() - started:.1f} s: {outcomes}; "
          f"slowest {slowest[0]:.2f} s")

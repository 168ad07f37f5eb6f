"""Where a second thread's time goes in a training step: each parallel pass's share on the main
thread, timed with the worker busy and with it idle, and the step split into the passes, the
worker's late start and end, and the serial Python between the passes.

    python benchmarks/thread_scaling.py [resnet-20-cifar] [--batch 64] [--steps 8] [--repeats 3]

A pass whose share takes longer with the worker busy competes with it for something both threads
need (memory bandwidth, shared cache); one that takes as long loses only the handoff. Measured on 2
threads. The steps with the worker idle compute wrong values (half of each pass is skipped): this
is a timing probe, nothing else. Passes are grouped by the function they run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncli import losses, optim  # noqa: E402
from cnncli.model import Model  # noqa: E402
from cnncli.ops import threads  # noqa: E402
from cnncli.spec import load  # noqa: E402
from cnncli.spec.shipped import resolve  # noqa: E402
from cnncli.step import TrainStep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", nargs="?", default="resnet-20-cifar")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the two modes")
    args = parser.parse_args()

    spec = load(resolve(args.network))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(*spec.input, args.batch)).astype(np.float32)
    y = rng.integers(0, spec.classes, args.batch)
    model = Model(spec, np.float32)
    step = TrainStep(model, losses.from_spec(spec.train, spec.classes),
                     optim.from_spec(spec.train, model.flat_params, model.flat_grads))
    threads.set_threads(2)

    run = threads._run
    mode = "busy"
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)  # (pass, mode) -> main's share per call
    handoff = defaultdict(float)  # busy steps: passes' elapsed time, the worker's late start and late end

    def timed_run(calls):
        if len(calls) == 1:
            return run(calls)
        spans = {}

        def timed(i, call):
            def share(*args):
                start = time.perf_counter()
                try:
                    return call(*args)
                finally:
                    spans[i] = (start, time.perf_counter())
            return share

        def idle(*_):
            return None

        (call, *first), rest = calls[0], calls[1:]
        others = [(timed(i, c) if mode == "busy" else idle, *args) for i, (c, *args) in enumerate(rest, 1)]
        begin = time.perf_counter()
        results = run([(timed(0, call), *first), *others])
        end = time.perf_counter()
        seconds[(call.__qualname__, mode)].append(spans[0][1] - spans[0][0])
        if mode == "busy":
            handoff["passes"] += end - begin
            handoff["late start"] += max(spans[i][0] for i in spans) - begin
            handoff["late end"] += end - max(stop for _, stop in spans.values())
        return results

    threads._run = timed_run
    try:
        for _ in range(3):
            step(x, y)
        seconds.clear()
        handoff.clear()
        for _ in range(args.repeats):
            for mode in ("busy", "idle"):
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(x, y)
                handoff[f"{mode} steps"] += time.perf_counter() - start
    finally:
        threads._run = run

    count = args.steps * args.repeats
    names = sorted({name for name, _ in seconds}, key=lambda n: -sum(seconds[(n, "busy")]))
    print(f"{args.network}, batch {args.batch}, 2 threads: the main thread's share of each pass, ms per step")
    print(f"{'pass':44} {'worker busy':>12} {'worker idle':>12} {'ratio':>6}")
    for name in names:
        busy, idle = sum(seconds[(name, "busy")]) / count, sum(seconds[(name, "idle")]) / count
        print(f"{name:44} {busy * 1e3:>12.2f} {idle * 1e3:>12.2f} {busy / idle if idle else float('nan'):>6.2f}")
    total_busy = sum(sum(seconds[(n, "busy")]) for n in names) / count
    total_idle = sum(sum(seconds[(n, "idle")]) for n in names) / count
    print(f"{'all passes':44} {total_busy * 1e3:>12.2f} {total_idle * 1e3:>12.2f} {total_busy / total_idle:>6.2f}")
    step_ms = handoff["busy steps"] / count * 1e3
    passes_ms = handoff["passes"] / count * 1e3
    print(f"a step with the worker busy: {step_ms:.1f} ms = {passes_ms:.1f} in parallel passes "
          f"(of which the worker's late start {handoff['late start'] / count * 1e3:.1f} and the wait after "
          f"the last share ends {handoff['late end'] / count * 1e3:.1f}) + {step_ms - passes_ms:.1f} serial, between the passes")


if __name__ == "__main__":
    main()

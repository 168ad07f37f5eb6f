"""Where a second thread's time goes in a training step: each parallel pass at the main thread's
speed (its seconds over the part of the pass it did) with the worker busy and with it idle, and the
step split into the passes, the main thread's wait for the worker, and the serial Python between.

    python benchmarks/thread_scaling.py [resnet-20-cifar] [--batch 64] [--steps 8] [--repeats 3]

A pass that runs slower with the worker busy competes with it for something both threads need
(memory bandwidth, shared cache); one that runs as fast loses only the handoff. Measured on 2
threads. With the worker idle, passes with fixed shares skip the worker's half and compute wrong
values, and passes whose runs are claimed (threads.Claims) run wholly on the main thread: this is
a timing probe, nothing else. Passes are grouped by the function they run.
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
from cnncli.errors import UserError  # noqa: E402
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

    try:
        spec = load(resolve(args.network))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(*spec.input, args.batch)).astype(np.float32)
    y = rng.integers(0, spec.classes, args.batch)
    model = Model(spec, np.float32)
    step = TrainStep(model, losses.from_spec(spec.train, spec.classes),
                     optim.from_spec(spec.train, model.flat_params, model.flat_grads))
    threads.set_threads(2)

    run = threads._run
    mode = "busy"
    # (pass, mode) -> [main thread's seconds in its shares, the parts of the passes' work they did, calls]
    shares: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    handoff = defaultdict(float)  # busy steps: passes' elapsed time, main's wait, the worker's late start

    class Counted:
        """The main thread's claims on a pass's runs (threads.Claims), counted as it takes them."""

        def __init__(self, claims):
            self.claims, self.taken = claims, 0

        def __iter__(self):
            for item in self.claims:
                self.taken += 1
                yield item

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
        counted = [Counted(a) if isinstance(a, threads.Claims) else a for a in first]
        others = [(timed(i, c) if mode == "busy" else idle, *args) for i, (c, *args) in enumerate(rest, 1)]
        begin = time.perf_counter()
        results = run([(timed(0, call), *counted), *others])
        end = time.perf_counter()
        claimed = [c for c in counted if isinstance(c, Counted)]
        # the part of the pass the main thread did: its runs of the claimed plans, else its fixed share
        part = (sum(c.taken for c in claimed) / sum(len(c.claims) for c in claimed)) if claimed else 1 / len(calls)
        entry = shares[(call.__qualname__, mode)]
        entry[0] += spans[0][1] - spans[0][0]
        entry[1] += part
        entry[2] += 1
        if mode == "busy":
            handoff["passes"] += end - begin
            handoff["main waits"] += end - spans[0][1]
            handoff["late start"] += max(start for start, _ in spans.values()) - begin
        return results

    threads._run = timed_run
    try:
        for _ in range(3):
            step(x, y)
        shares.clear()
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

    names = sorted({name for name, _ in shares}, key=lambda n: -shares[(n, "busy")][0])
    print(f"{args.network}, batch {args.batch}, 2 threads: each pass at the main thread's speed, "
          "ms per step for all of the pass's work")
    print(f"{'pass':44} {'worker busy':>12} {'worker idle':>12} {'ratio':>6}")
    total = {"busy": 0.0, "idle": 0.0}
    for name in names:
        # the main thread's seconds per whole pass, times the passes per step
        rate = {m: shares[(name, m)][0] / shares[(name, m)][1] * shares[(name, m)][2] / count for m in total}
        for m in total:
            total[m] += rate[m]
        print(f"{name:44} {rate['busy'] * 1e3:>12.2f} {rate['idle'] * 1e3:>12.2f} "
              f"{rate['busy'] / rate['idle'] if rate['idle'] else float('nan'):>6.2f}")
    print(f"{'all passes':44} {total['busy'] * 1e3:>12.2f} {total['idle'] * 1e3:>12.2f} {total['busy'] / total['idle']:>6.2f}")
    step_ms = handoff["busy steps"] / count * 1e3
    passes_ms = handoff["passes"] / count * 1e3
    print(f"a step with the worker busy: {step_ms:.1f} ms = {passes_ms:.1f} in parallel passes + "
          f"{step_ms - passes_ms:.1f} serial, between the passes; in the passes the main thread waited "
          f"{handoff['main waits'] / count * 1e3:.1f} ms for the worker, which started "
          f"{handoff['late start'] / count * 1e3:.1f} ms late in all")

if __name__ == "__main__":
    main()

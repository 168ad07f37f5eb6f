"""Start-up of every shipped network: the first training step with an empty kernel cache (cold:
Numba compiles every kernel the network uses) and again with that cache filled (warm: it loads them).

    python benchmarks/first_step.py [--batch 2] [--names NAME ...] [--input CxHxW] [--json out.json]
    python benchmarks/first_step.py --kernels NAME      # which kernels a network's first step compiles

Each measurement is a fresh process running what `cnn bench NAME --batch 2 --steps 1 --warmup 0` runs,
with NUMBA_CACHE_DIR pointing at a new temporary directory (cold), then at the same one (warm). The
networks run one after the other, never side by side. Reported per network, cold and warm:
  first step   `cnn bench`'s first_step_s: model build, compiling or loading kernels, then one training
               step and one inference;
  kernels      wall time in Numba's dispatcher compiling (cold) or loading (warm) kernels, with
               whatever it imports on first use: the cost of JIT compilation that the targets are about;
  start-up     first step minus one step and inference once running: everything that makes the first
               step slower (kernels, the model's allocation and initialisation, first use of memory);
  CPU          CPU time of the whole process (user + system, all threads, interpreter and imports
               included): on a machine that others share, the steadier figure.
Targets (issue 14): a cold first step compiles in under 30 s; a warm cache starts the first step
within 2 s. 'over' names the target a network misses, judged by its kernel time.

--kernels runs one network cold and then warm and lists every function Numba compiled, slowest
first: its compile time (a kernel that calls another counts only its own part), how many signatures
it needed (more than one: it met arrays of another dtype, dimension or layout, or scalars of another
type, and was compiled again), and the time the warm run spent loading it from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLD_LIMIT_S, WARM_LIMIT_S = 30.0, 2.0


def _union(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by (start, end) intervals that may overlap (threads waiting on each other)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        total += max(b - max(a, end), 0.0)
        end = max(end, b)
    return total


def child(name: str, batch: int, shape: str | None) -> None:
    """In a fresh process: one first step of `name` as `cnn bench` runs it, recording Numba's work.
    Prints one JSON object: first_step_s, step_s, kernels_s, imports_s and per function
    [compile s, signatures compiled, load s, signatures loaded]."""
    from numba.core import caching, event
    from numba.core.dispatcher import Dispatcher

    from cnncli import bench
    from cnncli.spec import load

    imports = time.perf_counter() - STARTED
    functions: dict[str, list] = {}
    outermost: list[tuple[float, float]] = []
    depth = threading.local()

    def entry(func) -> list:
        return functions.setdefault(f"{func.__module__}.{func.__qualname__}", [0.0, 0, 0.0, 0])

    compile_original, load_original = Dispatcher.compile, caching.Cache.load_overload

    def timed_compile(dispatcher, sig):
        level = getattr(depth, "level", 0)
        depth.level = level + 1
        started = time.perf_counter()
        try:
            return compile_original(dispatcher, sig)
        finally:
            depth.level = level
            if level == 0:
                outermost.append((started, time.perf_counter()))

    def timed_load(cache, sig, target_context):
        started = time.perf_counter()
        found = load_original(cache, sig, target_context)
        if found is not None:
            e = entry(cache._py_func)
            e[2] += time.perf_counter() - started
            e[3] += 1
        return found

    Dispatcher.compile, caching.Cache.load_overload = timed_compile, timed_load
    spec = load(name, input_shape=shape)
    with event.install_recorder("numba:compile") as recorder:
        result = bench.run(spec, batch=batch, steps=1, warmup=0)
    stack: list[list] = []  # [function, start, time spent compiling the functions it called]
    for stamp, ev in recorder.buffer:
        if ev.is_start:
            stack.append([ev.data["dispatcher"].py_func, stamp, 0.0])
            continue
        func, start, inner = stack.pop()
        if stack:
            stack[-1][2] += stamp - start
        e = entry(func)
        e[0] += stamp - start - inner
        e[1] += 1
    print(json.dumps({"first_step_s": result["first_step_s"],
                      "step_s": (result["train_step_ms"] + result["inference_ms"]) / 1e3,
                      "kernels_s": _union(outermost), "imports_s": imports, "functions": functions}))


def first_step(name: str, cache: Path, batch: int, shape: str | None) -> dict:
    """One child process with its kernel cache in `cache`."""
    cmd = [sys.executable, __file__, "--child", name, "--batch", str(batch)] + (["--input", shape] if shape else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{name}: the measuring process failed:\n{done.stderr}")
    run = json.loads(done.stdout.splitlines()[-1])
    run["startup_s"] = max(run["first_step_s"] - run["step_s"], 0.0)
    run["process_s"] = wall
    run["process_cpu_s"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return run


def measure(name: str, batch: int, shape: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="cnncli-first-step-") as tmp:
        cold = first_step(name, Path(tmp), batch, shape)
        warm = first_step(name, Path(tmp), batch, shape)
    over = (["cold"] if cold["kernels_s"] >= COLD_LIMIT_S else []) + (["warm"] if warm["kernels_s"] > WARM_LIMIT_S else [])
    keys = ("first_step_s", "kernels_s", "startup_s", "step_s", "imports_s", "process_s", "process_cpu_s")
    return {"name": name, "input": shape, "cold": {k: round(cold[k], 3) for k in keys},
            "warm": {k: round(warm[k], 3) for k in keys}, "over_target": over,
            "functions": {"cold": cold["functions"], "warm": warm["functions"]}}


def kernel_report(row: dict) -> None:
    cold, warm = row["functions"]["cold"], row["functions"]["warm"]
    for label, run, column in (("cold", cold, 0), ("warm", warm, 2)):
        spent = sum(f[column] for f in run.values())
        count = sum(f[column + 1] for f in run.values())
        what = "compiled" if column == 0 else "loaded from the cache"
        print(f"{row['name']} {label}: first step {row[label]['first_step_s']:.2f} s; kernels {row[label]['kernels_s']:.2f} s; "
              f"{count} signatures of {sum(1 for f in run.values() if f[column + 1])} functions {what} in {spent:.2f} s")
    print(f"{'compile s':>9} {'signatures':>10} {'load s':>7} {'loaded':>6}  function")
    for func in sorted(set(cold) | set(warm), key=lambda f: -cold.get(f, [0.0])[0]):
        c, w = cold.get(func, [0.0, 0, 0.0, 0]), warm.get(func, [0.0, 0, 0.0, 0])
        print(f"{c[0]:>9.2f} {c[1]:>10} {w[2]:>7.3f} {w[3]:>6}  {func}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", help="these shipped networks only (default: all of cnn zoo)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--input", help="replace every network's input, e.g. 3x64x64 (default: the spec's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--kernels", metavar="NAME", help="list the functions a first step of NAME compiles and loads")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)  # the measuring process
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch, args.input)
        return
    if args.kernels:
        kernel_report(measure(args.kernels, args.batch, args.input))
        return
    from cnncli.bench import cpu
    from cnncli.zoo import catalogue

    names = args.names or [net["name"] for net in catalogue()]
    print(f"{'':<19}| {'cold: first':>11} {'kernels':>8} {'CPU':>6} | {'warm: first':>11} {'kernels':>8} "
          f"{'start-up':>8} {'CPU':>6} | {'step':>6} | over", flush=True)
    rows = []
    for name in names:
        row = measure(name, args.batch, args.input)
        rows.append(row)
        c, w = row["cold"], row["warm"]
        print(f"{name:<19}| {c['first_step_s']:>10.2f}s {c['kernels_s']:>7.2f}s {c['process_cpu_s']:>5.1f}s | "
              f"{w['first_step_s']:>10.2f}s {w['kernels_s']:>7.2f}s {w['startup_s']:>7.2f}s {w['process_cpu_s']:>5.1f}s | "
              f"{w['step_s']:>5.2f}s | {', '.join(row['over_target']) or '-'}", flush=True)
    for label, limit, what in (("cold", COLD_LIMIT_S, "compiling"), ("warm", WARM_LIMIT_S, "loading")):
        worst = max(rows, key=lambda r: r[label]["kernels_s"])
        print(f"slowest {label}: {worst['name']}, {worst[label]['kernels_s']:.2f} s {what} kernels (target "
              f"{'<' if label == 'cold' else '<='} {limit:.0f} s)")
    print(f"batch {args.batch}; 'step' is one training step and one inference once running; "
          f"{cpu()['name']}, {cpu()['cores']} cores")
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "cpu": cpu(), "targets_s": {
            "cold": COLD_LIMIT_S, "warm": WARM_LIMIT_S}, "networks": [
                {k: v for k, v in row.items() if k != "functions"} for row in rows]}, indent=2) + "\n")


if __name__ == "__main__":
    main()

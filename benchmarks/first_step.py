"""Start-up of every shipped network: the first training step with an empty kernel cache (cold:
Numba compiles every kernel the network uses) and again with that cache filled (warm: loaded).

    python benchmarks/first_step.py [--batch 2] [--names NAME ...] [--input CxHxW] [--json out.json]
    python benchmarks/first_step.py --kernels NAME      # where a cold first step's compilation goes

Each measurement is one `cnn bench NAME --batch 2 --steps 1 --warmup 0 --json` in a fresh process,
with NUMBA_CACHE_DIR pointing at a new temporary directory (cold), then at the same one (warm). The
networks run one after the other, never side by side. Reported per network:
  first step   `cnn bench`'s first_step_s: model build, compilation or cache load, then one training
               step and one inference, as a user's first step sees it;
  start-up     first step minus what the step and inference take once running (the timed step after it):
               the part that compiling or loading kernels costs;
  process      wall time of the whole command, interpreter and imports included, and its CPU time (user +
               system, all threads): on a machine that others share, the steadier figure.
--kernels runs one network's first step with an empty cache, then again with it filled (each in a child
process), and lists every function Numba compiled, slowest first: its compile time (a kernel that calls
another counts only its own part), how many signatures it needed (more than one: it met arrays of
another dtype, dimension or layout, or scalars of another type, and was compiled again), and the time
the warm run spent loading it from the cache.
Targets (issue 14): cold first step under 30 s, warm first step within 2 s. A network whose steady step
alone takes seconds (the 224x224 ImageNet nets) is judged by its start-up part; --input shrinks them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnncli.bench import cpu  # noqa: E402
from cnncli.zoo import catalogue  # noqa: E402

COLD_LIMIT_S, WARM_LIMIT_S = 30.0, 2.0


def first_step(name: str, cache: Path, batch: int, shape: str | None) -> dict:
    """One `cnn bench` process with its kernel cache in `cache`."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "cnncli", "bench", name, "--batch", str(batch), "--steps", "1", "--warmup", "0",
           "--json"] + (["--input", shape] if shape else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    bench = json.loads(done.stdout)
    running = (bench["train_step_ms"] + bench["inference_ms"]) / 1e3
    return {"first_step_s": round(bench["first_step_s"], 2), "step_s": round(running, 3),
            "startup_s": round(max(bench["first_step_s"] - running, 0.0), 2), "process_s": round(wall, 2),
            "process_cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2)}


def measure(name: str, batch: int, shape: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="cnncli-first-step-") as tmp:
        cold = first_step(name, Path(tmp), batch, shape)
        warm = first_step(name, Path(tmp), batch, shape)
    over = []
    if cold["startup_s"] >= COLD_LIMIT_S:
        over.append("cold")
    if warm["startup_s"] > WARM_LIMIT_S:
        over.append("warm")
    return {"name": name, "input": shape, "cold": cold, "warm": warm, "over_target": over}


def compile_times(name: str, batch: int, shape: str | None) -> None:
    """In this (child) process: one first step of `name`, recording what Numba compiles (its compile
    events) and what it loads from the cache (timed around its cache lookups); prints JSON
    {"kernels": {kernel: [compile s, signatures compiled, load s, signatures loaded]}, ...}. A kernel's
    compile time excludes the kernels it called and compiled itself (they are counted as theirs)."""
    from numba.core import caching, event

    from cnncli import bench
    from cnncli.spec import load

    kernels: dict[str, list] = {}

    def entry(func) -> list:
        return kernels.setdefault(f"{func.__module__}.{func.__qualname__}", [0.0, 0, 0.0, 0])

    original = caching.Cache.load_overload

    def timed_load(cache, sig, target_context):
        started = time.perf_counter()
        found = original(cache, sig, target_context)
        if found is not None:
            e = entry(cache._py_func)
            e[2] += time.perf_counter() - started
            e[3] += 1
        return found

    caching.Cache.load_overload = timed_load
    spec = load(name, input_shape=shape)
    with event.install_recorder("numba:compile") as recorder:
        started = time.perf_counter()
        result = bench.run(spec, batch=batch, steps=1, warmup=0)
        total = time.perf_counter() - started
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
    running = (result["train_step_ms"] + result["inference_ms"]) / 1e3
    print(json.dumps({"first_step_s": total, "step_s": running, "kernels": kernels}))


def kernel_report(name: str, batch: int, shape: str | None) -> None:
    """A cold and then a warm first step of `name`, each in a child process; kernels by cost."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="cnncli-first-step-") as tmp:
        for _ in ("cold", "warm"):
            cmd = [sys.executable, __file__, "--compile-times", name, "--batch", str(batch)] + (
                ["--input", shape] if shape else [])
            done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "NUMBA_CACHE_DIR": tmp}, capture_output=True,
                                  text=True)
            if done.returncode:
                raise SystemExit(done.stderr)
            runs.append(json.loads(done.stdout.splitlines()[-1]))
    cold, warm = runs
    for label, run, column in (("cold", cold, 0), ("warm", warm, 2)):
        spent = sum(k[column] for k in run["kernels"].values())
        count = sum(k[column + 1] for k in run["kernels"].values())
        print(f"{name} {label}: first step {run['first_step_s']:.2f} s, of which {'compiling' if column == 0 else 'loading from the cache'} "
              f"{spent:.2f} s ({count} signatures of {sum(1 for k in run['kernels'].values() if k[column + 1])} functions); "
              f"the step and inference once running {run['step_s']:.2f} s")
    names = sorted(set(cold["kernels"]) | set(warm["kernels"]), key=lambda k: -cold["kernels"].get(k, [0])[0])
    print(f"{'compile s':>9} {'signatures':>10} {'load s':>7} {'loaded':>6}  function")
    for kernel in names:
        c = cold["kernels"].get(kernel, [0.0, 0, 0.0, 0])
        w = warm["kernels"].get(kernel, [0.0, 0, 0.0, 0])
        print(f"{c[0]:>9.2f} {c[1]:>10} {w[2]:>7.3f} {w[3]:>6}  {kernel}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", help="these shipped networks only (default: all of cnn zoo)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--input", help="replace every network's input, e.g. 3x64x64 (default: the spec's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--kernels", metavar="NAME", help="list the kernels a cold first step of NAME compiles")
    parser.add_argument("--compile-times", metavar="NAME", help=argparse.SUPPRESS)  # the child of --kernels
    args = parser.parse_args()
    if args.compile_times:
        compile_times(args.compile_times, args.batch, args.input)
        return
    if args.kernels:
        kernel_report(args.kernels, args.batch, args.input)
        return
    names = args.names or [net["name"] for net in catalogue()]
    print(f"{'':<20} {'cold: first':>11} {'start-up':>9} {'process':>8} {'CPU':>7} | {'warm: first':>11} "
          f"{'start-up':>9} {'process':>8} {'CPU':>7} | {'step':>6}  over", flush=True)
    rows = []
    for name in names:
        row = measure(name, args.batch, args.input)
        rows.append(row)
        c, w = row["cold"], row["warm"]
        print(f"{name:<20} {c['first_step_s']:>10.2f}s {c['startup_s']:>8.2f}s {c['process_s']:>7.2f}s "
              f"{c['process_cpu_s']:>6.1f}s | {w['first_step_s']:>10.2f}s {w['startup_s']:>8.2f}s {w['process_s']:>7.2f}s "
              f"{w['process_cpu_s']:>6.1f}s | {w['step_s']:>5.2f}s  {', '.join(row['over_target']) or '-'}", flush=True)
    worst_cold = max(rows, key=lambda r: r["cold"]["startup_s"])
    worst_warm = max(rows, key=lambda r: r["warm"]["startup_s"])
    print(f"slowest cold start-up: {worst_cold['name']} {worst_cold['cold']['startup_s']:.2f} s (target < "
          f"{COLD_LIMIT_S:.0f} s); slowest warm: {worst_warm['name']} {worst_warm['warm']['startup_s']:.2f} s "
          f"(target <= {WARM_LIMIT_S:.0f} s); batch {args.batch}; 'step' is one training step and one inference "
          f"once running")
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "cpu": cpu(), "targets_s": {
            "cold": COLD_LIMIT_S, "warm": WARM_LIMIT_S}, "networks": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

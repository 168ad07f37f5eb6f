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
  process      wall time of the whole command, interpreter and imports included.
--kernels runs one network's first step with an empty cache in a child process and lists the kernels
Numba compiled, slowest first: each signature's compile time (a kernel that calls another counts only its
own part) and how many signatures each kernel needed (more than one means it met arrays of another
dtype, dimension or layout, or scalars of another type, and was compiled again).
Targets (issue 14): cold first step under 30 s, warm first step within 2 s. A network whose steady step
alone takes seconds (the 224x224 ImageNet nets) is judged by its start-up part; --input shrinks them.
"""

from __future__ import annotations

import argparse
import json
import os
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
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    bench = json.loads(done.stdout)
    running = (bench["train_step_ms"] + bench["inference_ms"]) / 1e3
    return {"first_step_s": round(bench["first_step_s"], 2), "step_s": round(running, 3),
            "startup_s": round(max(bench["first_step_s"] - running, 0.0), 2), "process_s": round(wall, 2)}


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
    """In this (child) process: one first step of `name`, recording Numba's compile events; prints
    JSON {kernel: [seconds, signatures]} and the total. Kernel time nested in another's is its own."""
    from numba.core import event

    from cnncli import bench
    from cnncli.spec import load

    spec = load(name, input_shape=shape)
    with event.install_recorder("numba:compile") as recorder:
        started = time.perf_counter()
        bench.run(spec, batch=batch, steps=1, warmup=0)
        total = time.perf_counter() - started
    own: dict[str, list] = {}
    stack: list[list] = []  # [kernel, start, time spent in kernels it compiled]
    for stamp, ev in recorder.buffer:
        d = ev.data["dispatcher"]
        kernel = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
        if ev.is_start:
            stack.append([kernel, stamp, 0.0])
            continue
        kernel, start, inner = stack.pop()
        spent = stamp - start
        if stack:
            stack[-1][2] += spent
        entry = own.setdefault(kernel, [0.0, 0])
        entry[0] += spent - inner
        entry[1] += 1
    print(json.dumps({"first_step_s": total, "kernels": own}))


def kernel_report(name: str, batch: int, shape: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="cnncli-first-step-") as tmp:
        cmd = [sys.executable, __file__, "--compile-times", name, "--batch", str(batch)] + (
            ["--input", shape] if shape else [])
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "NUMBA_CACHE_DIR": tmp}, capture_output=True,
                              text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    result = json.loads(done.stdout.splitlines()[-1])
    kernels = sorted(result["kernels"].items(), key=lambda item: -item[1][0])
    compiling = sum(seconds for seconds, _ in result["kernels"].values())
    print(f"{name}: cold first step {result['first_step_s']:.2f} s, of which compiling {compiling:.2f} s "
          f"({sum(n for _, n in result['kernels'].values())} signatures of {len(kernels)} kernels)")
    print(f"{'seconds':>8} {'signatures':>10}  kernel")
    for kernel, (seconds, count) in kernels:
        print(f"{seconds:>8.2f} {count:>10}  {kernel}")


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
    print(f"{'network':<20} {'cold first':>10} {'start-up':>9} {'process':>8} | {'warm first':>10} {'start-up':>9} "
          f"{'process':>8} | {'step':>7}  over target", flush=True)
    rows = []
    for name in names:
        row = measure(name, args.batch, args.input)
        rows.append(row)
        c, w = row["cold"], row["warm"]
        print(f"{name:<20} {c['first_step_s']:>9.2f}s {c['startup_s']:>8.2f}s {c['process_s']:>7.2f}s | "
              f"{w['first_step_s']:>9.2f}s {w['startup_s']:>8.2f}s {w['process_s']:>7.2f}s | {w['step_s']:>6.2f}s  "
              f"{', '.join(row['over_target']) or '-'}", flush=True)
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

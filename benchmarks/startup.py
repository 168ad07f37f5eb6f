"""Start-up cost of `cnn shapes` against a bare `import yaml, typer, rich`.

    python benchmarks/startup.py [--runs 15] [--bytecode] [SPEC]

Each command runs in a fresh interpreter, stdout to a pipe, `--runs` times; the best run counts
(the others are slowed by whatever else the machine does). Both wall-clock time and the CPU time
the child used (user + system) are shown: on a busy machine the CPU time is the steadier figure.
With PYTHONDONTWRITEBYTECODE set, cnncli's modules are compiled from source on every run;
`--bytecode` lets the children cache bytecode (after one warm-up run), as an installed package has it.
The goal in issue 12 is a ratio of at most 2.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of `runs` runs."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env, check=True)
        wall = min(wall, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = min(cpu, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="architectures/resnet-50.yaml")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bytecode", action="store_true", help="let the children cache bytecode")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    py = sys.executable
    env = dict(os.environ)
    if args.bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        best([py, "-m", "cnncli", "shapes", args.spec], 1, env)  # writes the bytecode
    bare = best([py, "-c", "import yaml, typer, rich"], args.runs, env)
    shapes = best([py, "-m", "cnncli", "shapes", args.spec], args.runs, env)
    result = {
        "spec": args.spec,
        "runs": args.runs,
        "bytecode_cached": not env.get("PYTHONDONTWRITEBYTECODE"),
        "bare_import_ms": {"wall": round(bare[0] * 1e3, 1), "cpu": round(bare[1] * 1e3, 1)},
        "cnn_shapes_ms": {"wall": round(shapes[0] * 1e3, 1), "cpu": round(shapes[1] * 1e3, 1)},
        "ratio": {"wall": round(shapes[0] / bare[0], 2), "cpu": round(shapes[1] / bare[1], 2)},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"import yaml, typer, rich : {result['bare_import_ms']['wall']:7.1f} ms wall {result['bare_import_ms']['cpu']:7.1f} ms CPU")
    print(f"cnn shapes {args.spec}: {result['cnn_shapes_ms']['wall']:7.1f} ms wall {result['cnn_shapes_ms']['cpu']:7.1f} ms CPU")
    print(f"ratio: {result['ratio']['wall']:.2f}x wall, {result['ratio']['cpu']:.2f}x CPU (goal: <= 2.5x)"
          + ("" if result["bytecode_cached"] else "; cnncli compiled from source each run (PYTHONDONTWRITEBYTECODE)"))


if __name__ == "__main__":
    main()

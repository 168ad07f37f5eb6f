"""Training-step and inference throughput of this checkout's engine against an earlier revision's,
same networks, same machine, same thread count, one run.

    python benchmarks/speed_vs_revision.py [--base 4fa2f43] [--threads 1 2] [--rounds 9] [--steps 20]
                                           [--networks fashion-tutorial:64 lenet-5:64] [--json out.json]

Answers "is the engine still at least as fast as it was?" without a third party's noise: the ratio
against PyTorch (speed_vs_pytorch.py) moves with PyTorch's own timing too, this one only with ours.
The base revision is extracted with `git archive` into a temporary directory (removed afterwards);
each side runs in its own worker process on its own tree, and each side builds its step the way its
own benchmarks/speed_vs_pytorch.py does (`ours()`: Adam, cross-entropy, random data, its own
inference path). Rounds alternate which side goes first; the ratio is the median of each round's
paired ratio, above 1 when this checkout is faster. Needs the full git history (not a shallow clone).
The default base is the first version of the engine (4fa2f43, 2026-11-22).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_VERSION = "4fa2f43"
NETWORKS = ["fashion-tutorial:64", "fashion-tutorial:256", "lenet-5:64"]


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def worker(tree: Path, threads: int) -> None:
    """Answer 'network batch steps' lines on stdin with 'train_seconds infer_seconds' per step,
    running the engine of `tree` as that tree's own speed benchmark builds it."""
    sys.path[:0] = [str(tree), str(tree / "benchmarks")]
    import cnncli

    if not Path(cnncli.__file__).resolve().is_relative_to(tree.resolve()):
        fail(f"the worker for {tree} imported cnncli from {cnncli.__file__}")
    import speed_vs_pytorch as recipe
    from cnncli.ops.threads import set_threads

    set_threads(threads)
    built = {}
    for line in sys.stdin:
        name, batch, steps = line.split()
        if (name, batch) not in built:
            spec = recipe.load(tree / "architectures" / f"{name}.yaml")
            built[name, batch] = recipe.ours(spec, int(batch))
            for fn in built[name, batch]:  # warm-up: JIT compilation, allocations
                for _ in range(3):
                    fn()
        print(*(timed(fn, int(steps)) for fn in built[name, batch]), flush=True)


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def extract(revision: str, into: Path) -> str:
    """The tree of `revision` written under `into`; returns the full commit hash."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{revision}^{{commit}}"],
                            capture_output=True, text=True)
    if commit.returncode:
        fail(f"{revision!r} is not a commit of {ROOT} (a shallow clone lacks old revisions: git fetch --unshallow)")
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), commit.stdout.strip()], check=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tar.extractall(into / "tree", filter="data")
        else:  # our own repository's archive: no links out of the tree
            tar.extractall(into / "tree")
    return commit.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=FIRST_VERSION, help="the revision to compare against (default: the first version)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--networks", nargs="+", default=NETWORKS, metavar="NAME:BATCH",
                        help="shipped networks present in both revisions, each with its batch size")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads[0])
        return

    sys.path.insert(0, str(ROOT))
    from cnncli.bench import blas_kernels, cpu

    runs = []
    for item in args.networks:
        name, _, batch = item.partition(":")
        if not batch.isdigit() or not (ROOT / "architectures" / f"{name}.yaml").is_file():
            fail(f"--networks {item!r}: give a shipped network and a batch size, e.g. lenet-5:64")
        runs.append((name, int(batch)))

    with tempfile.TemporaryDirectory(prefix="cnncli-base-") as scratch:
        commit = extract(args.base, Path(scratch))
        trees = {"now": ROOT, "base": Path(scratch) / "tree"}
        workers = {(side, t): subprocess.Popen([sys.executable, __file__, "--worker", str(tree), "--threads", str(t)],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree)
                   for t in args.threads for side, tree in trees.items()}

        def ask(side: str, threads: int, name: str, batch: int) -> tuple[float, float]:
            proc = workers[(side, threads)]
            proc.stdin.write(f"{name} {batch} {args.steps}\n")
            proc.stdin.flush()
            reply = proc.stdout.readline().split()
            if len(reply) != 2:
                fail(f"the {side} worker ({threads} threads) stopped on {name}; its message is above")
            return float(reply[0]), float(reply[1])

        machine = cpu()
        print(f"this checkout against {commit[:10]}, median of {args.rounds} paired rounds of {args.steps} steps; "
              f"{machine['name']}, {machine['vector']}, BLAS {blas_kernels()}")
        print(f"{'network':16} {'batch':>5} {'thr':>3} | {'train samples/s':>17} {'ratio':>5} | {'inference samples/s':>19} {'ratio':>5}")
        print(f"{'':16} {'':>5} {'':>3} | {'now':>8} {'base':>8} {'':>5} | {'now':>9} {'base':>9} {'':>5}")
        results = []
        for name, batch in runs:
            seconds = {(t, side): [] for t in args.threads for side in trees}
            for round_ in range(args.rounds):
                for t in args.threads:
                    for side in (("now", "base") if round_ % 2 == 0 else ("base", "now")):
                        seconds[(t, side)].append(ask(side, t, name, batch))
            for t in args.threads:
                now, base = seconds[(t, "now")], seconds[(t, "base")]
                row = {"network": name, "batch": batch, "threads": t, "base": commit}
                for part, i in (("train", 0), ("inference", 1)):
                    row[f"now_{part}_samples_per_s"] = round(batch / statistics.median(s[i] for s in now), 1)
                    row[f"base_{part}_samples_per_s"] = round(batch / statistics.median(s[i] for s in base), 1)
                    paired = [b[i] / n[i] for n, b in zip(now, base)]
                    row[f"{part}_ratio"] = round(statistics.median(paired), 3)
                    row[f"{part}_ratio_rounds"] = [round(r, 3) for r in paired]
                results.append(row)
                print(f"{name:16} {batch:>5} {t:>3} | {row['now_train_samples_per_s']:>8,.0f} {row['base_train_samples_per_s']:>8,.0f} "
                      f"{row['train_ratio']:>5.2f} | {row['now_inference_samples_per_s']:>9,.0f} "
                      f"{row['base_inference_samples_per_s']:>9,.0f} {row['inference_ratio']:>5.2f}", flush=True)
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
    print("ratio: median over rounds of this checkout's samples/s over the base revision's in the same round "
          "(above 1: faster now); every round's ratio in the JSON")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Training-step and inference throughput of cnncli against PyTorch, same network, same machine,
same thread count, one run.

    python benchmarks/speed_vs_pytorch.py [--threads 2] [--rounds 7] [--steps 20] [--json out.json]

Both sides run the same spec (PyTorch's twin is built by torch_net.py), Adam, cross-entropy, random
data. Each side lives in its own worker process, so that neither's idle threads (OpenMP spins while
waiting for work) slow the other; the script alternates between them in rounds so that a busy moment
of the machine hits both, and reports the median over rounds. A ratio above 1 means cnncli is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnncli.spec import load  # noqa: E402  (the spec side never imports numba)

NETS = ["fashion-tutorial", "lenet-5"]
BATCHES = [64, 256]


def ours(spec, batch):
    # Imported here: numba must never be loaded into the PyTorch worker (two OpenMP runtimes in one
    # process made PyTorch up to 4.5x slower in a test).
    from cnncli import losses, optim
    from cnncli.model import Model
    from cnncli.step import TrainStep

    model = Model(spec, np.float32, seed=0)
    rng = np.random.default_rng(0)
    c, h, w = spec.input
    x = rng.normal(0, 1, (c, h, w, batch)).astype(np.float32)
    y = rng.integers(0, spec.classes, batch)
    step = TrainStep(model, losses.Loss("cross_entropy"),
                     optim.Optimizer(model.flat_params, model.flat_grads, "adam", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8))
    return (lambda: step(x, y)), (lambda: model.forward_internal(x, train=False))


def theirs(spec, batch):
    import torch
    from torch_net import TorchNet

    net = TorchNet(spec)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, *spec.input)
    y = torch.randint(0, spec.classes, (batch,))

    def train():
        net.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    def infer():
        net.eval()
        with torch.no_grad():
            net(x)

    return train, infer


def timed(fn, steps):
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def worker(side: str, threads: int) -> None:
    """Answer 'network batch steps' lines on stdin with 'train_seconds infer_seconds' per step."""
    if side == "ours":
        from cnncli.ops.threads import set_threads

        set_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    built = {}
    for line in sys.stdin:
        name, batch, steps = line.split()
        key = (name, int(batch))
        if key not in built:
            spec = load(ROOT / "architectures" / f"{name}.yaml")
            built[key] = (ours if side == "ours" else theirs)(spec, int(batch))
            for fn in built[key]:  # warm-up: JIT compilation, allocations
                for _ in range(3):
                    fn()
        train, infer = built[key]
        print(timed(train, int(steps)), timed(infer, int(steps)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads)
        return

    import subprocess

    import torch

    sides = {side: subprocess.Popen([sys.executable, __file__, "--worker", side, "--threads", str(args.threads)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for side in ("ours", "torch")}

    def ask(side, name, batch):
        proc = sides[side]
        proc.stdin.write(f"{name} {batch} {args.steps}\n")
        proc.stdin.flush()
        train, infer = proc.stdout.readline().split()
        return float(train), float(infer)

    results = []
    print(f"cnncli vs PyTorch {torch.__version__}, {args.threads} threads each, median of {args.rounds} rounds "
          f"of {args.steps} steps")
    print(f"{'network':18} {'batch':>5} | {'train samples/s':>25} {'ratio':>6} | {'inference samples/s':>25} {'ratio':>6}")
    print(f"{'':18} {'':>5} | {'cnncli':>12} {'PyTorch':>12} {'':>6} | {'cnncli':>12} {'PyTorch':>12}")
    for name in NETS:
        for batch in BATCHES:
            samples = {k: [] for k in ("ours_train", "ours_infer", "torch_train", "torch_infer")}
            for _ in range(args.rounds):
                for side in ("ours", "torch"):
                    train, infer = ask(side, name, batch)
                    samples[f"{side}_train"].append(train)
                    samples[f"{side}_infer"].append(infer)
            med = {k: batch / statistics.median(v) for k, v in samples.items()}
            row = {"network": name, "batch": batch, "threads": args.threads,
                   **{f"{k}_samples_per_s": round(v, 1) for k, v in med.items()},
                   "train_ratio": round(med["ours_train"] / med["torch_train"], 3),
                   "inference_ratio": round(med["ours_infer"] / med["torch_infer"], 3)}
            results.append(row)
            print(f"{name:18} {batch:>5} | {med['ours_train']:>12,.0f} {med['torch_train']:>12,.0f} "
                  f"{row['train_ratio']:>6.2f} | {med['ours_infer']:>12,.0f} {med['torch_infer']:>12,.0f} "
                  f"{row['inference_ratio']:>6.2f}", flush=True)
    for proc in sides.values():
        proc.stdin.close()
        proc.wait()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

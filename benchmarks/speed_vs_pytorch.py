"""Training-step and inference throughput of cnncli against PyTorch, same network, same machine,
same thread count, one run.

    python benchmarks/speed_vs_pytorch.py [--threads 1 2] [--rounds 7] [--steps 20] [--only resnet-20-cifar]
                                          [--layers] [--json out.json]

Both sides run the same spec (PyTorch's twin is built by torch_net.py), Adam, cross-entropy, random
data. Each side lives in its own worker process, so that neither's idle threads (OpenMP spins while
waiting for work) slow the other; the script alternates between them in rounds so that a busy moment
of the machine hits both, and reports the median over rounds. A ratio above 1 means cnncli is faster.
The ratio is the median of each round's ratio (cnncli's measurement against PyTorch's right after it),
not the ratio of the two medians: on a shared machine whose speed drifts by 10-20 % over minutes, a
pair measured back to back sees the same machine, and the JSON keeps every round's ratio.
Each thread count has its own pair of worker processes; the rounds alternate over all of them.

GFLOP/s counts 2 FLOPs per multiply-add of the convs and fc layers (a training step: forward, input
and weight gradients), the same for both sides; "peak" is the share of the machine's FP32 FMA peak
measured by peak_flops.py with as many threads (the better of its FMA and SGEMM probes).
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

from cnncli.spec import load, loads  # noqa: E402  (the spec side never imports numba)

# (network, batch, input, classes): None keeps the spec's own
RUNS = [("fashion-tutorial", 64, None, None), ("fashion-tutorial", 256, None, None), ("lenet-5", 64, None, None),
        ("resnet-20-cifar", 64, None, None), ("mobilenet-v2", 32, "3x64x64", 10)]

# --layers: ResNet-20's 3x3 convs and the tutorial net's 5x5 conv (16 to 32 channels on 14x14) one at
# a time (batch 64). The 1x1 conv before each makes both sides compute the conv's input gradient;
# gap -> fc 10 gives the loss. Both cost little beside the conv timed.
LAYERS = {f"conv3x3-{c}@{h}": f"input: {c}x{h}x{h}\nclasses: 10\nnet: conv k={c} f=1 bias=false -> "
          f"conv k={c} f=3 p=1 bias=false -> gap -> fc 10\n" for c, h in ((16, 32), (32, 16), (64, 8))}
LAYERS["conv5x5-16:32@14"] = ("input: 16x14x14\nclasses: 10\nnet: conv k=16 f=1 bias=false -> "
                              "conv k=32 f=5 p=2 -> gap -> fc 10\n")
LAYER_RUNS = [(name, 64, None, None) for name in LAYERS]


def spec_for(name: str, input_shape: str | None, classes: int | None):
    """The shipped spec, with its input replaced and its classifier resized to `classes`."""
    if name in LAYERS:
        return loads(LAYERS[name], name)
    text = (ROOT / "architectures" / f"{name}.yaml").read_text()
    if classes is not None:
        old = load(ROOT / "architectures" / f"{name}.yaml").classes
        text = text.replace(f"classes: {old}", f"classes: {classes}").replace(f"fc {old}", f"fc {classes}")
    return loads(text, name, input_shape=input_shape)


def run_flops(spec, batch: int) -> tuple[int, int]:
    """FLOPs of one training step and of one inference, as `cnn bench` counts them."""
    from cnncli.bench import layer_flops

    per_layer = [layer_flops(node, batch) for node in spec.nodes]
    return sum(f + b for f, b in per_layer), sum(f for f, _ in per_layer)


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
    return (lambda: step(x, y)), (lambda: model.infer_internal(x))


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


def timed(fn, steps, clock=time.perf_counter):
    t = clock()
    for _ in range(steps):
        fn()
    return (clock() - t) / steps


def worker(side: str, threads: int, clock) -> None:
    """Answer 'network batch input classes steps' lines on stdin with 'train_seconds infer_seconds' per step."""
    if side == "ours":
        from cnncli.ops.threads import set_threads

        set_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    built = {}
    for line in sys.stdin:
        name, batch, input_shape, classes, steps = line.split()
        key = (name, int(batch), input_shape, classes)
        if key not in built:
            spec = spec_for(name, None if input_shape == "-" else input_shape, None if classes == "-" else int(classes))
            built[key] = (ours if side == "ours" else theirs)(spec, int(batch))
            for fn in built[key]:  # warm-up: JIT compilation, allocations
                for _ in range(3):
                    fn()
        train, infer = built[key]
        print(timed(train, int(steps), clock), timed(infer, int(steps), clock), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", nargs="+", help="run only these networks")
    parser.add_argument("--layers", action="store_true", help="time single convs instead: ResNet-20's 3x3 ones, the tutorial net's 5x5")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the worker's CPU seconds per step instead of elapsed time; steadier on a "
                             "busy shared machine, meaningful with --threads 1 only (idle threads spin)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads[0], time.process_time if args.clock == "cpu" else time.perf_counter)
        return
    choices = [r[0] for r in (LAYER_RUNS if args.layers else RUNS)]
    unknown = [name for name in args.only or [] if name not in choices]
    if unknown:
        print(f"error: --only {unknown[0]!r} is not one of the {'layers' if args.layers else 'networks'} measured "
              f"here: {', '.join(dict.fromkeys(choices))}", file=sys.stderr)
        sys.exit(2)

    import subprocess

    import torch

    from cnncli.bench import blas_kernels, cpu

    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("peak_flops.py")), "--json",
                            "--threads", *map(str, args.threads), "--clock", args.clock], capture_output=True, text=True, check=True)
    peak = {r["threads"]: max(r["fma_gflop_per_s"], r["sgemm_gflop_per_s"]) for r in json.loads(probe.stdout)}
    workers = {(side, t): subprocess.Popen([sys.executable, __file__, "--worker", side, "--threads", str(t),
                                            "--clock", args.clock],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for t in args.threads for side in ("ours", "torch")}

    def ask(side, threads, run):
        name, batch, input_shape, classes = run
        proc = workers[(side, threads)]
        proc.stdin.write(f"{name} {batch} {input_shape or '-'} {classes or '-'} {args.steps}\n")
        proc.stdin.flush()
        train, infer = proc.stdout.readline().split()
        return float(train), float(infer)

    machine = cpu()
    print(f"cnncli vs PyTorch {torch.__version__}, median of {args.rounds} rounds of {args.steps} steps "
          f"({'CPU' if args.clock == 'cpu' else 'elapsed'} time); "
          f"{machine['name']}, {machine['vector']}, BLAS {blas_kernels()}; FP32 peak "
          + ", ".join(f"{peak[t]:.0f} GFLOP/s on {t} thread{'s' if t > 1 else ''}" for t in args.threads))
    print(f"{'network':16} {'input':>8} {'batch':>5} {'thr':>3} | {'train samples/s':>17} {'ratio':>5} "
          f"{'GFLOP/s':>11} {'peak':>4} | {'inference samples/s':>17} {'ratio':>5} {'GFLOP/s':>11} {'peak':>4}")
    print(f"{'':16} {'':>8} {'':>5} {'':>3} | {'cnncli':>8} {'PyTorch':>8} {'':>5} {'cnncli':>5} {'torch':>5} {'':>4} | "
          f"{'cnncli':>8} {'PyTorch':>8} {'':>5} {'cnncli':>5} {'torch':>5} {'':>4}")
    results = []
    runs = [r for r in (LAYER_RUNS if args.layers else RUNS) if not args.only or r[0] in args.only]
    for run in runs:
        name, batch, input_shape, classes = run
        spec = spec_for(name, input_shape, classes)
        train_flops, infer_flops = run_flops(spec, batch)
        samples = {(t, k): [] for t in args.threads for k in ("ours_train", "ours_infer", "torch_train", "torch_infer")}
        for _ in range(args.rounds):
            for t in args.threads:
                for side in ("ours", "torch"):
                    train, infer = ask(side, t, run)
                    samples[(t, f"{side}_train")].append(train)
                    samples[(t, f"{side}_infer")].append(infer)
        for t in args.threads:
            sec = {k: statistics.median(v) for (tt, k), v in samples.items() if tt == t}
            spread = {k: (max(v) - min(v)) / statistics.median(v) for (tt, k), v in samples.items() if tt == t}
            paired = {part: [theirs / mine for mine, theirs in zip(samples[(t, f"ours_{part}")], samples[(t, f"torch_{part}")])]
                      for part in ("train", "infer")}
            row = {"network": name, "input": "x".join(map(str, spec.input)), "batch": batch, "threads": t,
                   **{f"{k}_samples_per_s": round(batch / v, 1) for k, v in sec.items()},
                   **{f"{k}_gflop_per_s": round((train_flops if k.endswith("train") else infer_flops) / v / 1e9, 2)
                      for k, v in sec.items()},
                   "train_ratio": round(statistics.median(paired["train"]), 3),
                   "inference_ratio": round(statistics.median(paired["infer"]), 3),
                   "train_ratio_rounds": [round(r, 3) for r in paired["train"]],
                   "inference_ratio_rounds": [round(r, 3) for r in paired["infer"]],
                   "peak_gflop_per_s": round(peak[t], 1),
                   "largest_spread": round(max(spread.values()), 3)}
            results.append(row)
            share = {k: row[f"{k}_gflop_per_s"] / peak[t] for k in ("ours_train", "ours_infer")}
            print(f"{name:16} {row['input']:>8} {batch:>5} {t:>3} | {row['ours_train_samples_per_s']:>8,.0f} "
                  f"{row['torch_train_samples_per_s']:>8,.0f} {row['train_ratio']:>5.2f} "
                  f"{row['ours_train_gflop_per_s']:>5.1f} {row['torch_train_gflop_per_s']:>5.1f} {share['ours_train']:>4.0%} | "
                  f"{row['ours_infer_samples_per_s']:>8,.0f} {row['torch_infer_samples_per_s']:>8,.0f} "
                  f"{row['inference_ratio']:>5.2f} {row['ours_infer_gflop_per_s']:>5.1f} "
                  f"{row['torch_infer_gflop_per_s']:>5.1f} {share['ours_infer']:>4.0%}", flush=True)
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()
    print("ratio: median over rounds of cnncli's samples/s over PyTorch's in the same round (above 1: cnncli faster); "
          "peak: cnncli's share of the FP32 peak; every round's ratio and the largest spread of a median in the JSON")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

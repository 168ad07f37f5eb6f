"""What a training step really allocates, against the estimate `cnn shapes` prints (and that cnncli
uses to refuse networks too big for the machine).

    python benchmarks/train_memory.py [SPEC] [--batch 64]

Builds the model, optimizer and loss of the spec, runs two training steps on random data, and
reports the numpy memory traced by tracemalloc (everything the engine keeps: parameters, gradients,
optimizer state, buffers, activations, workspaces and caches) next to `spec.memory(batch)`.
Issue 14 asks for the two to agree within 10% for resnet-20 at batch 64.
"""

from __future__ import annotations

import argparse
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(ROOT / "architectures" / "resnet-20-cifar.yaml"))
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    from cnncli import losses, optim
    from cnncli.model import Model
    from cnncli.report import human_bytes
    from cnncli.spec import load
    from cnncli.step import TrainStep

    spec = load(args.spec)
    estimate = spec.memory(args.batch)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(*spec.input, args.batch)).astype(np.float32)  # the engine's (C, H, W, N)
    y = rng.integers(0, spec.classes or 1, args.batch)
    tracemalloc.start()
    model = Model(spec, np.float32)
    settings = spec.train
    step = TrainStep(model, losses.from_spec(settings, spec.classes),
                     optim.from_spec(settings, model.flat_params, model.flat_grads))
    for _ in range(2):
        step(x, y)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{spec.name} at batch {args.batch}")
    print("estimate (cnn shapes): " + ", ".join(f"{k} {human_bytes(v)}" for k, v in estimate.items() if k != "batch"))
    print(f"engine, traced: held after two steps {human_bytes(held)}, peak {human_bytes(peak)}; "
          f"peak / estimate = {peak / estimate['total']:.2f}")


if __name__ == "__main__":
    main()

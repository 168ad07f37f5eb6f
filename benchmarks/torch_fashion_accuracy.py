"""The PyTorch reference for benchmarks/fashion_mnist_accuracy.py: the same tutorial net, data,
normalisation and training settings (read from the spec: epochs, batch, Adam's rate and the
learning-rate schedule, step by step); test accuracy after every epoch.

    python benchmarks/torch_fashion_accuracy.py [--seeds 0 1 2] [--same-start] [--set KEY=VALUE]

--same-start starts PyTorch from cnncli's initial weights for the seed and feeds cnncli's batches
in cnncli's order, so the two differ only in arithmetic (float32 rounding, kernel order): a check
that the engine trains as PyTorch does, seed for seed. Without it, PyTorch draws its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fashion_mnist_accuracy import settings_for  # noqa: E402

from cnncli import optim  # noqa: E402
from cnncli.data import SYSTEM, resolve  # noqa: E402
from cnncli.data.augment import channel_stats  # noqa: E402
from cnncli.model import Model  # noqa: E402
from cnncli.schedules import Schedule  # noqa: E402
from cnncli.spec import load  # noqa: E402
from cnncli.train import epoch_batches  # noqa: E402


def train_once(torch, spec, data, seed: int, same_start: bool, changes: dict[str, str]) -> list[float]:
    from torch_net import TorchNet

    s = settings_for(spec, seed, changes)
    ours = optim.from_spec(s, np.zeros(1, np.float32), np.zeros(1, np.float32))  # the settings, defaults filled in
    if ours.name not in ("adam", "adamw") or ours.l1 or ours.clip or s.augment or s.loss:
        sys.exit("this reference covers Adam/AdamW without augmentation, l1 or clipping, and the default loss")
    optimizer = ours.settings
    torch.manual_seed(seed)
    mean, std = channel_stats(data.x_train)
    x = (torch.tensor(data.x_train, dtype=torch.float32) / 255 - float(mean[0])) / float(std[0])
    xt = (torch.tensor(data.x_test, dtype=torch.float32) / 255 - float(mean[0])) / float(std[0])
    y, yt = torch.tensor(data.y_train, dtype=torch.int64), torch.tensor(data.y_test, dtype=torch.int64)
    net = TorchNet(spec)
    if same_start:
        net.load_from(Model(spec, np.float32, seed=seed))
    kind = torch.optim.Adam if ours.name == "adam" else torch.optim.AdamW
    opt = kind(net.parameters(), lr=optimizer["lr"], betas=(optimizer["beta1"], optimizer["beta2"]),
               eps=optimizer["eps"], weight_decay=optimizer["weight_decay"])
    index = np.arange(len(x))
    steps = len(epoch_batches(index, seed, 0, s.batch))
    schedule = Schedule(s.schedule, optimizer["lr"], s.epochs, steps)
    accs = []
    for epoch in range(s.epochs):
        net.train()
        if same_start:
            batches = [torch.from_numpy(b) for b in epoch_batches(index, seed, epoch, s.batch)]
        else:
            order = torch.randperm(len(x))
            batches = [order[i : i + s.batch] for i in range(0, len(x), s.batch)]
        for step, idx in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = schedule.lr(epoch, step)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            accs.append(float((net(xt).argmax(1) == yt).float().mean()))
        print(f"  epoch {epoch + 1}: test accuracy {100 * accs[-1]:.2f}%", flush=True)
    return accs


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--same-start", action="store_true", help="cnncli's initial weights and batch order")
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="change a training setting, as cnn train --set does")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    changes = dict(change.split("=", 1) for change in args.changes)
    spec = load(ROOT / "architectures" / "fashion-tutorial.yaml")
    data = resolve(str(SYSTEM / "fashion-mnist"))
    finals = []
    for seed in dict.fromkeys(args.seeds):
        started = time.perf_counter()
        accs = train_once(torch, spec, data, seed, args.same_start, changes)
        seconds = time.perf_counter() - started
        finals.append(accs[-1])
        print(f"PyTorch {torch.__version__} (seed {seed}{', same start' if args.same_start else ''}): test accuracy "
              f"per epoch {', '.join(f'{100 * a:.2f}%' for a in accs)}; {seconds:.0f} s, "
              f"{seconds / len(accs):.1f} s per epoch", flush=True)
    if len(finals) > 1:
        print(f"final test accuracy: min {100 * min(finals):.2f}%, median {100 * statistics.median(finals):.2f}%, "
              f"max {100 * max(finals):.2f}%")


if __name__ == "__main__":
    main()

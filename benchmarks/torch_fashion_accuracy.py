"""The PyTorch reference for benchmarks/fashion_mnist_accuracy.py: the same tutorial net, data,
normalisation, Adam lr 0.001, batch 100, 5 epochs; test accuracy after every epoch.

    python benchmarks/torch_fashion_accuracy.py [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnncli.data import SYSTEM, resolve  # noqa: E402
from cnncli.spec import load  # noqa: E402


def main() -> None:
    import torch
    from torch_net import TorchNet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = resolve(str(SYSTEM / "fashion-mnist"))
    x = torch.tensor(data.x_train, dtype=torch.float32) / 255
    mean, std = x.mean(), x.std()
    x = (x - mean) / std
    xt = (torch.tensor(data.x_test, dtype=torch.float32) / 255 - mean) / std
    y, yt = torch.tensor(data.y_train), torch.tensor(data.y_test)
    net = TorchNet(load(ROOT / "architectures" / "fashion-tutorial.yaml"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    accs = []
    started = time.perf_counter()
    for epoch in range(5):
        net.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            idx = order[i : i + 100]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            accs.append(float((net(xt).argmax(1) == yt).float().mean()))
        print(f"epoch {epoch + 1}: test accuracy {100 * accs[-1]:.2f}%", flush=True)
    seconds = time.perf_counter() - started
    print(f"PyTorch {torch.__version__} (seed {args.seed}): test accuracy per epoch "
          f"{', '.join(f'{100 * a:.2f}%' for a in accs)}; {seconds:.0f} s, {seconds / 5:.1f} s per epoch")
    return np.array(accs)


if __name__ == "__main__":
    main()

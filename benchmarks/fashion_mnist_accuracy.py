"""Train the tutorial net (and the recipe) on the full Fashion-MNIST and report test accuracy.

    apt-get install dataset-fashion-mnist     # 60,000 + 10,000 images in /usr/share/datasets
    python benchmarks/fashion_mnist_accuracy.py [--recipe] [--json out.json]

The tutorial net, Adam lr 0.001, batch 100, 5 epochs, trained on all 60,000 training images (val 0);
the 10,000 test images are evaluated after every epoch (reported only, nothing is chosen by them).
--recipe trains architectures/fashion-recipe.yaml instead, with its own settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncli import train as trainer  # noqa: E402
from cnncli.data import SYSTEM  # noqa: E402
from cnncli.data.augment import Batcher  # noqa: E402
from cnncli.report.progress import TrainReport  # noqa: E402
from cnncli.spec import load  # noqa: E402


class TestedRun(trainer.Run):
    """A run that also measures test accuracy after every epoch (for the report only: nothing is
    selected on it)."""

    def _end_epoch(self, epoch):
        row = super()._end_epoch(epoch)
        ds = self.prepared.dataset
        batcher = Batcher(ds.x_test, self.prepared.mean, self.prepared.std, [], 0)
        correct = 0
        for i in range(0, len(ds.x_test), 500):
            index = np.arange(i, min(i + 500, len(ds.x_test)))
            correct += self.step.evaluate(batcher(index), ds.y_test[index])[1]
        row["test_acc"] = correct / len(ds.x_test)
        self.report.message(f"  test accuracy after epoch {epoch + 1}: {100 * row['test_acc']:.2f}%")
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = SYSTEM / "fashion-mnist"
    if not data.is_dir():
        sys.exit(f"{data} not found: apt-get install dataset-fashion-mnist")
    path = ROOT / "architectures" / ("fashion-recipe.yaml" if args.recipe else "fashion-tutorial.yaml")
    spec = load(path)
    options = trainer.Options(values={"seed": args.seed})
    if not args.recipe:
        options.overrides.update({"epochs": "5", "batch": "100", "val": "0", "optimizer": "adam lr=0.001"})
    settings = options.settings(spec.train)
    prepared = trainer.prepare(spec, settings, str(data))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = TestedRun(spec, prepared, Path(tmp) / "run", TrainReport())
        summary = run.fit()
        seconds = time.perf_counter() - started
    epochs = summary["epochs"]
    tests = [round(r["test_acc"], 4) for r in run.history]
    result = {"spec": path.name, "seed": args.seed, "epochs": epochs, "test_accuracy_per_epoch": tests,
              "final_test_accuracy": tests[-1], "best_test_accuracy": max(tests), "seconds": round(seconds, 1),
              "seconds_per_epoch": round(seconds / epochs, 1)}
    print(f"{path.name} (seed {args.seed}): test accuracy per epoch {', '.join(f'{100 * t:.2f}%' for t in tests)}; "
          f"{seconds:.0f} s in all, {seconds / epochs:.1f} s per epoch (training and evaluation)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Train the tutorial net (and the recipe) on the full Fashion-MNIST and report test accuracy.

    apt-get install dataset-fashion-mnist     # 60,000 + 10,000 images in /usr/share/datasets
    python benchmarks/fashion_mnist_accuracy.py [--recipe] [--seeds 0 1 2] [--set KEY=VALUE] [--json out.json]

The tutorial net with its spec's settings (architectures/fashion-tutorial.yaml), trained on all 60,000
training images (val 0); the recipe (--recipe, architectures/fashion-recipe.yaml) likewise. The 10,000
test images are evaluated after every epoch (reported only, nothing is chosen by them). Each seed is a
separate run; the summary gives the final test accuracy's min, median and max over the seeds.
--set changes a training setting as `cnn train --set` does (e.g. --set schedule=constant), to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncli import train as trainer  # noqa: E402
from cnncli.bench import cpu  # noqa: E402
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


def settings_for(spec, seed: int, changes: dict[str, str]):
    """The spec's training settings with val 0 (all 60,000 images train), the seed and --set changes."""
    options = trainer.Options(overrides={"val": "0", **changes}, values={"seed": seed})
    return options.settings(spec.train)


def train_once(spec, path: Path, data: Path, seed: int, changes: dict[str, str]) -> dict:
    settings = settings_for(spec, seed, changes)
    prepared = trainer.prepare(spec, settings, str(data))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = TestedRun(spec, prepared, Path(tmp) / "run", TrainReport())
        summary = run.fit()
        seconds = time.perf_counter() - started
    epochs = summary["epochs"]
    tests = [round(r["test_acc"], 4) for r in run.history]
    print(f"{path.name} (seed {seed}): test accuracy per epoch {', '.join(f'{100 * t:.2f}%' for t in tests)}; "
          f"{seconds:.0f} s in all, {seconds / epochs:.1f} s per epoch (training and evaluation)", flush=True)
    return {"seed": seed, "epochs": epochs, "test_accuracy_per_epoch": tests, "final_test_accuracy": tests[-1],
            "best_test_accuracy": max(tests), "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / epochs, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="store_true", help="train architectures/fashion-recipe.yaml")
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="change a training setting, as cnn train --set does")
    parser.add_argument("--json", type=Path, help="write the per-epoch results and the summary here")
    args = parser.parse_args()
    seeds = list(dict.fromkeys(args.seeds))
    changes = dict(change.split("=", 1) for change in args.changes)
    data = SYSTEM / "fashion-mnist"
    if not data.is_dir():
        sys.exit(f"{data} not found: apt-get install dataset-fashion-mnist")
    path = ROOT / "architectures" / ("fashion-recipe.yaml" if args.recipe else "fashion-tutorial.yaml")
    spec = load(path)
    runs = [train_once(spec, path, data, seed, changes) for seed in seeds]
    finals = [r["final_test_accuracy"] for r in runs]
    summary = {"min": min(finals), "median": statistics.median(finals), "max": max(finals)}
    shown = settings_for(spec, seeds[0], changes)
    train = {key: shown.describe(key) for key in ("epochs", "batch", "optimizer", "schedule", "augment", "loss")}
    if len(runs) > 1:
        print(f"final test accuracy over seeds {', '.join(map(str, seeds))}: min {100 * summary['min']:.2f}%, "
              f"median {100 * summary['median']:.2f}%, max {100 * summary['max']:.2f}%")
    if args.json:
        result = {"spec": path.name, "train": train, "changes": changes, "cpu": cpu(), "runs": runs,
                  "final_test_accuracy": summary}
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

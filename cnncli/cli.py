"""The `cnn` command. One small function per command; the work happens in the modules they call.

Nothing here imports numba at module level, so `cnn shapes` and `--help` answer instantly.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__, cliparams, outputs
from .errors import UserError, printable

cliparams.install()

app = typer.Typer(
    name="cnn",
    help="Check, train and inspect convolutional networks written as a few lines of YAML.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _fail(exc: UserError) -> None:
    from .report import console

    console(stderr=True).print(f"error: {exc}", markup=False)
    raise typer.Exit(exc.exit_code)


def _count(text: str | None, option: str) -> int | None:
    """'25557032', '25.6M', '4G', '1_000' -> an integer."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgGtT]?)\s*", text)
    if not m:
        raise UserError(f"{option} {text} is not a number", f"write e.g. {option} 5000000 or {option} 5M")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    value = float(m.group(1).replace("_", "").replace(",", "")) * scale
    if not math.isfinite(value):
        raise UserError(f"{option} {text} is too large", f"write e.g. {option} 5000000 or {option} 5M")
    return int(value)


SPEC_HELP = "A spec file (YAML), or a shipped network's name (see cnn zoo)."


def _input_option():
    return typer.Option(None, "--input", help="Replace the spec's input, C x H x W, e.g. 3x64x64 (smaller is faster).")


def _emit(result, json_out: bool, show) -> None:
    """A command's result on stdout: one JSON document for programs, else `show()`'s report."""
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        show()


def _version(value: bool) -> None:
    if value:
        from .kernel_cache import kernel_cache_dir

        print(f"cnncli {__version__}")
        print(f"kernel cache: {kernel_cache_dir()}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Check, train and inspect convolutional networks written as a few lines of YAML."""


@app.command(epilog="Example: cnn shapes fashion-tutorial --batch 64\n\n"
             "A big network on small images: cnn shapes resnet-50 --input 3x64x64\n\n"
             "CI gate: cnn shapes resnet-20-cifar --strict --max-params 5M --json > shapes.json")
def shapes(
    spec: Path = typer.Argument(..., help=SPEC_HELP, show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    strict: bool = typer.Option(False, "--strict", help="Make warnings (input dropped by flooring) errors."),
    batch: int = typer.Option(64, "--batch", min=1, help="Batch size for the training-memory estimate."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Exit 1 if the parameters exceed N (e.g. 5M)."),
    max_macs: Optional[str] = typer.Option(None, "--max-macs", help="Exit 1 if the MACs per sample exceed N (e.g. 2G)."),
    input_shape: Optional[str] = _input_option(),
) -> None:
    """Check a spec and show every layer's output shape, parameters, MACs and receptive field.

    Exit codes: 0 valid; 1 over a --max-params/--max-macs budget; 2 invalid spec.
    """
    from . import spec as specs
    from .report import console
    from .report import shapes as report

    try:
        limits = {"parameters": (_count(max_params, "--max-params"), "--max-params"),
                  "MACs per sample": (_count(max_macs, "--max-macs"), "--max-macs")}
        net = specs.load(spec, strict=strict, input_shape=input_shape)
    except UserError as exc:
        _fail(exc)
    err = console(stderr=True)
    for warning in net.warnings:
        err.print(f"warning: {warning}", markup=False)
    if json_out:
        sys.stdout.write(json.dumps(net.summary(batch), indent=2) + "\n")
    else:
        report.show(net, console(), batch)
    over = False
    for what, figure in (("parameters", net.total_params), ("MACs per sample", net.total_macs)):
        limit, option = limits[what]
        if limit is not None and figure > limit:
            err.print(f"error: {printable(spec)}: {what} {figure:,} exceed {option} {limit:,}", markup=False)
            over = True
    if over:
        raise typer.Exit(1)


@app.command(epilog="Example: cnn zoo --json")
def zoo(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the networks shipped with cnncli: give their name wherever a spec file is expected."""
    from . import zoo as shipped
    from .report import console
    from .report import zoo as report

    try:
        networks = shipped.catalogue()
    except UserError as exc:
        _fail(exc)
    _emit(networks, json_out, lambda: report.show(networks, console()))
    if not json_out:
        console(stderr=True).print("give a name wherever a spec file is expected, e.g. cnn shapes resnet-50",
                                   markup=False)


@app.command(epilog="Example: cnn layers conv")
def layers(
    kind: Optional[str] = typer.Argument(None, help="Show one layer kind in detail."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the layer kinds a spec can use, with their parameters and defaults."""
    from .report import console
    from .report import layers as report

    try:
        report.show(kind, console(), json_out)
    except UserError as exc:
        _fail(exc)


def _settings(pairs: list[str]) -> dict[str, str]:
    """--set key=value pairs as written; the settings table reads and checks the values."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix("train.")
        if not sep or not key:
            raise UserError(f"--set {pair}: expected key=value", "e.g. --set optimizer='sgd lr=0.1 momentum=0.9'")
        out[key] = value
    return out


@app.command(epilog="Example: cnn train fashion-tutorial --data fashion-mnist-sample --epochs 1 --out runs/tutorial\n\n"
             "Resume or extend to 2 epochs in all: cnn train --resume runs/tutorial --epochs 2\n\n"
             "Fine-tune: cnn train fashion-tutorial --data fashion-mnist-sample --weights runs/tutorial "
             "--freeze 'conv*' --epochs 1 --out runs/tuned")
def train(
    spec: Optional[Path] = typer.Argument(None, help=SPEC_HELP + " Not needed with --resume.", show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name or path (overrides train.data)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Passes over the training set (in total, with --resume)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=2, help="Samples per step."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed for weights, shuffling, dropout, augmentation."),
    sets: list[str] = typer.Option([], "--set", help="Override a train setting: --set key=value (repeatable)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Start from a run's (or a checkpoint's) weights, matched by layer name."),
    freeze: list[str] = typer.Option([], "--freeze", help="Keep these layers fixed: a name or glob pattern (repeatable), e.g. 'conv*'."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/NAME-TIMESTAMP)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue (or extend, with --epochs) the run in this directory."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads (default: CNNCLI_THREADS or all cores)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard logs to RUN/tensorboard/."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="With --tensorboard: the training loss every N steps."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress and no per-epoch lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
) -> None:
    """Train a network: checkpoints, metrics and the spec go to a run directory.

    Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and says how to resume.
    """
    from . import train as trainer
    from .report import console
    from .report.progress import TrainReport

    report = TrainReport(quiet, json_out)
    err = console(stderr=True)
    try:
        values = {key: value for key, value in (("epochs", epochs), ("batch", batch), ("lr", lr), ("seed", seed),
                                                ("freeze", freeze or None)) if value is not None}
        options = trainer.Options(data, out, _settings(sets), threads, log_every if tensorboard else None, values,
                                  weights)
        if resume is not None:
            summary = trainer.resume(resume, report, options, spec)
        else:
            if spec is None:
                raise UserError("cnn train needs a spec file (or --resume RUN_DIR)",
                                "e.g. cnn train fashion-tutorial")
            summary = trainer.start(spec, options, report)
    except UserError as exc:
        report.close()
        _fail(exc)
    except trainer.Interrupted as exc:
        report.close()
        run = exc.path.parent.parent
        err.print(printable(f"interrupted: saved {exc.path}; resume with: cnn train --resume {run}"), markup=False)
        raise typer.Exit(128 + exc.signum)
    except trainer.LossDiverged as exc:
        report.close()
        err.print(f"error: {printable(exc)}", markup=False)
        err.print("  hint: lower the learning rate (--lr), clip gradients (--set clip=1.0), or check the data",
                  markup=False)
        raise typer.Exit(3)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif not quiet:
        best = summary["best"]
        line = f"done: {summary['epochs']} epochs in {summary['seconds']:.1f} s; run directory {summary['run']}"
        if best:
            line += f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}"
        console().print(printable(line), markup=False)


@app.command(epilog="Example: cnn sweep examples/sweep-tutorial.yaml --trials 1 --out sweeps/tutorial\n\n"
             "After Ctrl-C (finished trials are kept): cnn sweep --resume sweeps/tutorial")
def sweep(
    sweep_file: Optional[Path] = typer.Argument(None, metavar="SWEEP.yaml", show_default=False,
                                                help="The sweep: spec, data, metric, sampler, pruner, space."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="How many trials (overrides trials:)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Local worker processes (default: cores/4, at least 1); each gets cores/W threads."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="Run the trials on the Dask scheduler at tcp://HOST:PORT (or tls://)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep directory (default sweeps/NAME-TIMESTAMP)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the sweep in this directory."),
    json_out: bool = typer.Option(False, "--json", help="Print every trial, the best and the importances as JSON."),
) -> None:
    """Search hyperparameters with Optuna; trials run in parallel on local processes or a Dask cluster.

    Each trial is an ordinary run directory, DIR/trials/NNNN/. Ctrl-C stops the sweep; --resume DIR
    continues it without redoing finished trials.
    """
    from . import sweep as sweeps
    from .report.sweep import SweepReport, show

    report = SweepReport()
    try:
        if resume is not None:
            result = sweeps.resume(resume, trials, workers, cluster, report)
        elif sweep_file is None:
            raise UserError("cnn sweep needs a SWEEP.yaml (or --resume DIR)", "e.g. cnn sweep examples/sweep-tutorial.yaml")
        else:
            result = sweeps.start(sweep_file, out, trials, workers, cluster, report)
    except UserError as exc:
        report.close()
        _fail(exc)
    except sweeps.Interrupted as exc:
        from .report import console

        console(stderr=True).print(f"interrupted: {exc.finished} trials finished; continue with: cnn sweep --resume "
                                   f"{exc.path}", markup=False)
        raise typer.Exit(128 + exc.signum)
    except KeyboardInterrupt:  # before the first trial was asked for: nothing to continue
        report.close()
        raise typer.Exit(130)
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        show(result)


@app.command(name="eval", epilog="Example: cnn eval runs/tutorial --png confusion.png")
def evaluate(
    run: Path = typer.Argument(..., help="A run directory (its best checkpoint) or a .npz checkpoint.", show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name or path (default: what it was trained on)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="k for the top-k accuracy."),
    png: Optional[str] = typer.Option(None, "--png", help="Also write the confusion matrix as a PNG image (a file, "
                                      "or confusion.png in a directory: an existing one, or DIR/ to create)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Loss, accuracy, top-k, per-class precision/recall/F1 and the confusion matrix on the test split."""
    from . import evaluate as ev
    from .report import console
    from .report import evaluate as report

    try:
        if png is not None:
            png = outputs.check_file(png, "--png", "confusion.png")
        trained = ev.load_trained(run)
        result = ev.evaluate(trained, data, top_k)
        if png is not None:
            if "confusion" not in result:
                raise UserError("--png draws a confusion matrix, which a regression model does not have", None)
            ev.confusion_png(result, trained.model.spec.name, png)
    except UserError as exc:
        _fail(exc)
    _emit(result, json_out, lambda: report.show_eval(result, console()))


@app.command(epilog="Example: cnn predict runs/tutorial shoe.png\n\n"
             "From a dataset: cnn predict runs/tutorial --data fashion-mnist-sample --index 0,1,2")
def predict(
    run: Path = typer.Argument(..., help="A run directory or a .npz checkpoint.", show_default=False),
    inputs: list[Path] = typer.Argument(None, help="Image files (PNG/JPEG).", show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Take inputs from this dataset's test split instead."),
    index: Optional[str] = typer.Option(None, "--index", help="Sample indices for --data, e.g. 0,5,9."),
    top: int = typer.Option(3, "--top", min=1, help="How many classes to show."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The most likely classes, with probabilities (or a regression model's values), for images or dataset samples."""
    from . import evaluate as ev
    from .report import console
    from .report import evaluate as report

    try:
        results = ev.predict(ev.load_trained(run), inputs or [], data, index, top)
    except UserError as exc:
        _fail(exc)
    _emit(results, json_out, lambda: report.show_predictions(results, console()))


@app.command(epilog="Example: cnn inspect runs/tutorial --layer relu2 --png pictures/\n\n"
             "A bare spec: cnn inspect lenet-5")
def inspect(
    target: Path = typer.Argument(..., help="A run directory, a .npz checkpoint, a spec (.yaml) or a shipped network's name.", show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Data for activation statistics and feature maps."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Show this layer's feature maps (default: the first conv)."),
    sample: int = typer.Option(0, "--sample", min=0, help="Which test sample's feature maps to show."),
    image: Optional[Path] = typer.Option(None, "--image", help="An image file for the feature maps instead."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write filters, feature maps and curves as PNGs here."),
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON (pictures with --png)."),
) -> None:
    """Training history, parameter and activation statistics, filters and feature maps."""
    from . import inspect as inspector
    from .report import console
    from .report import inspect as report

    try:
        if png is not None:
            outputs.check_directory(png, "--png")
        result = inspector.inspect(target, data, layer, sample, image)
        written = report.write_pngs(result, png) if png is not None else {}
    except UserError as exc:
        _fail(exc)
    if json_out:
        meta = result.meta or {}
        sys.stdout.write(json.dumps({
            "name": result.spec.name, "history": meta.get("history"), "best": meta.get("best"),
            "parameters": result.params, "activations": result.activations, "data": result.data_source,
            "pictures": written}, indent=2) + "\n")
        return
    report.show(result, console())
    for what, path in written.items():
        console(stderr=True).print(printable(f"wrote {what}: {path}"), markup=False)


@app.command(epilog="Example: cnn bench fashion-tutorial --batch 64")
def bench(
    spec: Path = typer.Argument(..., help=SPEC_HELP, show_default=False),
    batch: int = typer.Option(64, "--batch", min=1, help="Samples per step."),
    steps: int = typer.Option(20, "--steps", min=1, help="Timed steps (after warm-up)."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed steps first."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads (default: CNNCLI_THREADS or all cores)."),
    input_shape: Optional[str] = _input_option(),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time inference and training steps on random data, per layer, and the first step's JIT cost."""
    from . import spec as specs
    from .report import bench as report
    from .report import console

    try:
        net = specs.load(spec, input_shape=input_shape)
        _threads(threads)
        from . import bench as benchmark

        result = benchmark.run(net, batch, steps, warmup)
    except UserError as exc:
        _fail(exc)
    _emit(result, json_out, lambda: report.show(result, console()))


@app.command(epilog="Example: cnn gradcheck fashion-tutorial --input 1x8x8")
def gradcheck(
    spec: Path = typer.Argument(..., help=SPEC_HELP, show_default=False),
    batch: int = typer.Option(2, "--batch", min=2, help="Samples in the test batch."),
    entries: int = typer.Option(6, "--entries", min=1, help="Entries compared per tensor."),
    tolerance: float = typer.Option(1e-5, "--tolerance", help="Largest acceptable relative error."),
    eval_mode: bool = typer.Option(False, "--eval", help="Check evaluation mode (BN running statistics)."),
    input_shape: Optional[str] = _input_option(),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for weights and data (0 or more)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compare every layer's analytic gradients with finite differences, in float64.

    Exit code 1 when a layer's worst relative error exceeds --tolerance.
    """
    from . import spec as specs
    from .report import console
    from .report import gradcheck as report

    try:
        net = specs.load(spec, input_shape=input_shape)
        from . import gradcheck as checker

        results = checker.check(net, batch, entries, seed, train=not eval_mode)
    except UserError as exc:
        _fail(exc)
    failed = [r for r in results if r.worst > tolerance]
    if json_out:
        sys.stdout.write(json.dumps({"name": net.name, "tolerance": tolerance, "passed": not failed, "layers": [
            {"name": r.name, "type": r.kind, "worst_relative_error": r.worst, "checked": r.checked, "kinks": r.kinks,
             "where": r.worst_where}
            for r in results]}, indent=2) + "\n")
    else:
        report.show(results, tolerance, console())
    if failed:
        raise typer.Exit(1)


@app.command(epilog="Example: cnn export lenet-5 lenet-5.onnx\n\n"
             "Weights alone: cnn export runs/tutorial weights.safetensors")
def export(
    source: Path = typer.Argument(..., help="A run directory (its best checkpoint), a .npz checkpoint, or a spec (.yaml).",
                                  show_default=False),
    out: Path = typer.Argument(..., help="OUT.onnx (the network) or OUT.safetensors (the weights alone).",
                               show_default=False),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of a spec's initial weights (as Model.from_spec)."),
    input_shape: Optional[str] = typer.Option(None, "--input", help="Replace the input size, e.g. 3x64x64."),
) -> None:
    """Export a network to ONNX (input 'input', outputs 'logits' and 'probabilities'), or its weights to safetensors.

    The ONNX graph takes pixels scaled to [0, 1], as cnn predict reads images, and normalises them
    itself with the statistics stored in the checkpoint.
    """
    from . import exchange
    from .report import console

    try:
        done = exchange.export(source, out, seed, input_shape)
    except UserError as exc:
        _fail(exc)
    console(stderr=True).print(printable(done), markup=False)


@app.command(name="import", epilog="Example: cnn import lenet-5.onnx lenet-5.yaml")
def import_(
    model: Path = typer.Argument(..., help="An ONNX file of a CNN.", show_default=False),
    out: Path = typer.Argument(..., help="The spec to write (.yaml); the checkpoint goes beside it (.npz).",
                               show_default=False),
) -> None:
    """Turn an ONNX CNN into a spec and a checkpoint beside it, for cnn shapes, eval, predict and inspect."""
    from .exchange.onnx_import import import_onnx
    from .report import console

    try:
        done = import_onnx(model, out)
    except UserError as exc:
        _fail(exc)
    console(stderr=True).print(printable(done), markup=False)


def _threads(threads: int | None) -> None:
    if threads is not None:
        from .ops.threads import set_threads

        set_threads(threads)


def run() -> None:
    """The `cnn` command. A usage mistake (unknown command or option, a value of the wrong type, a
    missing argument) ends like every other user mistake: one `error:` line on stderr naming the
    command, exit code 2. Bare `cnn` (or a command without its arguments) still shows the help."""
    try:
        from typer._click.exceptions import UsageError  # recent typer runs on its own copy of click
    except ImportError:
        from click.exceptions import UsageError
    try:
        code = app(standalone_mode=False, prog_name="cnn")
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: `cnn` alone
            exc.show()
            sys.exit(exc.exit_code)
        where = exc.ctx.command_path if exc.ctx is not None else "cnn"
        message = printable(exc.format_message().rstrip(".")).replace("\n", " ")
        _echo_error(f"error: {where}: {message}; see '{where} --help'")
        sys.exit(2)
    except typer.Abort:
        _echo_error("Aborted!")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _echo_error(line: str) -> None:
    from .report import console

    console(stderr=True).print(line, markup=False, highlight=False, soft_wrap=True)

"""The command line: a thin typer layer over :mod:`hepdl.api`.

Each command loads its input, calls one library function and prints. A :class:`HepdlError`
becomes one line on stderr and exit code 2 (``--debug`` shows the traceback); a run stopped
cleanly by SIGTERM or its time limit exits with code 3 and can be resumed. Heavy libraries
(torch, matplotlib) are imported inside the commands so ``hepdl --help`` answers at once.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="hepdl", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Deep-learning studies on particle-physics detector data.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and make data files.")
app.add_typer(data_app, name="data")

_state = {"debug": False, "quiet": False}


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if _state["quiet"] or not console.is_terminal:
        # a log file, a pipe, or --quiet: nothing redrawn (no progress bars, no cursor codes),
        # wide enough for the tables
        console = Console(stderr=stderr, width=160, force_terminal=False)
    return console


def _fail(message: str, code: int) -> None:
    from rich.markup import escape  # a message may hold [brackets]: hepdl[onnx], lists

    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                                soft_wrap=True)
    raise typer.Exit(code)


def command(fn):
    """Turn hepdl's errors into one line and an exit code (the shared CLI error handling)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from hepdl.errors import HepdlError

        try:
            return fn(*args, **kwargs)
        except HepdlError as exc:
            if _state["debug"]:
                raise
            from hepdl.training.loop import INTERRUPTED_EXIT_CODE, Interrupted

            if isinstance(exc, Interrupted):
                from rich.markup import escape

                _console(stderr=True).print(f"[yellow]stopped:[/] {escape(str(exc))}",
                                            highlight=False, soft_wrap=True)
                raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
            _fail(str(exc), 2)

    return wrapper


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
         quiet: Annotated[bool, typer.Option(
             "--quiet", "-q", help="No progress bars (for logs and notebook shell cells).")]
         = False):
    """hepdl: prepare data, train and evaluate networks, scan hyperparameters."""
    _state["debug"] = debug
    _state["quiet"] = quiet


@app.command()
@command
def train(
    config: Annotated[Path, typer.Argument(help="YAML config, or a run directory with --resume.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: train.lr=3e-4")] = [],  # noqa: B006
    resume: Annotated[bool, typer.Option(help="Continue the run CONFIG from last.pt.")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/NAME).")] = None,
):
    """Train a network, evaluate it on the test split and write the run directory."""
    from hepdl import api
    from hepdl.config import load_config

    if resume:
        if set_:
            _fail("--set cannot change a run being resumed; its config.yaml is fixed", 2)
        api.resume(config, console=_console())
    else:
        api.train(load_config(config, set_), run_dir=run_dir, console=_console())


@app.command()
@command
def evaluate(
    run: Annotated[Path, typer.Argument(help="A trained run directory.")],
    data: Annotated[Path | None, typer.Option(help="YAML of other data (fixed weights).")] = None,
    input: Annotated[Path | None, typer.Option(
        "--input", help="Another file laid out like the run's data (e.g. another seed).")] = None,
    image_norm: Annotated[str | None, typer.Option(
        help="Evaluate with the per-image norm changed: l1, l2 or max.")] = None,
):
    """Evaluate a run on its test split, or with frozen weights on other data or another image
    norm (the robustness checks of seeds/003: the shift of each AUC is printed)."""
    from hepdl import api
    from hepdl.cli_output import print_metrics
    from hepdl.errors import ConfigError

    if image_norm is not None and image_norm not in ("l1", "l2", "max"):
        raise ConfigError("--image-norm", f"expected l1, l2 or max, got {image_norm!r}")
    console = _console()
    metrics = api.evaluate(run, data, input=input, image_norm=image_norm)
    print_metrics(console, metrics)
    for name, shift in metrics.get("shift", {}).get("auc", {}).items():
        console.print(f"AUC {name}: {metrics['auc'][name]:.4f}, shift from the run's own "
                      f"{shift:+.4f}")


@app.command("lr-find")
@command
def lr_find(
    config: Annotated[Path, typer.Argument(help="A YAML config.")],
    start: Annotated[float, typer.Option(help="First learning rate.")] = 1e-6,
    end: Annotated[float, typer.Option(help="Last learning rate.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Training batches in the sweep.")] = 300,
    out: Annotated[Path | None, typer.Option(help="Default: RUNS_DIR/NAME-lr-find.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of the config.")] = [],  # noqa: B006
):
    """The learning-rate range test: loss vs an exponentially growing rate, the rate at which
    training explodes and a tenth of it (seeds/004), which train.lr: auto uses."""
    from hepdl.config import load_config
    from hepdl.training.lr_find import range_test, write_range_test

    loaded = load_config(config, set_)
    result = range_test(loaded, start=start, end=end, steps=steps)
    out = out or Path(loaded.runs_dir) / f"{loaded.name}-lr-find"
    write_range_test(result, out)
    console = _console()
    console.print(result.summary())
    console.print(f"plot: {out / 'lr_find.png'}")


@app.command()
@command
def report(run: Annotated[Path, typer.Argument(help="A run directory.")]):
    """Rebuild a run's HTML report."""
    from hepdl import api

    _console().print(f"wrote {api.report(run)}")


@app.command()
@command
def predict(
    run: Annotated[Path, typer.Argument(help="A trained run directory.")],
    input: Annotated[Path, typer.Option("--input", help="Data file laid out like the run's.")],
    output: Annotated[Path, typer.Option("--output", help=".h5 .parquet .csv .npz or .root")],
):
    """Write one score per class (with labels and observers) for each event of a file."""
    from hepdl import api

    _console().print(f"wrote {api.predict(run, input, output)}")


@app.command()
@command
def export(
    run: Annotated[Path, typer.Argument(help="A completed run directory.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="The ONNX file to write.")],
    check_events: Annotated[int, typer.Option(
        min=1, help="Test events scored by both PyTorch and onnxruntime.")] = 2048,
):
    """Export the network with its fitted preprocessing to ONNX (inputs named as the model's,
    dynamic batch axis, class names in the metadata), checked with onnxruntime first."""
    from hepdl import api

    done = api.export_onnx(run, onnx, check_events=check_events)
    inputs = ", ".join(f"{name} {tuple(shape)}" for name, shape in done.inputs.items())
    output = (f"output scores {done.class_names}" if done.class_names
              else "output scores (the regression value)")
    _console().print(f"wrote {done.path}: inputs {inputs} (batch axis first), {output}; "
                     "onnxruntime matches PyTorch within "
                     f"{done.max_difference:.1e} on {done.events_checked} test events",
                     soft_wrap=True)


class _ScanGroup(typer.core.TyperGroup):
    """``hepdl scan CONFIG`` runs a scan; ``hepdl scan worker|table ...`` are subcommands."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


scan_app = typer.Typer(cls=_ScanGroup, no_args_is_help=True,
                       help="Hyperparameter scans on Optuna: hepdl scan CONFIG [--workers N].")
app.add_typer(scan_app, name="scan")


@scan_app.command("run")
@command
def scan_run(
    config: Annotated[Path, typer.Argument(help="A YAML config with a scan: section.")],
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field.")] = [],  # noqa: B006
):
    """Run a scan (the same as hepdl scan CONFIG)."""
    from hepdl import api
    from hepdl.cli_output import print_study
    from hepdl.config import load_config

    console = _console()
    scan = api.scan(load_config(config, set_), workers=workers, storage=storage, console=console)
    print_study(console, scan.rows(), [])


@scan_app.command("worker")
@command
def scan_worker(
    config: Annotated[Path, typer.Argument(help="The scan's YAML config.")],
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL (shared).")] = None,
    seed: Annotated[int | None, typer.Option(help="This worker's sampler seed.")] = None,
):
    """One worker of a shared scan (one batch-system job): take trials until the budget."""
    from hepdl.config import load_config
    from hepdl.scans import run_worker

    loaded = load_config(config)
    if loaded.scan is None:
        _fail(f"{config}: no scan section", 2)
    run_worker(loaded, storage=storage, seed=seed, console=_console())


@scan_app.command("table")
@command
def scan_table(
    config: Annotated[Path, typer.Argument(help="The scan's YAML config.")],
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    sort: Annotated[str | None, typer.Option(help="Column to sort by (default objective).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write .csv, .md or .html.")] = None,
    by_trial: Annotated[bool, typer.Option(
        help="Every trial, also when the space repeats settings over seeds or folds.")] = False,
):
    """The table of seeds/000 for a scan: trial, model, per-class AUC, values, status; by
    setting (mean ± sd, paired difference to the best) when the space varies seed,
    data.split.fold or data.split.seed."""
    from hepdl.cli_output import print_study
    from hepdl.config import load_config
    from hepdl.scans.result import Scan

    scan = Scan.load(load_config(config), storage)
    by_setting = bool(scan.replicate_fields()) and not by_trial
    # a setting over folds or seeds: its mean, spread and paired margin to the best
    rows = scan.setting_rows(sort) if by_setting else scan.rows(sort)
    print_study(_console(), rows, scan.winners() if by_setting else [], by_setting=by_setting)
    if out is not None:
        from hepdl.scans.table import write_table

        _console().print(f"wrote {write_table(rows, out, by_setting=by_setting)}")


@scan_app.command("report")
@command
def scan_report(
    config: Annotated[Path, typer.Argument(help="The scan's YAML config.")],
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
):
    """Plots of a scan: objective vs each parameter, parallel coordinates, importance, and the
    best trials' ROC curves; with the table as table.md, table.csv and table.html."""
    import matplotlib

    from hepdl.config import load_config
    from hepdl.scans.result import Scan

    matplotlib.use("Agg")  # Optuna's plots go through pyplot: files only, never a window
    written = Scan.load(load_config(config), storage).report()
    _console().print("wrote " + ", ".join(str(p) for p in written), soft_wrap=True)


study_app = typer.Typer(no_args_is_help=True, help="Train a base config over a grid.")
app.add_typer(study_app, name="study")


@study_app.command("normalization")
@command
def study_normalization(
    config: Annotated[Path, typer.Argument(help="A YAML config with a study: grid section.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of the base.")] = [],  # noqa: B006
    folds: Annotated[int | None, typer.Option(
        min=2, help="Repeat each setting over the K folds of a k-fold split: every event is "
                    "tested once, and settings are compared fold by fold, with errors. A study "
                    "run before without it needs another name (--set name=...).")] = None,
    seeds: Annotated[int | None, typer.Option(
        min=2, help="Repeat each setting over N seeds from the config's (initialization, "
                    "order, and the split unless data.split.seed is set).")] = None,
):
    """The seeds/000 study: the base MLP over ECAL norm x HCAL norm x width x depth, as a table."""
    from hepdl.cli_output import print_study
    from hepdl.config import load_config
    from hepdl.study import (
        replicate_fields,
        run_study,
        setting_table,
        table_rows,
        winners,
        with_replicates,
    )

    loaded = load_config(config, set_)
    if folds or seeds:
        loaded = with_replicates(loaded, folds, seeds)
    console = _console()
    results = run_study(loaded, console=console)
    if replicate_fields(loaded):
        print_study(console, setting_table(loaded, results), winners(loaded, results),
                    by_setting=True)
    else:
        print_study(console, table_rows(loaded, results), winners(loaded, results))


@study_app.command("features")
@command
def study_features(
    config: Annotated[Path, typer.Argument(help="A YAML config with study: feature_sets.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of the config.")] = [],  # noqa: B006
):
    """The network and a BDT on each feature set (seeds/004's low-level vs high-level)."""
    from hepdl.config import load_config
    from hepdl.feature_study import run_feature_study, table_markdown

    loaded = load_config(config, set_)
    console = _console()
    result = run_feature_study(loaded, console=console)
    console.print(table_markdown(result["rows"]))


@study_app.command("init")
@command
def study_init(
    config: Annotated[Path, typer.Argument(help="A YAML config.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of the config.")] = [],  # noqa: B006
):
    """The network under glorot/he x normal/uniform and the naive N(0,1) (seeds/002): output
    variance through depth at initialization, and how each trains."""
    from hepdl.config import load_config
    from hepdl.init_study import run_init_study, table_markdown

    console = _console()
    result = run_init_study(load_config(config, set_), console=console)
    console.print(table_markdown(result["rows"]))


@study_app.command("ising")
@command
def study_ising(
    config: Annotated[Path, typer.Argument(help="A YAML config (examples/ising.yaml).")],
    sizes: Annotated[str, typer.Option(help="Lattice sizes, comma-separated.")] = "10,20,40,60",
    data_dir: Annotated[Path, typer.Option(help="Where ising_L<size>.h5 are (made if not).")] = (
        Path("data/ising")),
    out: Annotated[Path | None, typer.Option(
        help="Study directory: runs, table, plots (runs/ising-phases, runs/ising-confusion).")
    ] = None,
    per_temperature: Annotated[int, typer.Option(min=1, help="Configurations per T.")] = 1000,
    workers: Annotated[int, typer.Option(min=1, help="Processes making the data.")] = 1,
    training: Annotated[str, typer.Option(
        help="extremes: T <= 1.75 and >= 2.75 (Mehta); all: every T, labels T < T_c (C&M); "
             "confusion: every T, labels T < b for each trial b (van Nieuwenburg et al.).")
    ] = "extremes",
    boundary: Annotated[float | None, typer.Option(
        help="With --training all: labels T < this instead of Onsager's T_c.")] = None,
    boundaries: Annotated[str | None, typer.Option(
        help="With --training confusion: LOW:HIGH, the range of the trial boundaries b "
             "[default: 1.8:2.7, the grid's 0.05 steps].")] = None,
    folds: Annotated[int, typer.Option(
        min=1, help="With --training confusion: networks per trial, each testing one fold of "
                    "the events (k-fold), so every configuration is tested once.")] = 1,
    temperatures: Annotated[str | None, typer.Option(
        help="The grid of the data files the study makes (those it lacks), as for hepdl data "
             "make ising; files already there must be on it [default: Mehta's grid and 0.05 "
             "steps from 1.8 to 2.7].")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of the config.")] = [],  # noqa: B006
):
    """Critical-set accuracy and T_c where P(ordered) = 1/2, per lattice size, extrapolated to
    the infinite lattice by finite-size scaling (Carrasquilla & Melko; seeds/004); or, with
    --training confusion, T_c(L) where the accuracy of labels T < b peaks (van Nieuwenburg et
    al.), extrapolated alike."""
    from hepdl.config import load_config
    from hepdl.errors import ConfigError
    from hepdl.phases import run_phase_study

    try:
        lattice = [int(x) for x in sizes.split(",")]
    except ValueError:
        raise ConfigError("--sizes", f"expected sizes like 10,20,40, got {sizes!r}") from None
    if min(lattice) < 4 or len(set(lattice)) < len(lattice):
        raise ConfigError("--sizes", f"expected different lattice sizes of 4 or more, got {sizes}")
    if training not in ("extremes", "all", "confusion"):
        raise ConfigError("--training", f"expected extremes, all or confusion, got {training!r}")
    if boundaries is not None and training != "confusion":
        raise ConfigError("--boundaries", "is for --training confusion; --training all takes one "
                                          "--boundary")
    if folds != 1 and training != "confusion":
        raise ConfigError("--folds", "is for --training confusion")
    grid = None if temperatures is None else _temperatures(temperatures)
    console = _console()
    if out is None:  # each method its own: one's runs never sit in the other's directories
        out = Path("runs/ising-confusion" if training == "confusion" else "runs/ising-phases")
    if training == "confusion":
        from hepdl.confusion import run_confusion_study

        try:
            low, high = (float(x) for x in (boundaries or "1.8:2.7").split(":"))
        except ValueError:
            raise ConfigError("--boundaries", f"expected LOW:HIGH like 2.0:2.55, got "
                                              f"{boundaries!r}") from None
        if boundary is not None:
            raise ConfigError("--boundary", "is for --training all; confusion tries each "
                                            "boundary in --boundaries")
        run_confusion_study(load_config(config, set_), sizes=lattice, data_dir=data_dir,
                            out=out, low=low, high=high, per_temperature=per_temperature,
                            workers=workers, folds=folds, temperatures=grid, console=console)
    else:
        run_phase_study(load_config(config, set_), sizes=lattice, data_dir=data_dir, out=out,
                        per_temperature=per_temperature, workers=workers, training=training,
                        boundary=boundary, temperatures=grid, console=console)
    console.print((out / "table.md").read_text())
    console.print(f"study directory: {out}")


make_app = typer.Typer(no_args_is_help=True, help="Generate embedded datasets offline.")
data_app.add_typer(make_app, name="make")
GeneratorSeed = Annotated[int, typer.Option(help="Random seed; same file for any --workers.")]
GeneratorWorkers = Annotated[int, typer.Option(min=1, help="Worker processes.")]


@make_app.command("calo")
@command
def make_calo(
    events: Annotated[int, typer.Option(min=1, help="Number of events (classes balanced).")],
    out: Annotated[Path, typer.Option(help="Output HDF5 file (LCD V2 layout).")],
    seed: GeneratorSeed = 1,
    workers: GeneratorWorkers = 1,
    energy_min: Annotated[float, typer.Option(help="Lowest particle energy, GeV.")] = 10.0,
    energy_max: Annotated[float, typer.Option(help="Highest particle energy, GeV.")] = 510.0,
):
    """LCD-style calorimeter events: e-, gamma, pi0, pi+- in 25x25x25 ECAL and 5x5x60 HCAL."""
    from rich.progress import Progress

    from hepdl.errors import ConfigError
    from hepdl.generate.calo import Simulation, make_calo

    if not 0 < energy_min < energy_max:
        raise ConfigError("--energy-min/--energy-max",
                          f"need 0 < min < max, got {energy_min} and {energy_max}")
    console = _console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("calo events", total=events)
        path, occupancy = make_calo(
            out, events, seed=seed, workers=workers,
            sim=Simulation(energy_min=energy_min, energy_max=energy_max),
            progress=lambda n: progress.advance(task, n))
    console.print(f"wrote {events} events to {path}; mean occupancy ECAL "
                  f"{occupancy['ECAL']:.2%}, HCAL {occupancy['HCAL']:.2%}", soft_wrap=True)


@make_app.command("electrons")
@command
def make_electrons(
    events: Annotated[int, typer.Option(min=1, help="Number of candidates (about half real).")],
    out: Annotated[Path, typer.Option(help="Output HDF5 file.")],
    seed: GeneratorSeed = 1,
    workers: GeneratorWorkers = 1,
):
    """Electron candidates from Pythia 8: real (Z -> ee) and fake (QCD) 47x47 tower images."""
    from rich.progress import Progress
    from rich.table import Table

    from hepdl.generate.electrons import make_electrons

    console = _console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("electron candidates", total=events)
        path, efficiencies = make_electrons(out, events, seed=seed, workers=workers,
                                            progress=lambda n: progress.advance(task, n))
    table = Table(title="preselection")
    table.add_column("step")
    table.add_column("value", justify="right")
    for step, value in efficiencies.items():
        table.add_row(step, f"{value:.3f}")
    console.print(table)
    console.print(f"wrote {events} candidates to {path}", soft_wrap=True)


@make_app.command("susy")
@command
def make_susy(
    events: Annotated[int, typer.Option(min=1, help="Selected events (about half signal).")],
    out: Annotated[Path, typer.Option(help="Output HDF5 file.")],
    seed: GeneratorSeed = 1,
    workers: GeneratorWorkers = 1,
    chargino_mass: Annotated[float, typer.Option(help="Chargino mass, GeV.")] = 200.0,
    neutralino_mass: Annotated[float, typer.Option(help="LSP mass, GeV.")] = 100.0,
):
    """Chargino pairs (signal) and WW (background) to two leptons, from Pythia 8 (seeds/004)."""
    from rich.progress import Progress

    from hepdl.generate.susy import Spectrum, SusySample, make_susy

    sample = SusySample(spectrum=Spectrum(chargino_mass=chargino_mass,
                                          neutralino_mass=neutralino_mass))
    console = _console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("SUSY and WW events", total=events)
        path, efficiencies = make_susy(out, events, seed=seed, workers=workers, sample=sample,
                                       progress=lambda n: progress.advance(task, n))
    for step, value in efficiencies.items():
        console.print(f"{step}: {value:.3f}")
    console.print(f"wrote {events} events to {path}", soft_wrap=True)


def _temperatures(text: str) -> list[float]:
    """``0.25:4.0:0.25`` (start:stop:step, stop included), ``1.0,2.0,2.25``, or both joined by
    commas (``1.8:2.05:0.05,2.1:2.46:0.02``: a fine grid inside a coarse one); sorted, each
    temperature once."""
    from hepdl.errors import ConfigError

    grid = set()
    try:
        for piece in text.split(","):
            numbers = [float(x) for x in piece.split(":")]
            if not all(math.isfinite(x) for x in numbers) or len(numbers) not in (1, 3):
                raise ValueError
            if len(numbers) == 3:
                start, stop, step = numbers
                if step <= 0 or stop < start:
                    raise ValueError
                steps = (stop - start) / step
                if not steps < 10_000:  # a mistyped step, not a grid (inf and nan too)
                    raise ConfigError("--temperatures", f"{piece} makes {steps + 1:.0f} "
                                                        "temperatures; at most 10000")
                steps = int(round(steps))
                grid.update(round(start + i * step, 6) for i in range(steps + 1))
            else:
                grid.add(numbers[0])
    except ValueError:
        raise ConfigError("--temperatures", f"expected start:stop:step or numbers, joined by "
                                            f"commas, got {text!r}") from None
    if min(grid) <= 0:
        raise ConfigError("--temperatures", f"expected temperatures above 0, got {min(grid):g}")
    grid = sorted(grid)
    rounded = [round(t, 4) for t in grid]
    same = [(a, b) for a, b, ra, rb in zip(grid, grid[1:], rounded, rounded[1:], strict=False)
            if ra == rb]
    if same:  # the studies tell temperatures apart to 4 decimals
        raise ConfigError("--temperatures", f"{same[0][0]:g} and {same[0][1]:g} are the same "
                                            "to 4 decimals")
    return grid


@make_app.command("ising")
@command
def make_ising(
    out: Annotated[Path, typer.Option(help="Output HDF5 file.")],
    size: Annotated[int, typer.Option(min=2, help="Lattice size L (L x L, periodic).")] = 40,
    temperatures: Annotated[str, typer.Option(
        help="start:stop:step, numbers, or both joined by commas "
             "(1.8:2.05:0.05,2.1:2.46:0.02); default Mehta et al.'s grid.")] = "0.25:4.0:0.25",
    per_temperature: Annotated[int, typer.Option(min=1, help="Configurations per T.")] = 10_000,
    chains: Annotated[int, typer.Option(min=1, help="Independent chains per T.")] = 100,
    equilibration: Annotated[int, typer.Option(min=0, help="Sweeps before sampling.")] = 200,
    decorrelation: Annotated[int, typer.Option(min=1, help="Sweeps between samples.")] = 20,
    seed: GeneratorSeed = 1,
    workers: GeneratorWorkers = 1,
):
    """2D Ising configurations (J = 1) by Swendsen-Wang cluster Monte Carlo (seeds/004)."""
    from rich.progress import Progress

    from hepdl.generate.ising import make_ising as make

    grid = _temperatures(temperatures)
    console = _console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ising configurations", total=per_temperature * len(grid))
        path = make(out, size=size, temperatures=grid, per_temperature=per_temperature,
                    seed=seed, workers=workers, chains=chains, equilibration=equilibration,
                    decorrelation=decorrelation, progress=lambda n: progress.advance(task, n))
    console.print(f"wrote {per_temperature * len(grid)} configurations of {size}x{size} at "
                  f"{len(grid)} temperatures to {path}", soft_wrap=True)


def _names(text: str | None) -> list[str] | None:
    """Comma-separated names as a list (None stays None)."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


@data_app.command("inspect")
@command
def data_inspect(
    path: Annotated[Path, typer.Argument(help="HDF5, NumPy, Parquet, CSV or ROOT.")],
    columns: Annotated[str | None, typer.Option(help="Comma-separated names of the columns of a "
                                                     "CSV file without a header row.")] = None,
):
    """Print the keys, branches or columns of a data file: shape, dtype, range, NaN count."""
    from hepdl.cli_output import print_summaries
    from hepdl.data.inspect import inspect_file

    print_summaries(_console(), path, inspect_file(path, _names(columns)))


@data_app.command("convert")
@command
def data_convert(
    path: Annotated[Path, typer.Argument(help="A CSV file (.csv, .csv.gz ...) or an .npz "
                                              "archive.")],
    out: Annotated[Path, typer.Argument(help="The Parquet (for a CSV) or HDF5 (for .npz) file "
                                             "to write.")],
    columns: Annotated[str | None, typer.Option(help="Comma-separated names of the columns of a "
                                                     "CSV file without a header row.")] = None,
    row_group_rows: Annotated[int, typer.Option(help="Events per Parquet row group.")] = 100_000,
):
    """Rewrite a CSV table as Parquet, or an .npz archive as HDF5, so it streams with
    data.in_memory: false; a CSV larger than memory is converted block by block."""
    from hepdl.data.convert import convert

    _console().print(convert(path, out, columns=_names(columns),
                             row_group_rows=row_group_rows).summary(), soft_wrap=True)


@data_app.command("hits")
@command
def data_hits(
    path: Annotated[Path, typer.Argument(help="HDF5 file with dense calorimeter images.")],
    out: Annotated[Path, typer.Option(help="Output HDF5 file, the images stored as hits.")],
    keys: Annotated[str, typer.Option(help="Comma-separated datasets to store as hits.")]
    = "ECAL,HCAL",
):
    """Store zero-suppressed images as their non-zero cells (hits); the rest is copied.

    An MLP trained on the result reads only the hits in its first layer (docs/performance.md).
    """
    from hepdl.data.hits import convert_to_hits

    occupancy = convert_to_hits(path, out, _names(keys))
    detail = ", ".join(f"{k} {v:.2%}" for k, v in occupancy.items())
    _console().print(f"wrote {out}; occupancy {detail}; {out.stat().st_size / 2**20:.1f} MB "
                     f"(dense file {path.stat().st_size / 2**20:.1f} MB)", soft_wrap=True)

"""The public functions of hepdl: what the command line calls, and what a notebook calls.

Example
-------
>>> import hepdl
>>> run = hepdl.train(hepdl.load_config("examples/digits.yaml"))
>>> run.metrics["accuracy"]
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

import yaml

from hepdl.config import Config, DataConfig, YamlLoader
from hepdl.errors import ConfigError, DataError, HepdlError
from hepdl.runs import Run, now, update_meta
from hepdl.scans.result import Scan

Console = Any  #: a ``rich.console.Console``; "auto" makes one, None prints nothing


def _console(console: Console | Literal["auto"] | None):
    """``"auto"``: a rich console on stdout, which a notebook shows inline; None: silent."""
    if console != "auto":
        return console
    from rich.console import Console as RichConsole

    return RichConsole()


def _complete(path: Path, console=None) -> Run:
    """Evaluate a trained run on its test split, write the report, mark it completed."""
    from hepdl.evaluation import evaluate_run, write_report
    from hepdl.training.tracking import tracker

    run = Run.load(path)
    try:
        metrics = evaluate_run(run)
    except BaseException as exc:  # trained, but not evaluated: the run says so
        update_meta(path, status="failed", reason=f"evaluation: {exc}", finished=now())
        raise
    update_meta(path, status="completed", finished=now())
    write_report(run)
    # the same MLflow run as training's; a tracker that fails now costs its view only
    tracking = tracker(run.config, path, strict=False)
    if tracking is not None:
        tracking.finish(metrics)
    if console is not None:
        from hepdl.cli_output import print_metrics

        print_metrics(console, metrics)
        console.print(f"run directory: {path}  (report: {path / 'report.html'})")
    return run


def _rank() -> int:
    """This process's rank under torchrun (0 alone): only rank 0 evaluates and reports."""
    import os

    return int(os.environ.get("RANK", "0"))


def _report_failure(run: Path | None) -> None:
    """A failed or interrupted run still gets a report saying so (best effort)."""
    from hepdl.evaluation import write_report

    if run is not None and (run / "config.yaml").is_file():
        # best effort: the original error matters more than the report's
        with contextlib.suppress(Exception):
            write_report(run)


def train(config: Config, *, run_dir: str | Path | None = None,
          console: Console | Literal["auto"] | None = "auto", on_epoch=None) -> Run:
    """Train, evaluate on the test split and report; returns the finished [`Run`][hepdl.runs.Run].

    Parameters
    ----------
    config : Config
        From [`load_config`][hepdl.config.load_config].
    run_dir : path, optional
        The run directory; default ``RUNS_DIR/NAME`` (``NAME_2`` ... when taken).
    console : rich Console, "auto" or None
        Where the progress bar and one line per epoch go: "auto" prints to the terminal or the
        notebook, None prints nothing.
    on_epoch : callable, optional
        Called with each epoch's row of ``history.csv`` (a dict).

    Raises
    ------
    hepdl.training.Interrupted
        Stopped cleanly by a signal or time limit; resume with [`resume`][hepdl.api.resume].
    HepdlError
        Bad data or config, or training failed (the run is marked failed).
    """
    from hepdl.training import fit

    console = _console(console)
    try:
        path = fit(config, run_dir=run_dir, console=console, on_epoch=on_epoch)
    except HepdlError as exc:
        if _rank() == 0:
            _report_failure(getattr(exc, "run", None))
        raise
    return _complete(path, console) if _rank() == 0 else Run.load(path)


def resume(run: str | Path, *, console: Console | Literal["auto"] | None = "auto") -> Run:
    """Continue a killed or interrupted run from ``last.pt``, then evaluate and report."""
    from hepdl.training import fit

    console = _console(console)
    try:
        path = fit(resume=run, console=console)
    except HepdlError:
        if _rank() == 0:
            _report_failure(Path(run))
        raise
    return _complete(path, console) if _rank() == 0 else Run.load(path)


def load_data_config(path: str | Path) -> DataConfig:
    """A data section from a YAML file: a whole config (its ``data:``) or the section alone."""
    from pydantic import ValidationError

    from hepdl.config import _error_line

    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "no such data config file")
    raw = yaml.load(path.read_text(), Loader=YamlLoader) or {}
    if isinstance(raw, dict) and "data" in raw:
        raw = raw["data"]
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as exc:
        raise _error_line(exc, str(path)) from None


def evaluate(run: str | Path, data: str | Path | DataConfig | None = None, *,
             input: str | Path | None = None, image_norm: str | None = None) -> dict[str, Any]:
    """Evaluate a trained run on its test split, or (frozen weights and preprocessing) on the
    data that ``data`` describes, or on every event of the file ``input`` (laid out like the
    run's data); ``image_norm`` swaps the norm of the run's per-image normalization. Anything
    but the run's own test split goes to ``RUN/evaluations/<name>/`` with its own plots and
    report, and its metrics hold the ``shift`` of each AUC from the run's own."""
    from hepdl.evaluation import evaluate_run, write_report

    run = Run.load(run)
    if input is not None:
        if data is not None:
            raise ConfigError("--input", "give --data or --input, not both")
        source = run.config.data.source
        if not hasattr(source, "path"):
            raise ConfigError("--input", f"a {source.kind!r} source has no file to replace")
        data = run.config.data.model_copy(update={"source": source.for_file(input)})
        name = Path(input).stem
    elif data is not None:
        name = Path(data).stem if not isinstance(data, DataConfig) else "other"
        data = data if isinstance(data, DataConfig) else load_data_config(data)
    if data is None and image_norm is None:
        metrics = evaluate_run(run)
        write_report(run)
        return metrics
    if data is None:
        name = "test"
    if image_norm is not None:
        name += f"_image_norm_{image_norm}"
    out = run.path / "evaluations" / name
    metrics = evaluate_run(run, data, out, image_norm=image_norm)
    write_report(run, out)
    return metrics


def report(run: str | Path) -> Path:
    """Rebuild a run's ``report.html`` from its files."""
    from hepdl.evaluation import write_report

    return write_report(run)


def predict(run: str | Path, input: str | Path, output: str | Path) -> Path:
    """Score the events of ``input`` with a trained run and write them to ``output``.

    ``input`` is a data file laid out like the run's training data (same keys), or a YAML data
    section. Labels are written when the file has them.
    """
    from hepdl.config import DigitsSource, LcdSource
    from hepdl.data import load_dataset
    from hepdl.errors import KeyNotFoundError
    from hepdl.evaluation import predict as run_network
    from hepdl.export import write_predictions

    run = Run.load(run)
    input = Path(input)
    task = run.config.task
    if input.suffix.lower() in {".yaml", ".yml"}:
        source = load_data_config(input).source.model_dump(mode="json")
    else:
        source = run.config.data.source
        if isinstance(source, DigitsSource):  # a file of the digits layout: pixels (+ label)
            kind = "hdf5" if input.suffix.lower() in {".h5", ".hdf5"} else "npz"
            source = {"kind": kind, "path": str(input), "inputs": {"pixels": "pixels"},
                      "label": "label", "class_names": [str(i) for i in range(10)]}
        elif isinstance(source, LcdSource):  # the same layout, this file
            source = source.model_dump(mode="json") | {"files": str(input)}
        else:
            source = source.for_file(input).model_dump(mode="json")
    if task == "classification" and source.get("class_names", ()) is None:
        source["class_names"] = run.spec["class_names"]  # class names read in the run's order
    # the input alone: never the training's split files, shuffling or memory setting
    data = DataConfig.model_validate({"source": source, "nonfinite": run.config.data.nonfinite})
    streamed = _predict_streamed(run, data, output)
    if streamed is not None:
        return streamed
    try:
        dataset = load_dataset(data, task, require_labels=False)
    except KeyNotFoundError as exc:
        if exc.key != getattr(data.source, "label", None):
            raise
        data.source.label = None  # an unlabelled file: scores only
        dataset = load_dataset(data, task, require_labels=False)
    if task == "classification" and dataset.labels is not None:
        dataset.labels = _as_run_classes(dataset.labels, dataset.class_names, run)
        dataset.class_names = run.spec["class_names"]
    return write_predictions(run_network(run.network(), dataset), output)


def _as_run_classes(labels, names: list[str], run: Run):
    """Labels that index a file's class names (``names``) as indices of the run's classes,
    matched by name (a data section may list them in another order).

    Raises
    ------
    DataError
        A class the run does not know.
    """
    import numpy as np

    classes = list(run.spec["class_names"])
    if list(names) == classes:
        return labels
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise DataError("data.source.class_names", f"class {unknown[0]!r} is not one of the "
                                                   f"run's classes {classes}")
    return np.array([classes.index(name) for name in names], dtype=np.int64)[labels]


def _predict_streamed(run: Run, data: DataConfig, output: str | Path) -> Path | None:
    """Predictions for HDF5, LCD, Parquet and ROOT files, read block by block (files of any
    size); None where the file must be read whole: NaN events to drop, a selection, hits, scalar
    inputs, or NumPy and CSV files."""
    from hepdl.data.streaming import event_files, streamable
    from hepdl.evaluation.predictions import predict_files
    from hepdl.export import write_predictions

    if not streamable(data):
        return None
    events = event_files(data, run.config.task, require_labels=False)
    if run.config.task == "classification":
        if events.labels is not None:
            events.labels = _as_run_classes(events.labels, events.class_names, run)
        events.class_names = run.spec["class_names"]
    return write_predictions(predict_files(run.network(), events), output)


def scan(config: Config, *, workers: int = 1, storage: str | None = None,
         console: Console | Literal["auto"] | None = "auto") -> Scan:
    """Run the scan of ``config.scan`` with ``workers`` processes on this machine, to its trial
    budget (a scan run again goes on where it stopped); returns the
    [`Scan`][hepdl.scans.result.Scan], whose ``.table()`` is the table of seeds/000.

    ``storage`` is an Optuna storage URL (default: the config's, or a journal file in
    ``RUNS_DIR/NAME``); workers on other machines join with ``hepdl scan worker``.
    """
    from hepdl.scans import run_scan

    study = run_scan(config, workers=workers, storage=storage, console=_console(console))
    return Scan(config, study)


def export_onnx(run: str | Path, out: str | Path, *, check_events: int = 2048):
    """The network of a completed run, preprocessing included, as an ONNX file checked by
    onnxruntime on the run's test events (`hepdl.export.onnx.export_onnx`)."""
    from hepdl.export.onnx import export_onnx as export

    return export(run, out, check_events=check_events)

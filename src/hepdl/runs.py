"""The run directory: where a training run keeps everything it made.

```
runs/<name>/
  config.yaml   resolved config          meta.json     versions, git commit, host, status
  model.pt      weights + preprocessing  last.pt       full state for --resume
  history.csv   one row per epoch        metrics.json  test metrics
  plots/*.png   figures                  report.html   all of it on one page
```

Every file is written to a temporary name and renamed, so a killed run never leaves a file that
looks complete but is not.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hepdl import __version__
from hepdl.config import Config, dump_config, load_config
from hepdl.errors import DataError, HepdlError

CONFIG, META, MODEL, LAST = "config.yaml", "meta.json", "model.pt", "last.pt"
HISTORY, METRICS, PLOTS, REPORT = "history.csv", "metrics.json", "plots", "report.html"
HEALTH = "health.csv"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _file_mode() -> int:
    """Permissions of a new file under the current umask (mkstemp would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temporary_path(path: Path) -> Path:
    """A temporary name beside ``path`` for writers that need a file name (h5py, torch.save)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    import torch

    tmp = temporary_path(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the git checkout the study runs in, with ``+dirty`` for local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def new_run_dir(config: Config, explicit: str | Path | None = None) -> Path:
    """A fresh run directory: ``runs_dir/name``, or ``name_2``, ``name_3`` ... if taken."""
    if explicit is not None:
        path = Path(explicit)
        if path.exists() and any(path.iterdir()):
            raise HepdlError(f"{path}: run directory exists and is not empty; use --resume or "
                             "another --run-dir")
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = Path(config.runs_dir) / config.name
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{config.name}_{n}")


def read_meta(run: Path) -> dict[str, Any]:
    path = Path(run) / META
    return json.loads(path.read_text()) if path.is_file() else {}


def update_meta(run: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into meta.json (atomically) and return the result."""
    meta = read_meta(run)
    meta.update(fields)
    atomic_write(Path(run) / META, json.dumps(meta, indent=2, default=str) + "\n")
    return meta


def start_meta(run: Path, config: Config) -> dict[str, Any]:
    """meta.json at the start of a run: versions, commit, host, seed, status ``running``."""
    import numpy
    import torch

    return update_meta(
        run, name=config.name, hepdl_version=__version__, torch_version=torch.__version__,
        numpy_version=numpy.__version__, python_version=platform.python_version(),
        git_commit=git_commit(), host=socket.gethostname(), seed=config.seed,
        threads=torch.get_num_threads(), started=now(), finished=None, status="running",
        reason=None)


def write_config(run: Path, config: Config) -> None:
    atomic_write(Path(run) / CONFIG, dump_config(config))


class Run:
    """A run directory opened for reading: config, meta, metrics, history and the model.

    Example
    -------
    >>> run = Run.load("runs/digits")
    >>> run.metrics["accuracy"]
    """

    def __init__(self, path: Path, config: Config):
        self.path = Path(path)
        self.config = config
        self._checkpoints: dict[str, dict[str, Any]] = {}
        self._predictions = None

    @classmethod
    def load(cls, path: str | Path | Run) -> Run:
        """The run in directory ``path`` (a ``Run`` is returned as it is)."""
        if isinstance(path, Run):
            return path
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise DataError(str(path), f"not a run directory (no {CONFIG})")
        return cls(path, load_config(path / CONFIG))

    @property
    def meta(self) -> dict[str, Any]:
        return read_meta(self.path)

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.path / METRICS
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def history(self):
        """One row per epoch, as a pandas DataFrame."""
        import pandas as pd

        path = self.path / HISTORY
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    def checkpoint(self, name: str = MODEL) -> dict[str, Any]:
        """A checkpoint of the run (``model.pt`` or ``last.pt``), read once."""
        if name not in self._checkpoints:
            self._checkpoints[name] = load_checkpoint(self.path / name)
        return self._checkpoints[name]

    @property
    def spec(self) -> dict[str, Any]:
        """The architecture: input shapes, outputs, class names, preprocessing, model."""
        return self.checkpoint()["spec"]

    def network(self, checkpoint: str = MODEL):
        """The trained network (preprocessing inside), in eval mode."""
        from hepdl.models import Network

        state = self.checkpoint(checkpoint)
        network = Network(state["spec"])
        network.load_state_dict(state["model"])
        return network.eval()

    # ------------------------------------------------------------------ notebook use

    def evaluate(self, data: str | Path | Any = None, *, input: str | Path | None = None,
                 image_norm: str | None = None) -> dict[str, Any]:
        """Metrics of the run on its test split, or with frozen weights on other data (a YAML
        data section or a `DataConfig`) or on another file laid out like
        the run's data; see [`hepdl.evaluate`][hepdl.api.evaluate]."""
        from hepdl.api import evaluate

        self._predictions = None
        return evaluate(self.path, data, input=input, image_norm=image_norm)

    def predict(self, arrays: Any, batch_size: int = 4096):
        """Scores of events given as arrays: a dict input name -> (N, ...) array, or one array
        for a network with one input. Returns (N, n_classes) class probabilities, or (N,)
        regression values, as a NumPy array. Preprocessing is inside the network."""
        import numpy as np

        from hepdl.data.dataset import Dataset
        from hepdl.evaluation.predictions import predict

        names = list(self.spec["input_shapes"])
        if not isinstance(arrays, dict):
            if len(names) != 1:
                raise DataError("arrays", f"the network takes {len(names)} inputs {names}; "
                                          "give a dict of arrays by input name")
            arrays = {names[0]: arrays}
        missing = [name for name in names if name not in arrays]
        if missing:
            raise DataError("arrays", f"no array for the input(s) {missing}; the network takes "
                                      f"{names}")
        inputs = {name: np.asarray(arrays[name], dtype=np.float32) for name in names}
        for name, shape in self.spec["input_shapes"].items():
            if inputs[name].shape[1:] != tuple(shape):
                raise DataError(f"arrays[{name!r}]", f"events of shape {inputs[name].shape[1:]}, "
                                                     f"expected {tuple(shape)}")
            if not np.isfinite(inputs[name]).all():
                raise DataError(f"arrays[{name!r}]", "holds NaN or infinite values")
        counts = {name: len(value) for name, value in inputs.items()}
        if len(set(counts.values())) > 1:
            raise DataError("arrays", f"the inputs hold different numbers of events: {counts}")
        return predict(self.network(), Dataset(inputs, None), batch_size).scores

    def predictions(self):
        """The network's scores on the run's test split, with labels and observers
        ([`Predictions`][hepdl.evaluation.predictions.Predictions]); computed once."""
        if self._predictions is None:
            from hepdl.data import load_split
            from hepdl.evaluation.predictions import predict

            test = load_split(self.config.data, self.config.task, self.config.seed, "test")
            self._predictions = predict(self.network(), test)
        return self._predictions

    def _classifier(self, plot: str) -> None:
        if self.config.task != "classification":
            raise HepdlError(f"{plot}: {self.config.name} is a regression; its figures are "
                             "plot_history() and the run's plots/regression.png")

    def plot_roc(self):
        """ROC curves of the test split (background rejection vs signal efficiency), a
        matplotlib Figure."""
        from hepdl.evaluation.plots import plot_roc

        self._classifier("plot_roc")
        _show_figures_inline()
        return plot_roc(self.predictions(), self.metrics.get("auc"))

    def plot_outputs(self):
        """The network output of each class per true class, on the test split."""
        from hepdl.evaluation.plots import plot_outputs

        self._classifier("plot_outputs")
        _show_figures_inline()
        return plot_outputs(self.predictions())

    def plot_history(self):
        """Loss, accuracy and learning rate per epoch."""
        from hepdl.evaluation.plots import plot_history

        _show_figures_inline()
        return plot_history(self.history.to_dict("records"))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.meta.get('status')!r})"


def _show_figures_inline() -> None:
    """In IPython, show a returned matplotlib Figure as an image; hepdl never touches pyplot,
    and IPython only registers the Figure formatter when pyplot's inline backend starts."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):  # a terminal IPython has no inline images
        return
    import matplotlib
    from matplotlib.figure import Figure

    if "widget" in matplotlib.get_backend() or "ipympl" in matplotlib.get_backend():
        return  # the user's interactive backend shows figures its own way
    if Figure not in shell.display_formatter.formatters["image/png"].type_printers:
        shell.run_line_magic("matplotlib", "inline")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no pickle of arbitrary objects)."""
    import torch

    if not Path(path).is_file():
        raise DataError(str(path), "no such checkpoint; did the run finish an epoch?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError for a damaged file
        raise DataError(str(path), f"checkpoint cannot be read ({type(exc).__name__}); "
                                   "damaged or not a hepdl checkpoint") from None

"""A scan as a notebook sees it: the Optuna study, its seeds/000 table and its best run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hepdl.config import Config
from hepdl.errors import HepdlError


class Scan:
    """The trials of a scan, read from its Optuna storage.

    Example
    -------
    >>> scan = hepdl.scan(hepdl.load_config("examples/calo_norm_scan.yaml"))
    >>> scan.table()            # one row per trial, best first (a pandas DataFrame)
    >>> scan.best_run().plot_roc()
    """

    def __init__(self, config: Config, study: Any):
        self.config = config
        self.study = study  #: the ``optuna.Study``, for Optuna's own analysis and plots

    @classmethod
    def load(cls, config: Config, storage: str | None = None) -> Scan:
        """The scan of ``config`` as its storage holds it now (also while workers run)."""
        from hepdl.scans.runner import open_study

        if config.scan is None:
            raise HepdlError(f"config {config.name!r} has no scan section (scan: {{space: ...}})")
        return cls(config, open_study(config, storage))

    def rows(self, sort: str | None = None) -> list[dict[str, Any]]:
        """The table's rows as dicts: trial, model, per-class AUC, objective, the drawn values,
        epochs, seconds, status and finding; best first, failures last."""
        from hepdl.scans.table import scan_rows

        return scan_rows(self.study, self.config.scan.columns, sort)

    def table(self, sort: str | None = None):
        """The table of seeds/000 as a pandas DataFrame, best first (or sorted by ``sort``)."""
        import pandas as pd

        return pd.DataFrame(self.rows(sort))

    def best_run(self):
        """The [`Run`][hepdl.runs.Run] of the best completed trial."""
        from hepdl.runs import Run

        try:
            best = self.study.best_trial
        except ValueError:
            raise HepdlError(f"scan {self.config.name!r} has no completed trial yet") from None
        return Run.load(best.user_attrs["run"])

    def report(self, out: str | Path | None = None) -> list[Path]:
        """Write the table (.md, .csv, .html) and the scan's plots to ``out`` (default
        ``RUNS_DIR/NAME/report``); returns the files written."""
        from hepdl.scans.report import write_scan_report
        from hepdl.scans.table import write_table

        out = Path(out) if out is not None else Path(self.config.runs_dir) / self.config.name / \
            "report"
        rows = self.rows()
        written = [write_table(rows, out / f"table{suffix}") for suffix in (".md", ".csv", ".html")]
        return written + write_scan_report(self.config, self.study, out)

    def __len__(self) -> int:
        return len(self.rows())

    def __repr__(self) -> str:
        return f"Scan({self.config.name!r}, {len(self)} trials)"

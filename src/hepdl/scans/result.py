"""A scan as a notebook sees it: the Optuna study, its seeds/000 table and its best run."""

from __future__ import annotations

import math
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

    def replicate_fields(self) -> list[str]:
        """The space's replicate fields (seed, data.split.fold, data.split.seed): a setting
        drawn with several of their values is read as one, :meth:`setting_rows`."""
        from hepdl.replicates import replicate_fields

        return replicate_fields(self.config.scan.space)

    def setting_rows(self, sort: str | None = None) -> list[dict[str, Any]]:
        """One row per setting (the drawn values but the replicates), best first (or sorted by
        ``sort``): each AUC and the objective as mean and standard deviation over its trials,
        and the objective's difference to the best setting paired over the replicates
        (``vs_best``, with its error: :mod:`hepdl.replicates`). Only a grid sampler without
        pruning meets every setting with every replicate (:meth:`caveats`)."""
        from hepdl.replicates import setting_rows
        from hepdl.scans.table import sort_rows

        settings, replicates = self._settings()
        maximize = self.config.scan.direction == "maximize"
        rows = setting_rows(settings, "objective", replicates, maximize)
        return sort_rows(rows, sort, maximize) if sort is not None else rows

    def winners(self) -> list[str]:
        """For each dimension of the space but the replicates: the value with the best mean
        objective and its paired difference over the runner-up's; :meth:`caveats` first."""
        from hepdl.replicates import winner_lines

        settings, replicates = self._settings()
        columns = self.config.scan.columns
        dimensions = {columns.get(p, p): len(spec.choices) if spec.choices else 2
                      for p, spec in self.config.scan.space.items()
                      if columns.get(p, p) not in replicates.columns}
        return self.caveats() + winner_lines(settings, dimensions, self.config.scan.objective,
                                             replicates, self.config.scan.direction == "maximize")

    def caveats(self) -> list[str]:
        """Why settings of this scan may not meet every replicate: a sampler that draws points
        (not the grid), a pruner that stops the trials of hard folds early."""
        from hepdl.scans.space import grid

        scan = self.config.scan
        if not self.replicate_fields():
            return []
        notes = []
        if scan.sampler != "grid" or scan.pruner != "none":
            notes.append(f"note: sampler {scan.sampler} and pruner {scan.pruner} need not train "
                         "every setting on every replicate (and pruning drops hard ones): only "
                         "pairs both settings trained are compared; sampler: grid, pruner: none "
                         "compare them all")
        if scan.sampler == "grid":
            points = math.prod(len(values) for values in grid(scan.space).values())
            if scan.trials is not None and scan.trials < points:
                notes.append(f"note: the budget of {scan.trials} trials is below the grid's "
                             f"{points} points: some settings miss replicates (scan.trials)")
        return notes

    def _settings(self):
        from hepdl.replicates import design, group_settings

        columns = self.config.scan.columns
        replicates = design(self.config.data.split, self.replicate_fields(), columns)
        rows = self.rows()
        params = {t.number: t.params for t in self.study.get_trials(deepcopy=False)}
        raw = [{columns.get(p, p): value for p, value in params[row["trial"]].items()}
               for row in rows]  # as drawn: two chains that read alike stay two settings
        settings = group_settings(rows, [columns.get(p, p) for p in self.config.scan.space],
                                  replicates, "objective", raw)
        return settings, replicates

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
        """Write the table (.md, .csv, .html), with replicates also the table by setting, and
        the scan's plots to ``out`` (default ``RUNS_DIR/NAME/report``); returns the files
        written."""
        from hepdl.scans.report import write_scan_report
        from hepdl.scans.table import write_table

        out = Path(out) if out is not None else Path(self.config.runs_dir) / self.config.name / \
            "report"
        rows = self.rows()
        written = [write_table(rows, out / f"table{suffix}") for suffix in (".md", ".csv", ".html")]
        if self.replicate_fields():
            by_setting = self.setting_rows()
            written += [write_table(by_setting, out / f"table_by_setting{suffix}", by_setting=True)
                        for suffix in (".md", ".csv", ".html")]
        return written + write_scan_report(self.config, self.study, out)

    def __len__(self) -> int:
        return len(self.rows())

    def __repr__(self) -> str:
        return f"Scan({self.config.name!r}, {len(self)} trials)"

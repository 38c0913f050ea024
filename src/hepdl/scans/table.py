"""The table of a scan, as seeds/000 writes it: one row per trial, best first."""

from __future__ import annotations

import contextlib
import json
from typing import Any


def scan_rows(study, columns: dict[str, str] | None = None,
              sort: str | None = None) -> list[dict[str, Any]]:
    """Rows: trial, model name (the drawn values), per-class AUC, values, epochs, seconds,
    status and the failure reason; sorted by the objective (or ``sort``), failures last."""
    from optuna.trial import TrialState

    from hepdl.study import describe_norm

    columns = columns or {}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("grid_exhausted") or trial.state == TrialState.WAITING:
            continue  # a worker's late ask after the grid ran out; a point not started yet
        labels = {}
        for path, value in trial.params.items():
            if isinstance(value, str):  # a categorical choice, offered to Optuna as JSON text
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            labels[columns.get(path, path)] = (describe_norm(value) if path.startswith(
                "preprocess.") else value)
        row: dict[str, Any] = {"trial": trial.number,
                               "model": " ".join(f"{k}={v}" for k, v in labels.items())}
        for name, auc in (trial.user_attrs.get("auc") or {}).items():
            row[f"{name}_AUC"] = auc
        row["objective"] = trial.value if trial.state == TrialState.COMPLETE else None
        row.update(labels)
        seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                   if trial.datetime_complete and trial.datetime_start else None)
        row.update(epochs=trial.user_attrs.get("epochs"), seconds=seconds,
                   status=trial.state.name.lower(), finding=trial.user_attrs.get("failure", "")
                   or "; ".join(trial.user_attrs.get("findings", [])))
        rows.append(row)
    return sort_rows(rows, sort or "objective", study.direction.name == "MAXIMIZE")


def sort_rows(rows: list[dict[str, Any]], key: str, maximize: bool) -> list[dict[str, Any]]:
    """Rows sorted by column ``key``: AUCs, and a maximized objective and the differences to
    the best setting (``vs_best``) with it, descending; anything else ascending; rows without a
    value last. By ``vs_best`` the best setting, the first of the rows by setting
    (:func:`hepdl.replicates.setting_rows`), sorts as 0: ahead of every other setting but one
    that failed a replicate and beat it on the others."""
    descending = key.endswith("_AUC") or (key in ("objective", "vs_best") and maximize)
    best = rows[0] if key == "vs_best" and rows and rows[0].get("vs_best") is None else None

    def order(row):
        value = 0.0 if row is best else row.get(key)
        if value is None or value == "":
            return (1, 0)
        if isinstance(value, int | float):
            return (0, -value if descending else value)
        return (0, str(value))

    return sorted(rows, key=order)


def write_table(rows: list[dict[str, Any]], out, by_setting: bool = False) -> Any:
    """Write the rows as CSV, Markdown or HTML, by the suffix of ``out``; rows by setting
    (:func:`hepdl.replicates.setting_rows`) show a mean and its spread in one cell in Markdown
    and HTML."""
    from pathlib import Path

    import pandas as pd

    from hepdl.errors import DataError
    from hepdl.replicates import with_spread
    from hepdl.runs import atomic_write
    from hepdl.study import _markdown

    out = Path(out)
    frame = pd.DataFrame(rows)
    shown = pd.DataFrame(with_spread(rows)) if by_setting else frame  # every cell as text
    if out.suffix == ".csv":
        atomic_write(out, frame.to_csv(index=False))
    elif out.suffix == ".md":
        atomic_write(out, _markdown(shown))
    elif out.suffix in {".html", ".htm"}:
        atomic_write(out, shown.to_html(index=False, float_format="%.4f", na_rep=""))
    else:
        raise DataError(str(out), "expected a .csv, .md or .html table")
    return out

"""What the command line prints: rich tables of metrics and file summaries, in one place."""

from __future__ import annotations

from typing import Any


def print_metrics(console, metrics: dict[str, Any]) -> None:
    from rich.table import Table

    if metrics.get("task") == "regression":
        table = Table(title=f"test metrics ({metrics['n_events']} events)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in ("mse", "mae", "bias", "relative_bias", "relative_resolution"):
            if key in metrics:
                table.add_row(key, f"{metrics[key]:.5g}")
        console.print(table)
    else:
        table = Table(title=f"test: accuracy {metrics['accuracy']:.4f}, "
                            f"mean AUC {metrics['mean_auc'] or float('nan'):.4f} "
                            f"({metrics['n_events']} events)")
        table.add_column("signal class")
        table.add_column("AUC", justify="right")
        for eff in next(iter(metrics["background_rejection"].values()), {}):
            table.add_column(f"rejection @ eff {eff}", justify="right")
        for name, auc in metrics["auc"].items():
            rejection = metrics["background_rejection"].get(name, {})
            table.add_row(name, "n/a" if auc is None else f"{auc:.4f}",
                          *("> N_bkg" if r is None else f"{r:.1f}" for r in rejection.values()))
        console.print(table)
    for warning in metrics.get("warnings", []):
        console.print(f"[red]warning:[/] {warning}")


def print_summaries(console, path, summaries) -> None:
    from rich.table import Table

    table = Table(title=str(path))
    for column in ("name", "shape", "dtype", "min", "max", "NaN/Inf", "note"):
        table.add_column(column, justify="left" if column in {"name", "dtype", "note"} else "right")
    for s in summaries:
        table.add_row(s.name, " x ".join(map(str, s.shape)) or "scalar", s.dtype,
                      "" if s.minimum is None else f"{s.minimum:.6g}",
                      "" if s.maximum is None else f"{s.maximum:.6g}",
                      "" if s.nonfinite is None else str(s.nonfinite), s.note)
    console.print(table)


def _cell(value: Any, key: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if key.endswith("_AUC") or key == "objective" else f"{value:.1f}"
    return str(value)


def print_study(console, rows: list[dict[str, Any]], summary: list[str],
                by_setting: bool = False) -> None:
    """The seeds/000 table, best first, and which setting won; rows by setting
    (:func:`hepdl.replicates.setting_rows`) show each mean ± its standard deviation and the
    paired difference to the best."""
    from rich.markup import escape
    from rich.table import Table

    from hepdl.replicates import cell

    if not rows:
        return
    # seeds/000's columns: the model (its grid values), the per-class AUCs, epochs; the grid
    # values have their own columns in table.csv and table.md; the AUC columns of any row (a
    # failed trial has none)
    aucs = list(dict.fromkeys(k for row in rows for k in row if k.endswith("_AUC")))
    # by setting: the metric that ranks them (the column with a spread that is no AUC) and
    # each one's paired difference to the best
    ranked_by = [k for k in rows[0] if f"{k}_sd" in rows[0] and k not in aucs]
    shown = list(dict.fromkeys(aucs + ranked_by + ["vs_best", "objective", "epochs", "seconds",
                                                   "status"]))
    shown = [k for k in shown if any(k in row for row in rows)]  # a study has no objective
    first = "runs" if by_setting else "trial"
    table = Table(title="study by setting: mean ± sd over the replicates (best first)"
                  if by_setting else "study (best first)")
    table.add_column(first, justify="right")
    table.add_column("model")
    for key in shown:
        table.add_column(key, justify="right")
    for row in rows:
        cells = [cell(row, k) if by_setting else _cell(row.get(k), k) for k in shown]
        table.add_row(str(row[first]), escape(row["model"]), *cells)
    console.print(table)
    for row in rows:
        if row["finding"]:
            where = row["model"] if by_setting else f"trial {row['trial']} {row['status']}"
            console.print(f"[red]{escape(where)}:[/] {escape(row['finding'])}", soft_wrap=True)
    for line in summary:
        console.print(line, soft_wrap=True)

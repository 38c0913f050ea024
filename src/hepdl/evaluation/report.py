"""The HTML report of a run: status, findings, metrics, every plot, history and config."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hepdl.config import dump_config
from hepdl.runs import METRICS, REPORT, Run, atomic_write


def findings(meta: dict, metrics: dict) -> list[str]:
    """Plain-language findings for the top of the report: failures first."""
    out = []
    if meta.get("status") == "failed":
        out.append(f"Training failed: {meta.get('reason')}")
    elif meta.get("status") == "interrupted":
        out.append(f"Training was interrupted ({meta.get('reason')}); resume it to finish.")
    out.extend(metrics.get("warnings", []))
    out.extend(metrics.get("findings", []))
    return out


def write_report(run: Run | str | Path, out: Path | None = None) -> Path:
    """Render ``report.html`` from what the run directory (or an evaluation folder) holds."""
    import jinja2

    run = run if isinstance(run, Run) else Run.load(run)
    out = Path(out) if out is not None else run.path
    metrics_path = out / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    meta = run.meta
    if not metrics and out == run.path:  # a failed run: what its training files show
        from hepdl.evaluation.evaluate import run_findings

        metrics = {"findings": run_findings(run)}
    history = run.history.to_dict("records") if out == run.path else []
    history = [{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
               for row in history]
    env = jinja2.Environment(loader=jinja2.PackageLoader("hepdl.evaluation", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        title=f"{run.config.name}" + ("" if out == run.path else f" on {out.name}"),
        meta=meta, metrics=metrics, findings=findings(meta, metrics),
        efficiencies=[f"{e:g}" for e in run.config.evaluate.efficiencies],
        plots=metrics.get("plots", []), history=history, config_yaml=dump_config(run.config))
    atomic_write(out / REPORT, html)
    return out / REPORT

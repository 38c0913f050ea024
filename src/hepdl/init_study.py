"""How the initialization decides whether a deep network trains (seeds/002).

seeds/002's argument: a layer's pre-activations have variance Var(z) = n_in Var(w) Var(x), so
with weights drawn N(0, 1) the signal grows by about n_in per layer and explodes with depth;
Glorot's Var(w) = 2 / (n_in + n_out) keeps it constant through linear and tanh layers, He's
Var(w) = 2 / n_in through ReLU layers (which zero half of it). ``hepdl study init CONFIG``
builds the config's network under each scheme, measures the variance of every hidden layer's
output on training events at initialization, then trains it, and writes ``init.json``,
``table.md`` and ``init_study.png`` (variance against depth; training loss against epoch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hepdl.config import Config
from hepdl.runs import atomic_write
from hepdl.training.health import RECTIFIERS, SATURATING

SCHEMES = ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "normal")


@torch.no_grad()
def variance_through_depth(config: Config, train=None, n_events: int = 1024) -> list[float]:
    """The output variance of each hidden activation layer, at initialization, on training
    events (preprocessing fitted on the training split, as in training); ``train``: the
    training split if already read."""
    from hepdl.data.dataset import load_split
    from hepdl.models import Network, network_spec

    torch.manual_seed(config.seed)
    if train is None:
        train = load_split(config.data, config.task, config.seed, "train")
    network = Network(network_spec(config, train.input_shapes, train.class_names))  # model.init
    inputs = {k: torch.from_numpy(v) for k, v in train.inputs.items()}
    network.fit_preprocessing(inputs)
    variances: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: variances.append(float(out.var())))
             for m in network.body.modules() if isinstance(m, RECTIFIERS + SATURATING)]
    network.eval()
    network({k: v[:n_events] for k, v in inputs.items()})
    for hook in hooks:
        hook.remove()
    return variances


def run_init_study(config: Config, *, out: Path | None = None, console=None) -> dict[str, Any]:
    """Each initialization scheme: variance through depth at initialization, then training."""
    from hepdl.data.dataset import load_split
    from hepdl.study import Trial, train_or_resume

    out = Path(out) if out is not None else Path(config.runs_dir) / f"{config.name}-init"
    train = load_split(config.data, config.task, config.seed, "train")  # the same for every init
    rows = []
    for number, scheme in enumerate(SCHEMES):
        raw = config.model_dump(mode="json")
        raw["model"]["init"] = scheme
        raw["name"] = f"{config.name}-init-{scheme}"
        raw.pop("study", None)
        trial_config = Config.model_validate(raw)
        variances = variance_through_depth(trial_config, train)
        if console is not None:
            console.rule(f"init {scheme}")
        trial = Trial(number, {"init": scheme}, out / scheme)
        train_or_resume(trial, trial_config, console)
        row: dict[str, Any] = {"init": scheme, "variance_by_layer": variances,
                               "status": trial.status, "finding": trial.finding}
        if trial.status == "completed":
            from hepdl.runs import Run

            run = Run.load(trial.run)
            metrics, history = run.metrics, run.history
            row.update(train_loss=history["train_loss"].tolist(),
                       accuracy=metrics.get("accuracy"), mean_auc=metrics.get("mean_auc"),
                       findings=metrics.get("findings", []) + metrics.get("warnings", []))
        rows.append(row)
    result = {"name": config.name, "rows": rows}
    write_init_study(result, out)
    return result


def table_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| init | output variance: first hidden layer | last hidden layer | final train "
             "loss | test accuracy | findings |", "|---|---|---|---|---|---|"]
    for r in rows:
        v = r["variance_by_layer"]
        loss = f"{r['train_loss'][-1]:.4g}" if r.get("train_loss") else r["status"]
        acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "-"
        found = "; ".join(r.get("findings") or ([r["finding"]] if r.get("finding") else []))
        lines.append(f"| {r['init']} | {v[0]:.3g} | {v[-1]:.3g} | {loss} | {acc} | "
                     f"{found or 'none'} |")
    return "\n".join(lines) + "\n"


def write_init_study(result: dict[str, Any], out: Path) -> None:
    from hepdl.evaluation.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "init.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / "table.md", table_markdown(result["rows"]))
    save_figure(plot_init_study(result["rows"]), out / "init_study.png")


def plot_init_study(rows: list[dict[str, Any]]):
    from hepdl.evaluation.plots import _figure, _style

    with _style():
        fig, axes = _figure(2, 1, size=(6.5, 5.5))
        for r in rows:
            depth = range(1, len(r["variance_by_layer"]) + 1)
            axes[0, 0].plot(depth, r["variance_by_layer"], marker="o", label=r["init"])
            if r.get("train_loss"):
                axes[0, 1].plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], marker=".",
                                label=r["init"])
        axes[0, 0].set_yscale("log")
        axes[0, 0].set_xlabel("Hidden layer")
        axes[0, 0].set_ylabel("Output variance at initialization")
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_xlabel("Epoch")
        axes[0, 1].set_ylabel("Training loss")
        axes[0, 0].legend(fontsize="x-small")
    return fig

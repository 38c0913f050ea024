"""The training loop, readable top to bottom: setup, data, model, optimizer, loop, checkpoint.

``fit(config)`` trains one run and returns its directory; ``fit(resume=RUN)`` continues a run
from ``last.pt`` exactly where it stopped (the batch order depends only on seed and epoch, the
events mirrored by ``train.augment`` on seed, epoch and batch, and the random state is saved), so
a killed run resumed gives the uninterrupted result.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hepdl import __version__
from hepdl.config import Config, load_config, with_absolute_paths
from hepdl.data import shards
from hepdl.data.dataset import load_shards, load_splits
from hepdl.data.loader import InMemoryLoader, as_tensors
from hepdl.errors import ConfigError, HepdlError, TrainingError
from hepdl.models import Network, network_spec
from hepdl.preprocess.base import fit_streaming
from hepdl.runs import (
    HEALTH,
    HISTORY,
    LAST,
    MODEL,
    atomic_save,
    atomic_write,
    load_checkpoint,
    new_run_dir,
    now,
    read_meta,
    start_meta,
    update_meta,
    write_config,
)
from hepdl.training.augment import Mirroring
from hepdl.training.callbacks import EarlyStopping, StopRequest
from hepdl.training.device import (
    autocast,
    check_precision,
    grad_scaler,
    resolve_device,
    to_device,
)
from hepdl.training.distributed import ALONE, Ranks, is_lost_rank
from hepdl.training.health import HealthMonitor
from hepdl.training.losses import Objective, objective_for
from hepdl.training.optim import build_optimizer, build_schedule, step_schedule
from hepdl.training.tracking import tracker

INTERRUPTED_EXIT_CODE = 3
CPU = torch.device("cpu")


class Interrupted(HepdlError):
    """Training stopped cleanly (SIGTERM, SIGINT or time limit) with a checkpoint to resume from."""

    resumable = True

    def __init__(self, run: Path, reason: str, signal_name: str | None = None):
        self.run = run
        self.signal_name = signal_name  #: SIGTERM, SIGINT, or None for the time limit
        super().__init__(f"{reason}; checkpoint written, continue with: hepdl train {run} --resume")


def _live_display(console) -> bool:
    """Whether a progress bar can redraw in place: a console exists, and in a notebook rich has
    ipywidgets to draw with (without them the epoch lines alone are printed)."""
    if console is None:
        return False
    if not console.is_jupyter:
        return True
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def _print(console, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False)


@torch.no_grad()
def validate(network: Network, loader: InMemoryLoader, objective: Objective,
             ranks: Ranks = ALONE, device: torch.device = CPU,
             precision: str = "fp32") -> dict[str, float]:
    """Mean loss (and accuracy for classification) over a loader, in eval mode; in
    data-parallel training each rank scores its part and the sums are added up."""
    if loader.n_events == 0:
        return {}
    network.eval()
    total, weights, correct, seen = 0.0, 0.0, 0, 0
    for inputs, labels in loader.batches():
        if not len(labels):  # this rank's part of a batch smaller than the number of ranks
            continue
        inputs, labels = to_device(inputs, device), labels.to(device)
        weight = objective.weight_sum(labels)  # events, or their class weights' sum
        with autocast(device, precision):
            logits = network(inputs)
            total += objective.data_loss(logits, labels).item() * weight
        weights += weight
        seen += len(labels)
        if objective.loss != "mse":
            predicted = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
            correct += int((predicted == labels).sum())
    network.train()
    total, weights, correct, seen = ranks.sum(total, weights, correct, seen)
    out = {"val_loss": total / weights}
    if objective.loss != "mse":
        out["val_accuracy"] = correct / seen
    return out


def _load_initial_weights(network: Network, source: str) -> list[str]:
    """Copy matching weights (and preprocessing) from another run: fine-tuning, pretraining."""
    path = Path(source)
    state = load_checkpoint(path / MODEL if path.is_dir() else path)["model"]
    own = network.state_dict()
    taken = {}
    for key, value in state.items():
        # an MLP's first layer is stored by cell (weight_t, the transpose) in a run on hits
        # (hepdl.models.layers.CellLinear): the same map as a dense run's Linear weight
        twin = key[:-2] if key.endswith(".weight_t") else f"{key}_t"
        if key in own and own[key].shape == value.shape:
            taken[key] = value
        elif twin in own and value.ndim == 2 and own[twin].shape == value.T.shape:
            taken[twin] = value.T.contiguous()
    if not taken:
        raise ConfigError("train.init_from", f"{source} shares no weights with this model")
    network.load_state_dict(taken, strict=False)
    return sorted(taken)


def _freeze(network: Network, patterns: list[str]) -> list[str]:
    frozen = []
    for name, parameter in network.named_parameters():
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            parameter.requires_grad_(False)
            frozen.append(name)
    if patterns and not frozen:
        names = ", ".join(n for n, _ in network.named_parameters())
        raise ConfigError("train.freeze", f"{patterns} match no parameter; the names are {names}")
    if frozen and not any(p.requires_grad for p in network.parameters()):
        raise ConfigError("train.freeze", f"{patterns} freeze every parameter; nothing is left "
                                          "to train")
    return frozen


def _write_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def fit(config: Config | None = None, *, run_dir: str | Path | None = None,
        resume: str | Path | None = None, console=None,
        on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Train a network as ``config`` says, or continue the run at ``resume``.

    Returns
    -------
    Path
        The run directory, with ``model.pt`` (best or last weights), ``last.pt`` and history.

    ``on_epoch(row)`` is called after each epoch is checkpointed, with that epoch's history row
    (a scan reports to its pruner there; an exception it raises stops the run).

    Raises
    ------
    Interrupted
        SIGTERM/SIGINT or the time limit stopped training after a checkpoint (resumable).
    TrainingError
        The loss became NaN or infinite; the run is marked failed, the last checkpoint kept.
    """
    # ------------------------------------------------------------------ setup
    if resume is not None:
        config = load_config(Path(resume))
    if config is None:
        raise ValueError("fit() needs a config or a run to resume")
    # several ranks under torchrun (hepdl.training.distributed): nccl between GPUs, else gloo
    cuda = resolve_device(config.train.device).type == "cuda"
    # nccl for the GPU tensors of DDP, gloo for the CPU sums and broadcasts of the loop
    ranks = Ranks.from_env(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    if cuda and ranks.distributed:  # one GPU per rank on each node, before any collective
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if resume is not None:
        run = Path(resume)
        checkpoint = load_checkpoint(run / LAST)
        if ranks.main:
            update_meta(run, status="running", reason=None, resumed=now())
    else:
        made: Path | HepdlError | None = None
        if ranks.main:
            try:
                made = new_run_dir(config, run_dir)
                # the run's config names its files absolutely, each glob's matches listed:
                # readable from any directory, and the files it trains on are the run's
                config = with_absolute_paths(config)
                write_config(made, config)
            except HepdlError as exc:
                made = exc
        # every rank stops, or goes on with rank 0's directory and files
        run, config = ranks.broadcast((made, config))
        if isinstance(run, HepdlError):
            raise run
        checkpoint = None
    threads_before = torch.get_num_threads()  # given back when this run ends (a notebook goes on)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.seed)
    if resume is None and ranks.main:
        start_meta(run, config)
    mark = update_meta if ranks.main else (lambda *args, **kwargs: None)

    finished = False
    try:
        try:
            path = _train(config, run, checkpoint, console if ranks.main else None, on_epoch,
                          ranks)
            finished = True
            return path
        except RuntimeError as exc:
            if not (ranks.distributed and is_lost_rank(exc)):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"rank {ranks.rank} of {ranks.world}: another rank is gone ({first[:200]}); "
                f"the last checkpoint {run / LAST} is usable: hepdl train {run} --resume "
                "(under torchrun for several ranks)") from None
    except Interrupted as stop:
        finished = True  # every rank decided to stop at the same step
        mark(run, status="interrupted", reason=str(stop).split(";")[0], finished=now())
        raise
    except HepdlError as exc:
        mark(run, status="failed", reason=str(exc), finished=now())
        exc.run = run
        raise
    except BaseException as exc:  # a scan's pruning says "pruned" (run_status), not failed
        mark(run, status=getattr(exc, "run_status", "failed"),
             reason=f"{type(exc).__name__}: {exc}", finished=now())
        raise
    finally:
        torch.set_num_threads(threads_before)
        ranks.close(finished)


def _learning_rate(config: Config, run: Path, console, network: Network | None,
                   loader, objective) -> float:
    """``train.lr``, or with ``lr: auto`` the range test's suggestion: found once, before the
    first epoch, kept in meta.json (a resumed run takes it from there) and its plot in plots/.

    The test sweeps a copy of ``network`` (preprocessing fitted, initial weights; None: built
    and fitted anew) over ``loader``'s batches (None: the test reads the training split and
    shuffles it itself). It draws from a random stream of its own, so the run trains as one
    given the suggested rate would."""
    if config.train.lr != "auto":
        return float(config.train.lr)
    found = read_meta(run).get("lr_auto")
    if found is None:
        from hepdl.training.lr_find import range_test, sweep, write_range_test

        device = next(iter(network.parameters())).device if network is not None else None
        with torch.random.fork_rng(devices=[device] if device and device.type == "cuda" else []):
            result = (range_test(config, network=network) if loader is None
                      else sweep(network, loader, objective, config))
        write_range_test(result, run / "plots")
        found = {"lr": result.suggestion, "explodes_at": result.explodes_at}
        update_meta(run, lr_auto=found)
        _print(console, f"lr auto: {result.summary()}")
    return float(found["lr"])


def _train(config: Config, run: Path, checkpoint: dict | None, console,
           on_epoch: Callable[[dict], None] | None = None, ranks: Ranks = ALONE) -> Path:
    train_cfg = config.train
    if ranks.distributed and train_cfg.gradient_penalty:
        raise ConfigError("train.gradient_penalty", f"is not supported in data-parallel training "
                                                    f"({ranks.world} ranks): DDP's gradients are "
                                                    "first-order; use one process")
    main = ranks.main
    if ranks.distributed and train_cfg.batch_size < 2 * ranks.world:
        raise ConfigError("train.batch_size", f"{train_cfg.batch_size} is the global batch, "
                                              f"split over {ranks.world} ranks at two events or "
                                              f"more each: give at least {2 * ranks.world}")
    device = resolve_device(train_cfg.device)
    check_precision(train_cfg.precision, device)
    if device.type == "cuda" and ranks.distributed:  # one GPU per rank on each node
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # ------------------------------------------------------------------ data
    # rank 0 (or one process) reads the training split whole: the preprocessing is fitted on it;
    # the other ranks of a data-parallel job keep their shards only (hepdl.training.distributed)
    label_dtype = torch.float32 if config.task == "regression" else torch.long
    batch_sizes = {"train": train_cfg.batch_size, "val": max(train_cfg.batch_size, 1024)}
    if config.data.in_memory and main:
        splits = load_splits(config.data, config.task, config.seed)
        sizes = {name: len(split) for name, split in splits.items()}
    elif config.data.in_memory:
        splits, sizes = load_shards(config.data, config.task, config.seed,
                                    lambda name, n: ranks.shard(n, batch_sizes[name]))
    else:  # larger than memory: file chunks read in a background thread as training goes
        from hepdl.data.streaming import StreamingLoader, streaming_splits

        splits = streaming_splits(config.data, config.task, config.seed)
        sizes = {name: len(split) for name, split in splits.items()}
    train_set = splits["train"]  # rank 0: the whole split, for the preprocessing's fit
    class_labels = train_set.labels  # rank 0: every training event's (class weights)
    hits = getattr(train_set, "hits_inputs", [])
    # training batches only; drawn from (seed, epoch, batch), so a resumed run mirrors alike
    mirroring = Mirroring.from_config(train_cfg.augment, train_set.input_shapes, config.seed,
                                      hits)

    # ------------------------------------------------------------------ model
    if hits and train_cfg.gradient_penalty:
        raise ConfigError("train.gradient_penalty", f"needs dense inputs; {', '.join(hits)} are "
                                                    "read as hits (zero-suppressed): use the "
                                                    "dense file")
    spec = network_spec(config, train_set.input_shapes, train_set.class_names, hits)
    network = Network(spec)
    if checkpoint is None and main:
        if config.data.in_memory:  # training split only
            network.fit_preprocessing(as_tensors(train_set.inputs))
        else:  # partial_fit over passes of the training split, chunk by chunk
            fit_streaming(network.preprocess,
                          StreamingLoader(train_set, batch_size=batch_sizes["train"]).chunks)
        if train_cfg.init_from:
            taken = _load_initial_weights(network, train_cfg.init_from)
            _print(console, f"initial weights: {len(taken)} tensors from {train_cfg.init_from}")
    if checkpoint is None and ranks.distributed:  # rank 0's fitted constants and weights to all
        state = ranks.broadcast(network.state_dict() if main else None)
        if not main:
            network.load_state_dict(state)
    del train_set  # rank 0 of several: the whole split goes, its shards stay (below)

    if config.data.in_memory:
        if ranks.distributed and main:  # rank 0 keeps its shards only, as the others do
            splits = {name: splits[name].subset(ranks.shard(sizes[name], batch_sizes[name]))
                      for name in ("train", "val")}

        def loader(name: str, **options) -> InMemoryLoader:
            return InMemoryLoader(splits[name], batch_size=batch_sizes[name],
                                  label_dtype=label_dtype, ranks=ranks, n_events=sizes[name],
                                  **options)
    else:
        def loader(name: str, **options) -> StreamingLoader:
            return StreamingLoader(splits[name], batch_size=batch_sizes[name],
                                   label_dtype=label_dtype, ranks=ranks,
                                   buffer_bytes=config.data.shuffle_buffer_mb * 2**20, **options)
    train_loader = loader("train", shuffle=config.data.shuffle, seed=config.seed)
    val_loader = loader("val")
    # where this rank's part of each batch begins, in a batch of how many events (mirroring)
    batch_totals = shards.batch_sizes(train_loader.n_events, train_cfg.batch_size)
    part_starts = shards.part_bounds(batch_totals, ranks.rank, ranks.world)[0]
    splits.clear()  # the test split, read in memory with the others, is not kept
    frozen = _freeze(network, train_cfg.freeze)
    network.to(device)
    trained = network  # what the loop calls: the network, or its DDP wrapper over the ranks
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # rank 0's weights and buffers to all
        trained = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)

    # ------------------------------------------------------------------ optimizer and loss
    trainable = [p for p in network.parameters() if p.requires_grad]
    objective = objective_for(config, class_labels, spec["class_names"])
    if ranks.distributed:  # rank 0's, from every training event
        objective.class_weights = ranks.broadcast(objective.class_weights)
    if objective.class_weights is not None:
        objective.class_weights = objective.class_weights.to(device)
    # the range test once, on rank 0, from the initial weights; every rank takes its rate. It
    # sweeps training's own batches when they are one process's, shuffled
    lr = ranks.broadcast(_learning_rate(
        config, run, console, network if checkpoint is None else None,
        train_loader if checkpoint is None and config.data.shuffle and not ranks.distributed
        else None,
        objective) if main else None)
    optimizer = build_optimizer(train_cfg.optimizer, trainable, lr)
    schedule = build_schedule(train_cfg.schedule, optimizer, train_cfg.epochs)
    scaler = grad_scaler(device, train_cfg.precision)  # fp16 only; a pass-through otherwise
    stopping = train_cfg.early_stopping
    stopper = EarlyStopping(stopping.patience, stopping.min_delta) if stopping else None
    best = EarlyStopping(patience=10**9)  # tracks the best epoch even without early stopping
    best_state = None

    epoch, start_batch, history, health = 0, 0, [], []
    # the epoch so far: loss summed over events (by class weight), their count and weight
    running = {"loss_sum": 0.0, "events": 0, "weights": 0.0, "seconds": 0.0}
    monitor = HealthMonitor(network, train_cfg.health_every) if train_cfg.health_every else None
    if checkpoint is not None:
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        epoch, start_batch = checkpoint["epoch"], checkpoint["batch"]
        running, history = checkpoint["running"], checkpoint["history"]
        running.setdefault("weights", float(running["events"]))  # an older checkpoint: unweighted
        if not main:  # the saved partial sums are every rank's, summed: counted once, on rank 0
            running = {**running, "loss_sum": 0.0, "events": 0, "weights": 0.0}
        health = checkpoint.get("health", [])
        best.load_state_dict(checkpoint["best"])
        best_state = checkpoint["best_state"]
        if stopper is not None:
            stopper.load_state_dict(checkpoint["early_stopping"])
        # each rank its own random stream (dropout), saved by every rank of the same job
        states = checkpoint.get("rng_ranks") or []
        torch.set_rng_state(states[ranks.rank] if len(states) == ranks.world
                            else checkpoint["rng"])
    elif ranks.distributed and ranks.rank:  # dropout masks of their own; rank 0's is one process's
        torch.manual_seed((config.seed * 1_000_003 + ranks.rank) % 2**63)

    def save_last(next_epoch: int, next_batch: int, sums: dict | None = None) -> None:
        rng = ranks.gather(torch.get_rng_state())  # every rank calls this, at the same step
        if not main:
            return
        atomic_save({
            "hepdl_version": __version__, "spec": spec, "model": network.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "epoch": next_epoch, "batch": next_batch, "running": dict(sums or running),
            "history": history, "health": health, "best": best.state_dict(),
            "best_state": best_state,
            "early_stopping": stopper.state_dict() if stopper else None,
            "rng": rng[0], "rng_ranks": rng, "scaler": scaler.state_dict(),
        }, run / LAST)

    backend = ranks.backend(device.type)  # between the ranks' gradients
    tracking = tracker(config, run) if main else None  # TensorBoard, MLflow: off by default
    n_params = sum(p.numel() for p in network.parameters())
    n_trainable = sum(p.numel() for p in trainable)
    _print(console, f"[bold]{config.name}[/] -> {run}")
    _print(console, f"events: train {sizes['train']}, val {sizes['val']}, test "
                    f"{sizes['test']}; {len(train_loader)} batches/epoch of "
                    f"{train_cfg.batch_size}; parameters {n_params:,} ({n_trainable:,} trained"
                    f"{f', {len(frozen)} tensors frozen' if frozen else ''}); "
                    f"threads {torch.get_num_threads()}; device {device}"
                    f"{f' ({train_cfg.precision})' if train_cfg.precision != 'fp32' else ''}"
                    f"{f'; {ranks.world} ranks (DDP, {backend})' if ranks.distributed else ''}")
    if mirroring is not None:
        _print(console, f"augmentation: {', '.join(mirroring.axes)} of "
                        f"{', '.join(mirroring.inputs)} in half the training events each")
    if checkpoint is None:
        save_last(0, 0)  # a killed first epoch still resumes
    else:
        _print(console, f"resuming at epoch {epoch + 1}, batch {start_batch}")

    # ------------------------------------------------------------------ loop
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[metric]}  "
                                   "{task.fields[rate]:,.0f} ev/s"),
                        TimeRemainingColumn(), console=console, transient=True,
                        disable=not _live_display(console))
    network.train()
    with StopRequest(train_cfg.time_limit) as stop, progress, tracking or contextlib.nullcontext():
        task = progress.add_task("train", total=len(train_loader), epoch=epoch + 1, loss=0.0,
                                 rate=0.0, metric="")
        while epoch < train_cfg.epochs:
            progress.reset(task, total=len(train_loader), completed=start_batch)
            progress.update(task, epoch=epoch + 1)
            tick = time.perf_counter()
            for b, (inputs, labels) in enumerate(train_loader.batches(epoch, start_batch),
                                                 start=start_batch):
                if mirroring is not None:  # the raw events: preprocessing is inside the network
                    inputs = mirroring(inputs, epoch, b, part=(int(part_starts[b]),
                                                               int(batch_totals[b])))
                if monitor is not None:
                    monitor.watch(b)
                inputs, labels = to_device(inputs, device), labels.to(device)
                if train_cfg.gradient_penalty:  # d output / d input is part of the loss
                    inputs = {k: v.detach().requires_grad_() for k, v in inputs.items()}
                with autocast(device, train_cfg.precision):
                    logits = trained(inputs)
                    loss, data_loss = objective(network, logits, labels, inputs)
                if not len(labels):  # a rank's empty part of a tiny last batch: weight 0
                    data_loss = logits.sum() * 0.0  # (a mean over no events is NaN)
                    loss = data_loss + objective.penalty(network)
                value = data_loss.item()  # .item() syncs; the NaN check needs it anyway
                weight = objective.weight_sum(labels)  # events, or their class weights' sum
                nonfinite = not torch.isfinite(loss)
                stopping = stop.reason is not None
                if ranks.distributed:  # all ranks stop at the same batch, for any reason
                    flags = ranks.sum(float(nonfinite), float(stopping), weight)
                    nonfinite, stopping, in_batch = flags[0] > 0, flags[1] > 0, flags[2]
                    # DDP averages over ranks: weigh this rank's mean by its share of the batch
                    loss = loss + (weight * ranks.world / (in_batch or 1) - 1) * data_loss
                if nonfinite:
                    lr = optimizer.param_groups[0]["lr"]
                    raise TrainingError(
                        f"loss became {value} at epoch {epoch + 1}, batch {b} (lr {lr:g}); "
                        "last good checkpoint kept in last.pt; try a lower train.lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if monitor is not None:
                    scaler.unscale_(optimizer)  # the health of the true gradients
                    monitor.before_step()
                scaler.step(optimizer)
                scaler.update()
                if monitor is not None:
                    monitor.after_step()
                running["loss_sum"] += value * weight
                running["events"] += len(labels)
                running["weights"] += weight
                seconds = running["seconds"] + time.perf_counter() - tick
                progress.update(task, advance=1,  # (a rank's parts can all be empty so far)
                                loss=running["loss_sum"] / (running["weights"] or 1),
                                rate=running["events"] / max(seconds, 1e-9))
                if stopping:
                    running["seconds"] = seconds
                    loss_sum, events, weights = ranks.sum(running["loss_sum"], running["events"],
                                                          running["weights"])
                    save_last(epoch, b + 1, {**running, "loss_sum": loss_sum, "events": events,
                                             "weights": weights})
                    raise Interrupted(run, stop.reason or "another rank was stopped",
                                      stop.signal_name)

            # -------------------------------------------------------------- end of epoch
            running["seconds"] += time.perf_counter() - tick
            loss_sum, events, weights = ranks.sum(running["loss_sum"], running["events"],
                                                  running["weights"])
            row = {"epoch": epoch + 1, "train_loss": loss_sum / (weights or 1)}
            row.update(validate(network, val_loader, objective, ranks, device,
                                train_cfg.precision))
            monitored = row.get("val_loss", row["train_loss"])
            row["lr"] = optimizer.param_groups[0]["lr"]
            row["seconds"] = running["seconds"]
            row["events_per_second"] = events / max(running["seconds"], 1e-9)
            history.append(row)
            if tracking is not None:
                tracking.epoch(row)
            if monitor is not None:
                health.extend(monitor.epoch_rows(epoch + 1))
            if best.update(monitored, epoch):
                best_state = {k: v.clone() for k, v in network.state_dict().items()}
            step_schedule(schedule, monitored)
            if stopper is not None:
                stopper.update(monitored, epoch)
            metric = {k: row[k] for k in ("val_accuracy", "val_loss") if k in row}
            progress.update(task, metric="  ".join(f"{k} {v:.4f}" for k, v in metric.items()))
            _print(console, f"epoch {epoch + 1}/{train_cfg.epochs}  " + "  ".join(
                f"{k} {row[k]:.4g}" for k in ("train_loss", "val_loss", "val_accuracy", "lr")
                if k in row) + f"  {row['seconds']:.2f} s")
            epoch, start_batch = epoch + 1, 0
            running = {"loss_sum": 0.0, "events": 0, "weights": 0.0, "seconds": 0.0}
            stopped_early = stopper is not None and stopper.should_stop
            save_last(train_cfg.epochs if stopped_early else epoch, 0)
            if main:
                _write_rows(run / HISTORY, history)
                _write_rows(run / HEALTH, health)
            if on_epoch is not None and main:
                on_epoch(dict(row))
            if stopped_early:
                _print(console, f"early stopping: no improvement for {stopper.patience} epochs; "
                                f"best epoch {best.best_epoch + 1}")
                break
            (stopping,) = ranks.any(stop.reason is not None)  # decided together
            if stopping and epoch < train_cfg.epochs:
                raise Interrupted(run, stop.reason or "another rank was stopped", stop.signal_name)

    # ------------------------------------------------------------------ final weights
    if not main:
        return run
    _write_rows(run / HISTORY, history)
    restore = train_cfg.early_stopping is not None and train_cfg.early_stopping.restore_best
    if restore and best_state is not None:
        network.load_state_dict(best_state)
    kept_epoch = best.best_epoch + 1 if restore else len(history)
    atomic_save({"hepdl_version": __version__, "spec": spec, "model": network.state_dict(),
                 "epoch": kept_epoch}, run / MODEL)
    update_meta(run, epochs_trained=len(history), model_epoch=kept_epoch,
                best_epoch=best.best_epoch + 1, trained=now())
    return run

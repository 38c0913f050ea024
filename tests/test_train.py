import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hepdl.config import OptimizerConfig, ScheduleConfig, config_from_dict
from hepdl.errors import ConfigError, TrainingError
from hepdl.runs import Run, read_meta
from hepdl.training import Interrupted, fit
from hepdl.training.losses import Objective, class_weight_vector
from hepdl.training.optim import OPTIMIZERS, build_optimizer, build_schedule, step_schedule

from .conftest import ROOT, small_config, write_config


def lrs(schedule: ScheduleConfig, epochs=12, lr=0.1, monitored=None):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    sched = build_schedule(schedule, optimizer, epochs)
    out = []
    for t in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        step_schedule(sched, monitored[t] if monitored else 0.0)
    return np.array(out)


def test_schedules_follow_the_formulas_of_seeds_002():
    t = np.arange(12)
    np.testing.assert_allclose(lrs(ScheduleConfig(name="time", k=0.5)), 0.1 / (1 + 0.5 * t))
    np.testing.assert_allclose(lrs(ScheduleConfig(name="step", tau=4, gamma=0.3)),
                               0.1 * 0.3 ** (t // 4))
    np.testing.assert_allclose(lrs(ScheduleConfig(name="exponential", tau=5)),
                               0.1 * np.exp(-t / 5))
    np.testing.assert_allclose(lrs(ScheduleConfig(name="cosine")),
                               0.05 * (1 + np.cos(np.pi * t / 12)), atol=1e-12)
    plateau = lrs(ScheduleConfig(name="plateau", patience=1, gamma=0.5), monitored=[1.0] * 12)
    assert plateau[0] == 0.1 and plateau[-1] < 0.1 * 0.5**3  # halves every 2 flat epochs


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_minimizes_a_quadratic(name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    lr = {"adadelta": 20.0, "adagrad": 0.5}.get(name, 0.05)
    optimizer = build_optimizer(OptimizerConfig(name=name), [w], lr)
    for _ in range(200):
        optimizer.zero_grad()
        (w**2).sum().backward()
        optimizer.step()
    assert float((w**2).sum().detach()) < 0.5, name


def test_optimizer_names_imply_their_options():
    w = [torch.nn.Parameter(torch.zeros(1))]
    assert build_optimizer(OptimizerConfig(name="amsgrad"), w, 1e-3).defaults["amsgrad"]
    nesterov = build_optimizer(OptimizerConfig(name="nesterov"), w, 1e-3).defaults
    assert nesterov["nesterov"] and nesterov["momentum"] == 0.9
    with pytest.raises(ConfigError, match=r"train.optimizer.options: Adam rejects"):
        build_optimizer(OptimizerConfig(name="adam", options={"momentum": 0.9}), w, 1e-3)


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adagrad", "adam", "adamw", "amsgrad"])
def test_fused_updates_by_default_equal_the_per_op_ones(name):
    def trained(options):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(50, 20))
        optimizer = build_optimizer(OptimizerConfig(name=name, options=options), [w], 0.01)
        for _ in range(20):
            optimizer.zero_grad()
            (w.sin() ** 2).sum().backward()
            optimizer.step()
        return optimizer.defaults, w.detach()

    fused, w_fused = trained({})
    per_op, w_per_op = trained({"foreach": False})
    assert fused["fused"] and not per_op.get("fused")
    torch.testing.assert_close(w_fused, w_per_op, rtol=1e-5, atol=1e-6)


def test_class_weights_balanced_explicit_and_checked():
    labels = np.array([0] * 80 + [1] * 20)
    np.testing.assert_allclose(class_weight_vector("balanced", labels, ["a", "b"]).numpy(),
                               [100 / (2 * 80), 100 / (2 * 20)])
    np.testing.assert_allclose(class_weight_vector({"b": 3.0}, labels, ["a", "b"]).numpy(), [1, 3])
    with pytest.raises(ConfigError, match="expected 2 weights"):
        class_weight_vector([1.0], labels, ["a", "b"])
    with pytest.raises(ConfigError, match="unknown class 'c'"):
        class_weight_vector({"c": 1.0}, labels, ["a", "b"])


def test_objective_weights_and_penalties():
    model = torch.nn.Linear(3, 2)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 4.0])
    weighted = Objective("cross_entropy", class_weights=weights).data_loss(logits, labels)
    per_event = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (per_event * weights[labels]).sum() / weights[labels].sum()
    torch.testing.assert_close(weighted, expected)
    total, data = Objective("cross_entropy", l1=0.1, l2=0.01)(model, logits, labels)
    penalty = 0.1 * model.weight.abs().sum() + 0.01 * (model.weight**2).sum()  # no bias
    torch.testing.assert_close(total - data, penalty)
    # binary cross-entropy with one sigmoid output
    bce = Objective("bce").data_loss(torch.tensor([[0.3], [-1.2]]), torch.tensor([1, 0]))
    torch.testing.assert_close(bce, torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.3, -1.2]), torch.tensor([1.0, 0.0])))


def test_gradient_penalty_is_the_squared_input_gradient_of_the_output():
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    # one output: d z / d x = w for every event, so the penalty is lambda |w|^2
    single = torch.nn.Linear(3, 1)
    total, data = Objective("bce", gradient_penalty=0.5)(
        single, single(x), torch.tensor([0, 1, 1, 0, 1]), {"x": x})
    torch.testing.assert_close(total - data, 0.5 * single.weight.pow(2).sum())
    # several classes: d log p_y / d x = W_y - sum_k p_k W_k, per event
    multi = torch.nn.Linear(3, 4)
    labels = torch.tensor([0, 3, 2, 1, 0])
    logits = multi(x)
    total, data = Objective("cross_entropy", gradient_penalty=2.0)(multi, logits, labels,
                                                                   {"x": x})
    p = torch.softmax(logits, 1).detach()
    grad = multi.weight[labels] - p @ multi.weight
    torch.testing.assert_close(total - data, 2.0 * grad.pow(2).sum(1).mean())
    with pytest.raises(ValueError, match="needs the batch's inputs"):
        Objective("bce", gradient_penalty=1.0)(single, single(x), labels)


def test_gradient_penalty_makes_the_trained_network_smoother(tmp_path):
    def input_gradient(penalty):
        run = fit(config_from_dict(small_config(tmp_path / str(penalty),
                                                train={"epochs": 4, "gradient_penalty": penalty})))
        network = Run.load(run).network()
        x = torch.rand(200, 64, requires_grad=True) * 16
        logp = torch.log_softmax(network({"pixels": x}), 1).max(1).values
        (grad,) = torch.autograd.grad(logp.sum(), x)
        return float(grad.pow(2).sum(1).mean())

    assert input_gradient(10.0) < 0.5 * input_gradient(0.0)


def test_fit_writes_a_complete_checkpointed_run(tmp_path):
    threads = torch.get_num_threads()
    run = fit(config_from_dict(small_config(tmp_path, train={"epochs": 3, "threads": 1})))
    assert torch.get_num_threads() == threads  # a notebook keeps its own thread count
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "health.csv", "history.csv",
                                                     "last.pt", "meta.json", "model.pt"]
    history = Run.load(run).history
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and last["batch"] == 0 and "optimizer" in last


def test_early_stopping_restores_the_best_weights(tmp_path):
    from hepdl.data import load_splits
    from hepdl.data.loader import InMemoryLoader
    from hepdl.training.loop import validate

    config = config_from_dict(small_config(
        tmp_path, train={"epochs": 40, "lr": 0.05, "optimizer": "sgd",
                         "early_stopping": {"patience": 2}, "threads": 1},
        model={"width": 64, "depth": 2}))
    run = fit(config)
    history = Run.load(run).history
    best = int(history["val_loss"].idxmin())
    assert len(history) == best + 1 + 2 < 40  # stopped two epochs after the best
    assert read_meta(run)["model_epoch"] == best + 1
    val = load_splits(config.data, config.task, config.seed)["val"]
    loss = validate(Run.load(run).network(), InMemoryLoader(val, batch_size=4096),
                    Objective("cross_entropy"))["val_loss"]
    assert loss == pytest.approx(history["val_loss"][best], rel=1e-5)


def test_nan_loss_fails_the_run_and_keeps_the_checkpoint(tmp_path):
    config = config_from_dict(small_config(tmp_path,
                                           train={"lr": 1e6, "optimizer": "sgd", "epochs": 3}))
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at epoch 1, batch \d+ "
                                            r"\(lr 1e\+06\)"):
        fit(config)
    run = tmp_path / "runs" / "t"
    meta = read_meta(run)
    assert meta["status"] == "failed" and "loss became" in meta["reason"]
    assert (run / "last.pt").is_file() and not (run / "model.pt").exists()


def state(run) -> dict:
    return torch.load(run / "model.pt", weights_only=True)["model"]


def test_resume_after_interruptions_matches_an_uninterrupted_run(tmp_path):
    base = small_config(tmp_path, train={"epochs": 2, "batch_size": 256, "threads": 1},
                        model={"width": 32, "depth": 2, "dropout": 0.2})
    reference = fit(config_from_dict(base))
    # stop after every single step, then resume until done: each resume starts mid-epoch
    interrupted = config_from_dict(small_config(
        tmp_path, name="cut", train={**base["train"], "time_limit": 1e-9},
        model=base["model"]))
    with pytest.raises(Interrupted, match="time limit"):
        run = fit(interrupted)
    run = tmp_path / "runs" / "cut"
    assert read_meta(run)["status"] == "interrupted"
    for _ in range(20):
        try:
            fit(resume=run)
            break
        except Interrupted:
            continue
    assert Run.load(run).history["epoch"].tolist() == [1, 2]
    for key, value in state(reference).items():
        torch.testing.assert_close(state(run)[key], value, msg=key)


def _wait_for_rows(path, rows, process, timeout=60):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.is_file() and len(path.read_text().splitlines()) > rows:
            return
        assert process.poll() is None, "training ended before it could be stopped"
        time.sleep(0.005)
    raise AssertionError("no progress")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, cli, how):
    base = small_config(tmp_path, train={"epochs": 12, "batch_size": 8, "threads": 1,
                                         "lr": 1e-3},
                        model={"width": 64, "depth": 2, "dropout": 0.1})
    path = write_config(tmp_path / "c.yaml", {**base, "name": "killed"})
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen([sys.executable, "-m", "hepdl", "train", str(path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    run = tmp_path / "runs" / "killed"
    _wait_for_rows(run / "history.csv", 2, process)
    process.send_signal(getattr(signal, how))
    code = process.wait(60)
    meta = read_meta(run)
    if how == "SIGTERM":  # a clean stop: checkpoint, status, exit code 3
        assert code == 3 and meta["status"] == "interrupted", process.stderr.read()
        assert "SIGTERM received" in meta["reason"]
    else:
        assert code == -9 and meta["status"] == "running"
    assert len(Run.load(run).history) < 12
    result = cli("train", run, "--resume")
    assert result.exit_code == 0, result.output
    assert read_meta(run)["status"] == "completed"
    reference = fit(config_from_dict({**base, "name": "reference"}))
    assert Run.load(run).history["train_loss"].tolist() == pytest.approx(
        Run.load(reference).history["train_loss"].tolist(), rel=1e-6)
    for key, value in state(reference).items():
        torch.testing.assert_close(state(run)[key], value, msg=key)


def test_fine_tuning_takes_weights_and_freezes_by_pattern(tmp_path):
    source = fit(config_from_dict(small_config(tmp_path, name="source")))
    tuned = fit(config_from_dict(small_config(
        tmp_path, name="tuned", train={"init_from": str(source), "freeze": ["body.hidden.*"],
                                       "epochs": 2})))
    before, after = state(source), state(tuned)
    torch.testing.assert_close(after["body.hidden.0.weight"], before["body.hidden.0.weight"])
    torch.testing.assert_close(after["preprocess.pixels.0.mean_"],
                               before["preprocess.pixels.0.mean_"])
    assert not torch.allclose(after["body.output.weight"], before["body.output.weight"])
    with pytest.raises(ConfigError, match=r"train.freeze: \['nothing\*'\] match no parameter"):
        fit(config_from_dict(small_config(tmp_path, name="bad", train={"freeze": ["nothing*"]})))


def test_meta_records_versions_and_commit(tmp_path):
    run = fit(config_from_dict(small_config(tmp_path)))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["torch_version"] == torch.__version__
    assert meta["seed"] == 3 and meta["hepdl_version"]
    assert math.isfinite(meta.get("epochs_trained", float("nan")))


def test_regression_with_mse_on_a_parquet_table(tmp_path):
    from .conftest import blobs, write_table

    features, labels, _ = blobs(1500, seed=4)
    energy = 50 + 20 * features[:, 0] + 5 * features[:, 1] ** 2  # a smooth target
    write_table(tmp_path / "e.parquet", features, labels, energy)
    config = config_from_dict(small_config(
        tmp_path, data={"source": {"kind": "table", "path": str(tmp_path / "e.parquet"),
                                   "inputs": {"x": ["x0", "x1", "x2", "x3"]}, "label": "energy",
                                   "observers": {"energy": "energy"}}},
        preprocess={"x": ["standardize"]}, model={"width": 64, "depth": 2},
        train={"loss": "mse", "epochs": 60, "lr": 3e-3, "batch_size": 64, "threads": 1},
        evaluate={"bins": {"energy": [0, 50, 100, 300]}}))
    from hepdl.api import _complete

    run = _complete(fit(config))
    metrics = run.metrics
    assert metrics["task"] == "regression"
    # a constant guess has mse = var(target); the network must do far better
    assert metrics["mse"] < 0.05 * float(np.var(energy))
    assert "binned_energy.png" in metrics["plots"] and "regression.png" in metrics["plots"]


def test_binary_bce_run_and_a_repeat_from_the_resolved_config(tmp_path, npz_file):
    config = config_from_dict(small_config(
        tmp_path, data={"source": {"kind": "npz", "path": str(npz_file),
                                   "inputs": {"x": "features"}, "label": "label",
                                   "class_names": ["bkg", "sig"]}},
        preprocess={"x": ["standardize"]}, train={"loss": "bce", "epochs": 15, "threads": 1}))
    first = fit(config)
    spec = torch.load(first / "model.pt", weights_only=True)["spec"]
    assert spec["n_outputs"] == 1  # one sigmoid for two classes
    from hepdl.config import load_config
    from hepdl.evaluation import evaluate_run

    # two classes shifted by 1 sigma in each of 4 features: optimal AUC = Phi(1) = 0.92
    assert evaluate_run(first)["auc"]["sig"] > 0.85
    again = fit(load_config(first / "config.yaml"))
    assert again.name == "t_2"
    assert Run.load(again).history["val_loss"].tolist() == Run.load(first).history[
        "val_loss"].tolist()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_and_precision_are_checked_before_training(tmp_path, cli):
    config = write_config(tmp_path / "c.yaml", small_config(tmp_path, train={"device": "cuda"}))
    done = cli("train", config)
    assert done.exit_code == 2 and "train.device: cuda asked for" in done.output
    assert not (tmp_path / "runs" / "t" / "model.pt").exists()
    with pytest.raises(ConfigError, match="fp16 mixed precision needs a GPU"):
        fit(config_from_dict(small_config(tmp_path, train={"precision": "fp16"})))


def test_auto_device_and_bf16_autocast_train_on_the_cpu(tmp_path):
    histories = {}
    for precision in ("fp32", "bf16"):
        config = small_config(tmp_path / precision, train={"device": "auto",
                                                           "precision": precision})
        histories[precision] = Run.load(fit(config_from_dict(config))).history
    fp32, bf16 = histories["fp32"]["val_loss"], histories["bf16"]["val_loss"]
    assert fp32.iloc[-1] < fp32.iloc[0] and bf16.iloc[-1] < bf16.iloc[0]
    # bf16 keeps 8 bits of mantissa in the products: close to fp32, not equal
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)
    assert not np.allclose(bf16, fp32, rtol=1e-6)


def test_a_run_stores_the_files_its_glob_matched_so_a_later_file_leaves_the_split(
        tmp_path, blob_arrays):
    from hepdl import api

    features, labels, energy = blob_arrays
    folder = tmp_path / "blobs"
    folder.mkdir()
    half = len(labels) // 2
    for name, part in (("b_1.npz", slice(None, half)), ("b_[2].npz", slice(half, None))):
        np.savez(folder / name, features=features[part], label=labels[part])
    config = config_from_dict(small_config(
        tmp_path, data={"source": {"kind": "npz", "path": str(folder / "b_*.npz"),
                                   "inputs": {"x": "features"}, "label": "label"}},
        preprocess={"x": ["standardize"]}, train={"epochs": 1}))
    run = api.train(config, console=None)
    # b_[2].npz, read as a glob, would be b_2.npz: the names are stored escaped
    assert run.config.data.source.path == [str(folder / "b_1.npz"), str(folder / "b_[[]2].npz")]
    # a file added later matches the glob but is not the run's data: the test split stays
    np.savez(folder / "b_0.npz", features=-features[:half], label=1 - labels[:half])
    np.savez(folder / "b_2.npz", features=-features[:half], label=1 - labels[:half])
    assert api.evaluate(run.path)["accuracy"] == run.metrics["accuracy"]
    # init_from names one run's weights, never a glob's matches
    from hepdl.config import with_absolute_paths
    from hepdl.data.readers import expand_paths

    # a [ in the working directory is a name, not a pattern, whatever the readers make of it
    odd = tmp_path / "proj[1]"
    (odd / "data").mkdir(parents=True)
    np.savez(odd / "data" / "x.npz", features=features, label=labels)
    (tmp_path / "proj1" / "data").mkdir(parents=True)  # what [1] would match as a pattern
    np.savez(tmp_path / "proj1" / "data" / "x.npz", features=features, label=labels)
    relative = config.model_copy(update={"data": config.data.model_copy(update={
        "source": config.data.source.model_copy(update={"path": "data/x.npz"})})})
    for spec in ("data/x.npz", "data/x*.npz"):
        relative.data.source.path = spec
        pinned = with_absolute_paths(relative, base=odd).data.source.path
        assert expand_paths(pinned) == [odd / "data" / "x.npz"]

    weights = config.model_copy(update={"train": config.train.model_copy(
        update={"init_from": str(folder / "b_*.npz")})})
    assert with_absolute_paths(weights).train.init_from == str(folder / "b_*.npz")


def test_training_reads_the_files_the_run_stores_not_its_glob_again(tmp_path, blob_arrays,
                                                                   monkeypatch):
    from hepdl import api
    from hepdl.training import loop

    features, labels, _ = blob_arrays
    folder = tmp_path / "blobs"
    folder.mkdir()
    for name in ("b_1.npz", "b_2.npz"):
        np.savez(folder / name, features=features, label=labels)
    read = []
    load_splits = loop.load_splits
    monkeypatch.setattr(loop, "load_splits", lambda data, *args: (
        read.append(data.source.path), load_splits(data, *args))[1])
    config = config_from_dict(small_config(
        tmp_path, data={"source": {"kind": "npz", "path": str(folder / "b_*.npz"),
                                   "inputs": {"x": "features"}, "label": "label"}},
        preprocess={"x": ["standardize"]}, train={"epochs": 1}))
    run = api.train(config, console=None)
    assert read == [[str(folder / "b_1.npz"), str(folder / "b_2.npz")]]
    assert run.config.data.source.path == read[0]


def test_a_run_stores_absolute_data_paths_and_is_read_from_anywhere(tmp_path, npz_file,
                                                                    monkeypatch):
    from hepdl import api

    monkeypatch.chdir(npz_file.parent)
    config = config_from_dict(small_config(
        tmp_path, data={"source": {"kind": "npz", "path": npz_file.name,
                                   "inputs": {"x": "features"}, "label": "label"}},
        preprocess={"x": ["standardize"]}, train={"epochs": 1}))
    run = api.train(config, console=None)
    assert run.config.data.source.path == str(npz_file)
    monkeypatch.setenv("HOME", str(npz_file.parent.parent))  # ~/name/blobs.npz: the same file
    from hepdl.config import with_absolute_paths

    home = config.model_copy(deep=True)
    home.data.source.path = f"~/{npz_file.parent.name}/{npz_file.name}"
    assert with_absolute_paths(home).data.source.path == str(npz_file)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the data's relative path means nothing here
    assert api.evaluate(run.path)["accuracy"] == run.metrics["accuracy"]

"""Zero-suppressed inputs as hits: storage, selection, preprocessing, the by-cell first layer,
and training from a hits file giving the dense path's results."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from hepdl.config import DataConfig, config_from_dict
from hepdl.data.dataset import load_dataset, load_splits
from hepdl.data.hits import Hits, convert_to_hits, read_hits
from hepdl.errors import ConfigError, DataError, KeyNotFoundError
from hepdl.models import Network, network_spec
from tests.test_lcd import particle_events, write_layout


def sparse_images(n: int = 7, shape=(3, 4, 5), seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.exponential(1.0, (n, *shape)) * (rng.random((n, *shape)) < 0.15)
    x[2] = 0  # an event without hits
    return torch.from_numpy(x.astype(np.float32))


def test_from_dense_round_trip_and_csr_layout():
    x = sparse_images()
    hits = Hits.from_dense(x)
    assert hits.shape == tuple(x.shape) and len(hits) == 7
    assert torch.equal(hits.to_dense(), x)
    assert int(hits.indptr[-1]) == int((x != 0).sum())
    assert torch.equal(hits.counts, (x != 0).reshape(7, -1).sum(1))
    assert hits.counts[2] == 0


def test_selection_by_slice_index_and_mask_matches_dense():
    x = sparse_images(n=20)
    hits = Hits.from_dense(x)
    order = torch.tensor([5, 2, 19, 5, 0])
    assert torch.equal(hits[3:11].to_dense(), x[3:11])
    assert torch.equal(hits.index_select(0, order).to_dense(), x[order])
    assert torch.equal(hits[np.array([1, 7])].to_dense(), x[[1, 7]])
    numpy_mask = np.zeros(20, dtype=bool)
    numpy_mask[[3, 11]] = True  # a numpy mask selects where true, not events 0 and 1
    assert torch.equal(hits[numpy_mask].to_dense(), x[[3, 11]])
    assert torch.equal(hits[::3].to_dense(), x[::3])
    mask = torch.zeros(20, dtype=torch.bool)
    mask[[4, 9]] = True
    assert torch.equal(hits.index_select(0, mask).to_dense(), x[mask])
    assert len(hits[5:2]) == 0


def test_concatenate_and_per_event_reductions():
    x = sparse_images(n=9)
    hits = Hits.concatenate([Hits.from_dense(x[:4]), Hits.from_dense(x[4:])])
    assert torch.equal(hits.to_dense(), x)
    flat = x.reshape(9, -1)
    assert torch.allclose(hits.event_reduce(hits.value, "sum"), flat.sum(1))
    assert torch.equal(hits.event_reduce(hits.value, "amax"), flat.amax(1))


def test_affine_map_is_exact_with_a_base():
    x = sparse_images()
    shift, scale = torch.rand(x.shape[1:]), torch.rand(x.shape[1:]) + 0.5
    mapped = Hits.from_dense(x).affine(shift, scale).affine(0.3, 2.0)
    assert torch.allclose(mapped.to_dense(), ((x - shift) / scale - 0.3) / 2.0, atol=1e-6)
    with pytest.raises(ValueError, match="zero"):
        mapped.with_values(mapped.value)


@pytest.mark.parametrize("chain", [
    ["standardize"], ["minmax"], ["robust"], ["log1p"], ["nonlinear_log_tanh"],
    [{"divide": {"by": "max"}}], [{"image_norm": {"norm": "l1"}}],
    [{"image_norm": {"norm": "l2"}}, "standardize"], [{"image_norm": {"norm": "max"}}],
    ["standardize", "log1p"],  # log1p of a standardized input: densified, still exact
])
def test_every_sparse_preprocessing_equals_the_dense_one(chain):
    from hepdl.preprocess import build_chain

    x = sparse_images(n=30)
    dense = build_chain(chain, x.shape[1:], "t").fit(x)
    # after standardize an empty cell holds -mean/std: log1p of it makes every cell a hit
    assert dense.keeps_hits == (chain != ["standardize", "log1p"])
    out = dense(Hits.from_dense(x))
    assert isinstance(out, Hits)
    assert torch.allclose(out.to_dense(), dense(x), atol=1e-5)


def test_transforms_that_do_not_keep_hits_say_so():
    from hepdl.preprocess import build_chain

    chain = build_chain(["pca"], (6,), "t").fit(torch.randn(50, 6))
    assert not chain.keeps_hits
    with pytest.raises(NotImplementedError, match="empty cells"):
        chain[0].transform_hits(Hits.from_dense(torch.zeros(2, 6)))


# --------------------------------------------------------------------------- files


@pytest.fixture
def lcd_files(tmp_path):
    events = {name: particle_events(name, 40, seed)
              for seed, name in enumerate(["Ele", "Gamma", "Pi0", "ChPi"])}
    for name, e in events.items():  # something to learn: pions leave more in the HCAL
        e["HCAL"] *= 4 if name == "ChPi" else 1
    (dense,) = write_layout(tmp_path / "dense", "merged", events)
    hits = tmp_path / "hits.h5"
    convert_to_hits(dense, hits, ["ECAL", "HCAL"], chunk_events=64)
    return dense, hits


def lcd_config(path, tmp_path, preprocess=("standardize",), **train):
    return config_from_dict({
        "name": "hits", "seed": 3, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "lcd", "layout": "merged", "files": str(path)},
                 "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "preprocess": {"ecal": list(preprocess), "hcal": list(preprocess)},
        "model": {"width": 16, "depth": 2, "init": "he_normal"},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1, **train}})


def test_converted_file_holds_the_same_events(lcd_files, tmp_path):
    dense, hits = lcd_files
    with h5py.File(dense) as d, h5py.File(hits) as h:
        assert h["ECAL"].attrs["hits"] and tuple(h["ECAL"].attrs["shape"]) == (25, 25, 25)
        restored = read_hits(h["ECAL"], "ECAL").to_dense().numpy()
        np.testing.assert_array_equal(restored, d["ECAL"][()])
        np.testing.assert_array_equal(h["index"][()], d["index"][()])
        assert 0.015 < h.attrs["occupancy_ECAL"] < 0.025
    a = load_splits(lcd_config(dense, tmp_path).data, "classification", 3)
    b = load_splits(lcd_config(hits, tmp_path).data, "classification", 3)
    for split in ("train", "val", "test"):
        assert b[split].hits_inputs == ["ecal", "hcal"] and a[split].hits_inputs == []
        assert torch.equal(b[split].inputs["hcal"].to_dense(),
                           torch.from_numpy(a[split].inputs["hcal"]))
        np.testing.assert_array_equal(a[split].labels, b[split].labels)


def test_init_from_carries_the_first_layer_between_dense_and_hits_runs(lcd_files, tmp_path):
    from hepdl.runs import Run
    from hepdl.training import fit

    dense, hits = lcd_files
    runs = {name: Run.load(fit(lcd_config(path, tmp_path / name, epochs=1)))
            for name, path in (("dense", dense), ("hits", hits))}
    for source, target in (("dense", "hits"), ("hits", "dense")):
        config = lcd_config(hits if target == "hits" else dense, tmp_path / f"to_{target}",
                            epochs=1, init_from=str(runs[source].path),
                            freeze=["body.hidden.*"])
        tuned = Run.load(fit(config)).network().state_dict()
        given = runs[source].network().state_dict()
        first = {"dense": "body.hidden.0.weight", "hits": "body.hidden.0.weight_t"}
        # the hidden layers frozen at the source's: the first layer too, transposed
        torch.testing.assert_close(tuned[first[target]], given[first[source]].T)
        torch.testing.assert_close(tuned["body.hidden.2.weight"], given["body.hidden.2.weight"])


def test_inspect_shows_a_hits_group_as_the_input_it_stores(lcd_files):
    from hepdl.data.inspect import inspect_file

    dense, hits = lcd_files
    rows = {row.name: row for row in inspect_file(hits)}
    assert "ECAL/value" not in rows and "ECAL/indptr" not in rows
    ecal, whole = rows["ECAL"], {row.name: row for row in inspect_file(dense)}["ECAL"]
    assert ecal.shape == whole.shape and (ecal.minimum, ecal.maximum) == (
        whole.minimum, whole.maximum)
    with h5py.File(hits) as f:
        assert f"occupancy {f.attrs['occupancy_ECAL']:.2%}" in ecal.note


def test_an_hdf5_source_on_a_hits_file_points_to_kind_lcd(lcd_files):
    _, hits = lcd_files
    data = DataConfig.model_validate({"source": {"kind": "hdf5", "path": str(hits),
                                                 "inputs": {"ecal": "ECAL"}, "label": "index"}})
    with pytest.raises(DataError, match=r"ECAL: is stored as hits .* source kind: lcd"):
        load_dataset(data)


def test_network_outputs_equal_on_dense_and_hits_batches(lcd_files, tmp_path):
    dense, hits = lcd_files
    config = lcd_config(hits, tmp_path)
    train = load_splits(config.data, "classification", 3)["train"]
    torch.manual_seed(0)
    network = Network(network_spec(config, train.input_shapes, train.class_names,
                                   train.hits_inputs))
    torch.manual_seed(0)
    plain = Network(network_spec(config, train.input_shapes, train.class_names))
    assert network.hits_inputs == ["ecal", "hcal"] and plain.hits_inputs == []
    # the same initial map: the by-cell layer is the plain first layer, transposed
    assert torch.equal(network.body.hidden[0].weight_t.T, plain.body.hidden[0].weight)
    network.fit_preprocessing(train.inputs)
    plain.load_state_dict(network.state_dict() | {
        "body.hidden.0.weight": network.body.hidden[0].weight_t.T.contiguous()}, strict=False)
    batch = {k: v[:32] for k, v in train.inputs.items()}
    as_dense = {k: v.to_dense() for k, v in batch.items()}
    expected = plain(as_dense)
    assert torch.allclose(network(batch), expected, atol=1e-5)
    assert torch.allclose(network(as_dense), expected, atol=1e-5)
    # the weight gradients of both paths agree too (the by-cell layer's is the transpose)
    for net, inputs in ((network, batch), (plain, as_dense)):
        net.zero_grad()
        net(inputs).sum().backward()
    assert torch.allclose(network.body.hidden[0].weight_t.grad.T,
                          plain.body.hidden[0].weight.grad, atol=1e-4)


def test_training_from_hits_matches_dense_training(lcd_files, tmp_path):
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run
    from hepdl.training import fit

    dense, hits = lcd_files
    runs = {name: Run.load(fit(lcd_config(path, tmp_path)))
            for name, path in (("dense", dense), ("hits", hits))}
    a, b = (run.history["train_loss"].to_numpy() for run in runs.values())
    np.testing.assert_allclose(a, b, rtol=1e-3)
    # the health monitor watches the by-cell first layer as it does the dense one
    import pandas as pd

    health = {name: pd.read_csv(run.path / "health.csv").set_index(["epoch", "layer"])
              for name, run in runs.items()}
    first = health["hits"].loc[(2, "body.hidden.0"), "grad_norm"]
    assert np.isclose(first, health["dense"].loc[(2, "body.hidden.0"), "grad_norm"], rtol=1e-2)
    # the hits-trained network reads dense files as well (evaluation of real LCD files)
    test = load_splits(lcd_config(dense, tmp_path).data, "classification", 3)["test"]
    scores = {name: predict(run.network(), test).scores for name, run in runs.items()}
    np.testing.assert_allclose(scores["hits"], scores["dense"], atol=1e-3)


def test_a_split_stored_as_hits_reads_every_split_whole(lcd_files, tmp_path):
    from hepdl.data.streaming import streamable

    dense, hits = lcd_files
    config = lcd_config(dense, tmp_path)
    for stored in ("train", "test"):  # the dense files stream only if no split is hits
        files = {"train": str(dense), "val": str(dense), "test": str(dense), stored: str(hits)}
        data = config.data.model_copy(update={"split": config.data.split.model_copy(
            update={"files": files})})
        assert not streamable(data)
        splits = load_splits(data, "classification", 3)
        assert isinstance(splits[stored].inputs["ecal"], Hits)
        assert not isinstance(splits["val"].inputs["ecal"], Hits)


def test_hits_that_cannot_be_used_fail_clearly(lcd_files, tmp_path):
    from hepdl.training import fit

    dense, hits = lcd_files
    streamed = lcd_config(hits, tmp_path).model_copy(deep=True)
    streamed.data.in_memory = False
    with pytest.raises(ConfigError, match="in_memory"):
        fit(streamed)
    with pytest.raises(ConfigError, match="augment"):
        fit(lcd_config(hits, tmp_path, augment={"flip_phi": True}))
    with pytest.raises(ConfigError, match="gradient_penalty"):
        fit(lcd_config(hits, tmp_path, gradient_penalty=0.1))
    from hepdl.training.lr_find import range_test

    with pytest.raises(ConfigError, match="train.augment: needs dense inputs; ecal, hcal"):
        range_test(lcd_config(hits, tmp_path, augment={"flip_phi": True}))
    with pytest.raises(KeyNotFoundError, match="NOPE"):
        convert_to_hits(dense, tmp_path / "x.h5", ["NOPE"])
    with pytest.raises(DataError, match="index"):
        convert_to_hits(dense, tmp_path / "x.h5", ["index"])
    assert not (tmp_path / "x.h5").exists()


# tanh(a log(1 + 0) + b) != 0; an MLP without hidden layers has no first layer to gather
@pytest.mark.parametrize("preprocess, depth", [(("learnable_log_tanh",), 2),
                                               (("standardize",), 0)])
def test_hits_are_made_dense_per_batch_where_they_cannot_stay_sparse(lcd_files, tmp_path,
                                                                     preprocess, depth):
    _, hits = lcd_files
    config = lcd_config(hits, tmp_path, preprocess=preprocess)
    config.model.depth = depth
    train = load_splits(config.data, "classification", 3)["train"]
    network = Network(network_spec(config, train.input_shapes, train.class_names,
                                   train.hits_inputs))
    assert network.hits_inputs == []  # dense first layer, dense batches
    network.fit_preprocessing(train.inputs)
    batch = {k: v[:8] for k, v in train.inputs.items()}
    assert torch.allclose(network(batch), network({k: v.to_dense() for k, v in batch.items()}))


def test_damaged_hits_group_is_a_data_error(lcd_files, tmp_path):
    _, hits = lcd_files
    with h5py.File(hits, "r+") as f:
        del f["HCAL/value"]
        f["HCAL/value"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(DataError, match="inconsistent"):
        load_splits(lcd_config(hits, tmp_path).data, "classification", 3)


def test_hits_command_writes_the_file_and_refuses_bad_keys(lcd_files, tmp_path, cli):
    dense, _ = lcd_files
    done = cli("data", "hits", dense, "--out", tmp_path / "h.h5", "--keys", "ECAL")
    assert done.exit_code == 0 and "occupancy ECAL" in done.output
    with h5py.File(tmp_path / "h.h5") as f:
        assert f["ECAL"].attrs["hits"] and isinstance(f["HCAL"], h5py.Dataset)
    failed = cli("data", "hits", dense, "--out", tmp_path / "x.h5", "--keys", "ECAL,NOPE")
    assert failed.exit_code == 2 and "NOPE" in failed.output
    assert not (tmp_path / "x.h5").exists()
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["ECAL"] = np.zeros((0, 25, 25, 25), dtype=np.float32)
    empty = cli("data", "hits", tmp_path / "empty.h5", "--out", tmp_path / "e.h5", "--keys",
                "ECAL")
    assert empty.exit_code == 2 and "ECAL: holds no events" in empty.output
    assert not (tmp_path / "e.h5").exists()


def test_nan_in_a_hits_file_is_named_or_its_event_dropped(lcd_files, tmp_path):
    _, hits = lcd_files
    with h5py.File(hits, "r+") as f:
        value = f["ECAL/value"][()]
        indptr = f["ECAL/indptr"][()]
        value[indptr[5]] = np.nan  # the first hit of event 5
        f["ECAL/value"][...] = value
    config = lcd_config(hits, tmp_path)
    with pytest.raises(DataError, match=r"ecal: 1 values in 1 events \(first event 5"):
        load_splits(config.data, "classification", 3)
    config.data.nonfinite = "drop"
    splits = load_splits(config.data, "classification", 3)
    assert sum(len(s) for s in splits.values()) == 159

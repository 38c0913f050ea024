"""ONNX export: the network with its preprocessing, checked against PyTorch by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hepdl import api
from hepdl.config import config_from_dict
from hepdl.data.dataset import load_splits
from hepdl.data.hits import convert_to_hits
from hepdl.errors import DataError
from hepdl.export.onnx import ExportError, export_onnx
from hepdl.runs import Run, update_meta
from tests.test_lcd import particle_events, write_layout

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def lcd_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lcd")
    events = {name: particle_events(name, 30, seed)
              for seed, name in enumerate(["Ele", "Gamma", "Pi0", "ChPi"])}
    (path,) = write_layout(folder, "merged", events)
    return path


def trained(path, tmp_path, model=None, name="onnx"):
    config = config_from_dict({
        "name": name, "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "lcd", "layout": "merged", "files": str(path)},
                 "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "preprocess": {"ecal": [{"divide": {"by": "max"}}, "standardize"],
                       "hcal": ["nonlinear_log_tanh"]},
        "model": model or {"width": 16, "depth": 2, "batch_norm": True},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1}})
    return api.train(config)


def count_block_reads(monkeypatch) -> list:
    """Make streamed files read a chunk at a time; the list gets an entry for each read."""
    import hepdl.data.streaming as streaming

    calls = []
    original = streaming.EventFiles.read_block
    monkeypatch.setattr(streaming.EventFiles.read_all, "__defaults__", (1,))  # a chunk a block
    monkeypatch.setattr(streaming.EventFiles, "read_block",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    return calls


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_exported_graph_has_named_inputs_a_batch_axis_metadata_and_the_scores(lcd_file,
                                                                              tmp_path):
    run = trained(lcd_file, tmp_path)
    done = export_onnx(run.path, tmp_path / "model.onnx")
    assert done.max_difference <= 1e-5 and done.events_checked == 24
    onnx = session(done.path)
    assert [i.name for i in onnx.get_inputs()] == ["ecal", "hcal"]
    assert onnx.get_inputs()[0].shape == ["batch", 25, 25, 25]
    assert [o.name for o in onnx.get_outputs()] == ["scores"]
    meta = onnx.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == ["Ele", "Gamma", "Pi0", "ChPi"]
    assert meta["hepdl_version"] and meta["task"] == "classification"
    # any batch size, raw inputs in, probabilities out: the preprocessing is inside
    test = load_splits(run.config.data, "classification", 1)["test"]
    for n in (1, 5):
        feed = {k: v[:n] for k, v in test.inputs.items()}
        scores = onnx.run(None, feed)[0]
        with torch.no_grad():
            expected = torch.softmax(run.network()({k: torch.from_numpy(v) for k, v in
                                                    feed.items()}), 1).numpy()
        np.testing.assert_allclose(scores, expected, atol=1e-5)
        np.testing.assert_allclose(scores.sum(1), 1, atol=1e-5)


def test_a_cnn_and_a_network_trained_on_hits_export_as_well(lcd_file, tmp_path):
    cnn = trained(lcd_file, tmp_path, name="cnn", model={
        "name": "cnn", "dims": 3, "channels": [4], "image_input": "ecal", "dense_width": 8})
    assert export_onnx(cnn.path, tmp_path / "cnn.onnx").max_difference <= 1e-5
    hits = tmp_path / "hits.h5"
    convert_to_hits(lcd_file, hits, ["ECAL", "HCAL"])
    sparse = trained(hits, tmp_path, name="hits", model={"width": 16, "depth": 2})
    assert sparse.checkpoint()["spec"]["hits_inputs"] == ["ecal", "hcal"]
    done = export_onnx(sparse.path, tmp_path / "hits.onnx")  # dense inputs in the graph
    assert done.max_difference <= 1e-5 and done.inputs["ecal"] == [25, 25, 25]


def test_only_a_completed_run_is_exported(lcd_file, tmp_path, cli):
    run = trained(lcd_file, tmp_path)
    update_meta(run.path, status="failed", reason="loss became nan at epoch 2")
    done = cli("export", run.path, "--onnx", tmp_path / "x.onnx")
    assert done.exit_code == 2 and "failed (loss became nan" in done.output
    update_meta(run.path, status="completed")
    (run.path / "model.pt").unlink()
    with pytest.raises(DataError, match="completed"):
        export_onnx(run.path, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(DataError, match="not a run directory"):
        export_onnx(tmp_path, tmp_path / "x.onnx")


def test_a_graph_that_disagrees_with_pytorch_is_not_written(lcd_file, tmp_path, monkeypatch):
    import hepdl.export.onnx as module

    run = trained(lcd_file, tmp_path)
    monkeypatch.setattr(module, "TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        export_onnx(run.path, tmp_path / "x.onnx")
    assert not list(tmp_path.glob("*x.onnx*"))


def test_export_command_prints_what_it_wrote(lcd_file, tmp_path, cli):
    run = trained(lcd_file, tmp_path)
    done = cli("export", run.path, "--onnx", tmp_path / "m.onnx", "--check-events", 5)
    assert done.exit_code == 0, done.output
    assert "inputs ecal (25, 25, 25), hcal (5, 5, 60)" in done.output
    assert "on 5 test events" in done.output
    assert Run.load(run.path).meta["status"] == "completed"


def test_predictions_of_an_hdf5_file_are_streamed_block_by_block(lcd_file, tmp_path,
                                                                 monkeypatch):
    import h5py

    from hepdl.config import DataConfig
    from hepdl.data import load_dataset
    from hepdl.evaluation.predictions import predict

    run = trained(lcd_file, tmp_path)
    chunked = tmp_path / "chunked.h5"  # the same events in HDF5 chunks of 16
    with h5py.File(lcd_file) as f, h5py.File(chunked, "w") as g:
        for key in f:
            g.create_dataset(key, data=f[key][()], chunks=(16, *f[key].shape[1:]))
    calls = count_block_reads(monkeypatch)
    out = api.predict(run.path, chunked, tmp_path / "scores.h5")
    assert len(calls) == 8  # 120 events in blocks of 16, never whole
    data = DataConfig.model_validate(run.config.data.model_dump(mode="json"))
    whole = predict(run.network(), load_dataset(data, "classification"))
    with h5py.File(out) as f:
        scores = np.stack([f[f"score_{name}"][()] for name in whole.class_names], 1)
        np.testing.assert_array_equal(f["label"][()], whole.labels)
    np.testing.assert_allclose(scores, whole.scores, atol=1e-6)


def test_prediction_input_without_a_model_input_or_of_another_shape(lcd_file, tmp_path, cli):
    import h5py

    run = trained(lcd_file, tmp_path)
    with h5py.File(lcd_file) as f, h5py.File(tmp_path / "no_hcal.h5", "w") as g:
        for key in ("ECAL", "target", "index"):
            f.copy(f[key], g, name=key)
        g["HCAL_other"] = f["HCAL"][()]
    done = cli("predict", run.path, "--input", tmp_path / "no_hcal.h5", "--output",
               tmp_path / "s.csv")
    assert done.exit_code == 2 and "HCAL" in done.output
    with h5py.File(lcd_file) as f, h5py.File(tmp_path / "small.h5", "w") as g:
        for key in ("target", "index"):
            f.copy(f[key], g, name=key)
        g["ECAL"] = f["ECAL"][:, :20]  # 20 of the 25 layers
        g["HCAL"] = f["HCAL"][()]
    done = cli("predict", run.path, "--input", tmp_path / "small.h5", "--output",
               tmp_path / "s.csv")
    assert done.exit_code == 2 and "(25, 25, 25)" in done.output
    assert not (tmp_path / "s.csv").exists()


def test_an_unlabelled_hdf5_file_is_scored_block_by_block(h5_file, tmp_path, monkeypatch):
    import h5py

    from tests.conftest import blobs, small_config

    config = small_config(tmp_path, data={"source": {
        "kind": "hdf5", "path": str(h5_file), "inputs": {"x": "features"},
        "label": "Event/label", "observers": {"energy": "Event/energy"}}},
        preprocess={"x": ["standardize"]}, train={"epochs": 1})
    run = api.train(config_from_dict(config))
    features, _, energy = blobs(100, seed=9)
    unlabelled = tmp_path / "data.h5"  # what the detector recorded: no truth label
    with h5py.File(unlabelled, "w") as f:
        f.create_dataset("features", data=features, chunks=(10, 4))
        f["Event/energy"] = energy
    calls = count_block_reads(monkeypatch)
    out = api.predict(run.path, unlabelled, tmp_path / "scores.h5")
    assert len(calls) == 10  # 100 events in blocks of 10, never whole
    expected = run.predict({"x": features})
    with h5py.File(out) as f:
        assert "label" not in f
        np.testing.assert_allclose(f["score_1"][()], expected[:, 1], atol=1e-6)
        np.testing.assert_array_equal(f["energy"][()], energy)
    # a glob of labelled and unlabelled files: scores of every event, without labels
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.h5").write_bytes(h5_file.read_bytes())
    (mixed / "b.h5").write_bytes(unlabelled.read_bytes())
    out = api.predict(run.path, mixed / "*.h5", tmp_path / "mixed.h5")
    with h5py.File(out) as f:
        assert "label" not in f and len(f["score_1"]) == 400 + 100


def test_predictions_of_ntuples_label_by_the_runs_classes(tmp_path, blob_arrays, monkeypatch):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import small_config, write_table

    table = write_table(tmp_path / "train.parquet", *blob_arrays)
    columns = [f"x{i}" for i in range(4)]
    config = small_config(tmp_path, data={"source": {
        "kind": "table", "path": str(table), "inputs": {"x": columns}, "label": "kind",
        "observers": {"energy": "energy"}}, "in_memory": False},
        preprocess={"x": ["standardize"]}, train={"epochs": 1})
    run = api.train(config_from_dict(config), console=None)
    frame = pd.read_parquet(table)
    signal = frame[frame["kind"] == "sig"]  # a file of one class: labelled as the run's 'sig'
    pq.write_table(pa.Table.from_pandas(signal, preserve_index=False),
                   tmp_path / "sig.parquet", row_group_size=16)
    calls = count_block_reads(monkeypatch)
    out = api.predict(run.path, tmp_path / "sig.parquet", tmp_path / "sig.h5")
    assert len(calls) >= len(signal) // 16  # read block by block
    import h5py

    with h5py.File(out) as f:
        assert set(f["label"][()]) == {run.spec["class_names"].index("sig")}
        np.testing.assert_allclose(f["score_sig"][()], run.predict(
            {"x": signal[columns].to_numpy(np.float32)})[:, 1], atol=1e-6)
    # what the detector recorded has no truth; a CSV file is read whole
    signal.drop(columns="kind").to_parquet(tmp_path / "data.parquet", index=False)
    signal.to_csv(tmp_path / "sig.csv", index=False)
    with h5py.File(api.predict(run.path, tmp_path / "data.parquet", tmp_path / "d.h5")) as f:
        assert "label" not in f and len(f["score_sig"]) == len(signal)
    with h5py.File(api.predict(run.path, tmp_path / "sig.csv", tmp_path / "c.h5")) as f:
        assert set(f["label"][()]) == {run.spec["class_names"].index("sig")}
    import yaml  # a data section of its own: labelled by the run's classes too

    section = {"source": {**config["data"]["source"], "path": str(tmp_path / "sig.parquet")}}
    for order in (None, ["sig", "bkg"]):  # its own class order: labels still by name
        section["source"]["class_names"] = order
        (tmp_path / "sig.yaml").write_text(yaml.safe_dump(section))
        with h5py.File(api.predict(run.path, tmp_path / "sig.yaml", tmp_path / "y.h5")) as f:
            assert set(f["label"][()]) == {run.spec["class_names"].index("sig")}
    # a run trained on split files scores a file after its training files are gone
    import shutil

    for name in ("train", "val", "test"):
        shutil.copy(table, tmp_path / f"split_{name}.parquet")
    config["data"]["split"] = {"files": {name: str(tmp_path / f"split_{name}.parquet")
                                         for name in ("train", "val", "test")}}
    config["name"] = "split-files"
    moved = api.train(config_from_dict(config), console=None)
    (tmp_path / "split_val.parquet").unlink()
    with h5py.File(api.predict(moved.path, tmp_path / "sig.parquet", tmp_path / "m.h5")) as f:
        assert len(f["score_sig"]) == len(signal)

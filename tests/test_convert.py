"""CSV files without a header row (the UCI SUSY layout), and `hepdl data convert`: CSV to
Parquet block by block, .npz to HDF5, both then streamed."""

import gzip

import numpy as np
import pytest

import hepdl.data.convert
from hepdl.config import DataConfig
from hepdl.data import load_dataset, load_splits
from hepdl.data.convert import convert
from hepdl.data.inspect import inspect_file
from hepdl.data.streaming import load_together, streaming_splits
from hepdl.errors import DataError

from .conftest import ROOT, blobs, one_error_line

SUSY_COLUMNS = ["label", "lepton1_pt", "lepton1_eta", "lepton1_phi", "lepton2_pt",
                "lepton2_eta", "lepton2_phi", "met", "met_phi", "met_rel", "axial_met", "m_r",
                "m_tr_2", "r", "mt2", "s_r", "m_delta_r", "dphi_r_b", "cos_theta_r1"]
"""The columns of the UCI SUSY file (archive.ics.uci.edu, dataset 279), as examples/susy_uci.yaml
names them: the class first, then Baldi et al.'s 8 low-level and 10 high-level features."""


def uci_like(path, n=2_500, seed=0):
    """A header-less CSV in the UCI layout: a 1.0/0.0 class column, then 18 numbers per row,
    written with 6 significant digits (so float32 reads them back exactly)."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=(n, len(SUSY_COLUMNS))), 5)
    values[:, 0] = np.arange(n) % 2
    text = "\n".join(",".join(f"{v:.6g}" for v in row) for row in values) + "\n"
    with gzip.open(path, "wt") if path.name.endswith(".gz") else open(path, "w") as handle:
        handle.write(text)
    return values


def susy_data(path, **more) -> DataConfig:
    source = {"kind": "table", "path": str(path), "inputs": {"features": SUSY_COLUMNS[1:]},
              "label": "label", "class_names": ["WW", "chargino"]}
    if str(path).endswith((".csv", ".csv.gz")):
        source["columns"] = SUSY_COLUMNS
    return DataConfig.model_validate({"source": source, **more})


def test_a_csv_without_a_header_row_is_read_by_the_names_given(tmp_path):
    values = uci_like(tmp_path / "SUSY.csv.gz")
    dataset = load_dataset(susy_data(tmp_path / "SUSY.csv.gz"))
    assert len(dataset) == 2_500  # the first row is an event, not a header
    np.testing.assert_array_equal(dataset.inputs["features"], values[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(dataset.labels, values[:, 0].astype(int))
    assert dataset.class_names == ["WW", "chargino"]
    summaries = inspect_file(tmp_path / "SUSY.csv.gz", SUSY_COLUMNS)
    assert [s.name for s in summaries] == SUSY_COLUMNS and summaries[0].shape == (2_500,)


def test_header_mistakes_are_one_line(tmp_path):
    uci_like(tmp_path / "SUSY.csv")
    unnamed = susy_data(tmp_path / "SUSY.csv")
    unnamed.source.columns = None
    with pytest.raises(DataError, match=r"SUSY.csv: has no header row \(its first row is 0, "
                                        r".*name its columns in order with data.source.columns"):
        load_dataset(unnamed)
    too_few = susy_data(tmp_path / "SUSY.csv")
    too_few.source.columns = SUSY_COLUMNS[:-1]
    with pytest.raises(DataError, match="SUSY.csv: has 19 columns; data.source.columns names 18"):
        load_dataset(too_few)
    with pytest.raises(ValueError, match="column names must be unique"):
        DataConfig.model_validate({"source": {"kind": "table", "path": "a.csv", "inputs": {
            "x": ["a"]}, "columns": ["a", "a"]}})
    convert(tmp_path / "SUSY.csv", tmp_path / "susy.parquet", columns=SUSY_COLUMNS)
    named_parquet = susy_data(tmp_path / "susy.parquet")
    named_parquet.source.columns = SUSY_COLUMNS
    with pytest.raises(DataError, match="columns of a CSV file without a header row; a Parquet "
                                        "file names its own"):
        load_dataset(named_parquet)
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"ragged.csv: not a readable CSV file \(CSV parse error: "
                                        r"Expected 2 columns, got 1: 3\)"):
        load_dataset(DataConfig.model_validate({"source": {
            "kind": "table", "path": str(tmp_path / "ragged.csv"), "inputs": {"x": ["a"]}}}))


def test_csv_converts_to_parquet_block_by_block_and_then_streams(tmp_path, monkeypatch):
    values = uci_like(tmp_path / "SUSY.csv.gz", n=2_500)
    # blocks of 16 KiB: about 140 rows each, so row groups are cut across many blocks
    monkeypatch.setattr(hepdl.data.convert, "CSV_BLOCK_BYTES", 2**14)
    done = convert(tmp_path / "SUSY.csv.gz", tmp_path / "susy.parquet", columns=SUSY_COLUMNS,
                   row_group_rows=1_000)
    assert (done.events, done.keys, done.pieces) == (2_500, SUSY_COLUMNS, 3)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(tmp_path / "susy.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1_000, 1_000, 500]
    assert not list(tmp_path.glob(".*tmp"))
    # the same events as the CSV read in memory, now streamed row group by row group
    in_memory = load_splits(susy_data(tmp_path / "SUSY.csv.gz"), "classification", seed=3)
    streamed = streaming_splits(susy_data(tmp_path / "susy.parquet", in_memory=False),
                                "classification", seed=3)
    assert list(streamed["train"].events.chunk_rows) == [1_000]
    for name, split in load_together(streamed).items():
        np.testing.assert_array_equal(split.inputs["features"],
                                      in_memory[name].inputs["features"])
        np.testing.assert_array_equal(split.labels, in_memory[name].labels)
    whole = load_dataset(susy_data(tmp_path / "susy.parquet"))
    np.testing.assert_array_equal(whole.inputs["features"], values[:, 1:].astype(np.float32))


def test_a_conversion_that_fails_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(hepdl.data.convert, "CSV_BLOCK_BYTES", 2**10)
    rows = [f"{i},{i % 2}" for i in range(400)] + ["1.5,0"]  # an integer column turns float
    (tmp_path / "t.csv").write_text("n,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"t.csv: cannot be converted \(.*int64.*'1.5'.*\); the "
                                        r"type of each column is inferred from the first"):
        convert(tmp_path / "t.csv", tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == [tmp_path / "t.csv"]  # no output, no temporary file
    with pytest.raises(DataError, match=r"has no header row .* with --columns"):
        uci_like(tmp_path / "u.csv")
        convert(tmp_path / "u.csv", tmp_path / "u.parquet")
    with pytest.raises(DataError, match=r"t.csv -> .*t.h5: converts a CSV file"):
        convert(tmp_path / "t.csv", tmp_path / "t.h5")


def test_npz_converts_to_chunked_hdf5_that_streams(tmp_path, monkeypatch):
    import h5py

    features, labels, energy = blobs(3_000)
    kind = np.array(["bkg", "sig"])[labels]
    np.savez(tmp_path / "b.npz", features=features, kind=kind, energy=energy)
    monkeypatch.setattr(hepdl.data.convert, "CHUNK_BYTES", 16 * 100)  # 100 events of 4 floats
    done = convert(tmp_path / "b.npz", tmp_path / "b.h5")
    assert (done.events, done.keys, done.pieces) == (3_000, ["features", "kind", "energy"], 30)
    with h5py.File(tmp_path / "b.h5") as handle:
        assert handle["features"].chunks == (100, 4)
    source = {"kind": "hdf5", "path": str(tmp_path / "b.h5"), "inputs": {"x": "features"},
              "label": "kind", "observers": {"energy": "energy"}}
    npz = {**source, "kind": "npz", "path": str(tmp_path / "b.npz")}
    in_memory = load_splits(DataConfig.model_validate({"source": npz}), "classification", 2)
    streamed = load_together(streaming_splits(DataConfig.model_validate(
        {"source": source, "in_memory": False}), "classification", 2))
    for name, split in streamed.items():
        np.testing.assert_array_equal(split.inputs["x"], in_memory[name].inputs["x"])
        np.testing.assert_array_equal(split.labels, in_memory[name].labels)
        np.testing.assert_array_equal(split.observers["energy"],
                                      in_memory[name].observers["energy"])
    assert streamed["test"].class_names == ["bkg", "sig"]


def test_the_convert_command(tmp_path, cli):
    uci_like(tmp_path / "SUSY.csv.gz", n=300)
    result = cli("data", "convert", str(tmp_path / "SUSY.csv.gz"), str(tmp_path / "s.parquet"),
                 "--columns", ",".join(SUSY_COLUMNS), "--row-group-rows", "128")
    assert result.exit_code == 0, result.output
    assert "wrote 300 events of 19 columns" in result.output and "(3 row groups" in result.output
    bad = cli("data", "convert", str(tmp_path / "SUSY.csv.gz"), str(tmp_path / "t.parquet"),
              "--columns", "a,b")
    assert one_error_line(bad).endswith("SUSY.csv.gz: has 19 columns; --columns names 2")


def test_the_uci_susy_example_trains_on_a_file_of_that_layout(tmp_path, cli):
    import json

    uci_like(tmp_path / "SUSY.csv.gz", n=600)
    result = cli("train", ROOT / "examples" / "susy_uci.yaml", "--set",
                 f"data.source.path={tmp_path / 'SUSY.csv.gz'}", "--set", f"runs_dir={tmp_path}",
                 "--set", "train.epochs=1", "--set", "train.threads=1", "--set", "model.width=8",
                 "--set", "evaluate.plots=false")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "susy-uci" / "metrics.json").read_text())
    assert metrics["n_events"] == 60 and list(metrics["auc"]) == ["signal"]  # binary: one AUC
    assert len(metrics["binned"]["met"]["auc"]["signal"]) == 4


def test_csv_cells_pandas_read_as_missing_and_headers_it_read(tmp_path):
    import pandas as pd

    # pandas' default header 0,1,...: a header, as pandas read it
    frame = pd.DataFrame({"0": [1.5, 2.5, 3.5], "1": [0, 1, 0]})
    frame.to_csv(tmp_path / "numbered.csv", index=False)
    numbered = load_dataset(DataConfig.model_validate({"source": {
        "kind": "table", "path": str(tmp_path / "numbered.csv"), "inputs": {"x": ["0"]},
        "label": "1"}}))
    np.testing.assert_array_equal(numbered.inputs["x"][:, 0], [1.5, 2.5, 3.5])
    # None and <NA> are missing (NaN), as pandas read them; a text label that is missing is an
    # error, not a class
    (tmp_path / "gaps.csv").write_text("x,kind\n1.0,sig\nNone,bkg\n<NA>,sig\n2.0,\n")
    gaps = {"kind": "table", "path": str(tmp_path / "gaps.csv"), "inputs": {"x": ["x"]}}
    with pytest.raises(DataError, match=r"gaps.csv: NaN or Inf in inputs: x: 2 values in 2 "
                                        r"events \(first event 1, feature 0\)"):
        load_dataset(DataConfig.model_validate({"source": gaps}), require_labels=False)
    with pytest.raises(DataError, match="label: 1 events have no label"):
        load_dataset(DataConfig.model_validate({"source": {**gaps, "label": "kind"}}))
    # names given for a file that has a header: the header would be read as an event
    (tmp_path / "named.csv").write_text("a,b\n1.5,0\n2.5,1\n")
    with pytest.raises(DataError, match=r"named.csv: has a header row \(a, b, ...\): drop "
                                        "data.source.columns"):
        load_dataset(DataConfig.model_validate({"source": {
            "kind": "table", "path": str(tmp_path / "named.csv"), "inputs": {"x": ["a"]},
            "columns": ["a", "b"]}}))
    (tmp_path / "header_only.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="header_only.csv: has no events"):
        load_dataset(DataConfig.model_validate({"source": {
            "kind": "table", "path": str(tmp_path / "header_only.csv"), "inputs": {"x": ["a"]}}}))


def test_conversion_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(hepdl.data.convert, "CSV_BLOCK_BYTES", 2**12)
    # a ragged row after the first block: the error names it, with no word about types
    rows = [f"{i},{i % 2}" for i in range(1_000)]
    rows[900] = "7,1,3"
    (tmp_path / "ragged.csv").write_text("n,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"ragged.csv: cannot be converted \(CSV parse error: "
                                        r"Expected 2 columns, got 3: 7,1,3\)$"):
        convert(tmp_path / "ragged.csv", tmp_path / "r.parquet")
    # a type that changes after the first block: the column by name
    rows = [f"{i},{i % 2}" for i in range(1_000)] + ["1.5,0"]
    (tmp_path / "t.csv").write_text("n,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'n'.*'1.5'.*inferred from the first 0.00390625 "
                                        "MiB"):
        convert(tmp_path / "t.csv", tmp_path / "t.parquet")
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="h.csv: has no events"):
        convert(tmp_path / "h.csv", tmp_path / "h.parquet")
    with pytest.raises(DataError, match="nowhere: no such directory"):
        convert(tmp_path / "t.csv", tmp_path / "nowhere" / "t.parquet")
    with pytest.raises(DataError, match="--columns: names a column twice"):
        convert(tmp_path / "h.csv", tmp_path / "h.parquet", columns=["a", "a"])
    np.save(tmp_path / "one.npy", np.arange(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match="one.npz: is a single NumPy array, not an .npz archive"):
        convert(tmp_path / "one.npz", tmp_path / "one.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "one.npz", "ragged.csv",
                                                          "t.csv"]  # nothing half written


def test_inspect_names_the_columns_of_a_bz2_file_without_a_header(tmp_path, cli):
    import bz2

    uci_like(tmp_path / "u.csv", n=50)
    (tmp_path / "u.csv.bz2").write_bytes(bz2.compress((tmp_path / "u.csv").read_bytes()))
    result = cli("data", "inspect", tmp_path / "u.csv.bz2", "--columns", ",".join(SUSY_COLUMNS))
    assert result.exit_code == 0, result.output
    assert "cos_theta_r1" in result.output and "lepton1_pt" in result.output
    assert one_error_line(cli("data", "inspect", tmp_path / "u.csv.bz2")).endswith(
        "name its columns in order with --columns")


def test_a_run_on_a_csv_without_header_scores_its_parquet_rewrite(tmp_path, cli):
    import pandas as pd

    values = uci_like(tmp_path / "SUSY.csv.gz", n=400)
    convert(tmp_path / "SUSY.csv.gz", tmp_path / "susy.parquet", columns=SUSY_COLUMNS)
    result = cli("train", ROOT / "examples" / "susy_uci.yaml", "--set",
                 f"data.source.path={tmp_path / 'SUSY.csv.gz'}", "--set", f"runs_dir={tmp_path}",
                 "--set", "train.epochs=1", "--set", "train.threads=1", "--set", "model.width=8",
                 "--set", "evaluate.plots=false")
    assert result.exit_code == 0, result.output
    scores = {}
    for name in ("SUSY.csv.gz", "susy.parquet"):  # the run's names go to a CSV, not to Parquet
        out = tmp_path / f"scores_{name.split('.')[0]}.parquet"
        done = cli("predict", tmp_path / "susy-uci", "--input", tmp_path / name, "--output", out)
        assert done.exit_code == 0, done.output
        scores[name] = pd.read_parquet(out)
    assert len(scores["susy.parquet"]) == 400
    pd.testing.assert_frame_equal(scores["SUSY.csv.gz"], scores["susy.parquet"],
                                  check_exact=True)  # the met observer too, to the last bit
    np.testing.assert_array_equal(scores["susy.parquet"]["label"], values[:, 0])
    done = cli("evaluate", tmp_path / "susy-uci", "--input", tmp_path / "susy.parquet")
    assert done.exit_code == 0, done.output


def test_csv_inputs_are_parsed_as_float32_and_text_in_them_is_named(tmp_path):
    (tmp_path / "t.csv").write_text("kind,a,b\nsig,1.25,3\nbkg,2.5,x\n")
    source = {"kind": "table", "path": str(tmp_path / "t.csv"), "inputs": {"x": ["a", "b"]},
              "label": "kind"}
    with pytest.raises(DataError, match=r"t.csv: cannot be read as CSV \(In CSV column 'b': CSV "
                                        r"conversion error to float: invalid value 'x'\)"):
        load_dataset(DataConfig.model_validate({"source": source}))
    from hepdl.data.readers import read_arrays

    (tmp_path / "t.csv").write_text("kind,a,b\nsig,1.25,3\nbkg,2.5,4\n")
    arrays = read_arrays(DataConfig.model_validate({"source": source}).source,
                         tmp_path / "t.csv", ["a", "b", "kind"])
    assert arrays["a"].dtype == arrays["b"].dtype == np.float32  # never held as float64
    assert arrays["kind"].tolist() == ["sig", "bkg"]


def test_csv_columns_other_than_inputs_take_the_type_all_their_cells_have(tmp_path):
    from hepdl.data.readers import read_csv

    (tmp_path / "t.csv").write_text("i,f,b,s,e\n1,1.5,true,sig, 2\n2,NA,false,bkg,3 \n"
                                    "-3,2e3,True,,4\n")
    arrays = read_csv(tmp_path / "t.csv", ["i", "f", "b", "s", "e"])
    assert arrays["i"].dtype == np.int64 and arrays["i"].tolist() == [1, 2, -3]
    np.testing.assert_array_equal(arrays["f"], [1.5, np.nan, 2000.0])
    assert arrays["b"].dtype == bool and arrays["b"].tolist() == [True, False, True]
    assert arrays["s"].tolist() == ["sig", "bkg", None]
    assert arrays["e"].dtype == np.int64  # spaces around a number do not make it text
    (tmp_path / "spaced.csv").write_text("s\nsig\n sig\n")
    assert read_csv(tmp_path / "spaced.csv", ["s"])["s"].tolist() == ["sig", " sig"]  # as read
    (tmp_path / "twice.csv").write_text("a,a,b\n1,2,3\n")
    with pytest.raises(DataError, match="twice.csv: names the column 'a' twice in its header"):
        read_csv(tmp_path / "twice.csv", ["a"])


def test_float32_inputs_spare_observers_selections_and_true_false_columns(tmp_path):
    # a header-less file whose first event has an empty cell: still no header
    (tmp_path / "u.csv").write_text("1,,24.99999999,true\n0,2.5,25.00000001,false\n"
                                    "1,3.5,30.123456789,true\n")
    source = {"kind": "table", "path": str(tmp_path / "u.csv"), "columns": ["y", "a", "pt", "t"],
              "inputs": {"x": ["a", "pt", "t"]}, "label": "y", "observers": {"pt": "pt"},
              "select": {"pt": [[25.0, None]]}}
    dataset = load_dataset(DataConfig.model_validate({"source": source}))
    # the selection and the observer see pt as written (float32 would round 24.99999999 to 25)
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset.observers["pt"], [25.00000001, 30.123456789])
    # a column of true/false is an input of 1 and 0, as pandas read it
    np.testing.assert_array_equal(dataset.inputs["x"][:, 2], [0.0, 1.0])
    np.testing.assert_array_equal(dataset.inputs["x"][:, 0], [2.5, 3.5])


def test_inspecting_a_truncated_gzip_is_one_line(tmp_path, monkeypatch, cli):
    import hepdl.data.inspect

    uci_like(tmp_path / "SUSY.csv.gz", n=2_500)
    data = (tmp_path / "SUSY.csv.gz").read_bytes()
    (tmp_path / "cut.csv.gz").write_bytes(data[:len(data) // 2])
    monkeypatch.setattr(hepdl.data.inspect, "CSV_BLOCK_BYTES", 2**12)  # the cut comes later
    line = one_error_line(cli("data", "inspect", tmp_path / "cut.csv.gz", "--columns",
                              ",".join(SUSY_COLUMNS)))
    assert line.endswith("cut.csv.gz: cannot be read as CSV (Truncated compressed stream)")

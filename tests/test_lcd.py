"""LCD calorimeter readers: every key layout reads to the same events; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hepdl.config import DataConfig, LcdSource, config_from_dict
from hepdl.data import load_dataset, load_splits
from hepdl.data.lcd import CLASS_ORDER, class_from_file_name, read_lcd, scan_lcd
from hepdl.errors import ConfigError, DataError, KeyNotFoundError

PARTICLES = {"Ele": 11, "Gamma": 22, "Pi0": 111, "ChPi": 211}
ECAL, HCAL = (25, 25, 25), (5, 5, 60)


def particle_events(name: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """Sparse random calorimeter images and truth of ``n`` events of one particle."""
    rng = np.random.default_rng(seed)
    ecal = (rng.exponential(1.0, (n, *ECAL)) * (rng.random((n, *ECAL)) < 0.02)).astype(np.float32)
    hcal = (rng.exponential(1.0, (n, *HCAL)) * (rng.random((n, *HCAL)) < 0.05)).astype(np.float32)
    sign = rng.choice([-1, 1], n) if name in ("Ele", "ChPi") else np.ones(n, int)
    truth = {"energy": rng.uniform(10, 510, n), "px": rng.normal(size=n),
             "py": rng.normal(size=n), "pz": rng.normal(size=n),
             "pdgID": (sign * PARTICLES[name]).astype(float)}
    target = np.stack([truth[c] for c in ("energy", "px", "py", "pz", "pdgID")], 1)[:, None, :]
    return {"ECAL": ecal, "HCAL": hcal, "target": target, **truth}


def write_layout(folder: Path, layout: str, events: dict[str, dict], **dataset_options) -> list:
    """Write ``{particle: events}`` in one LCD layout; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "merged":
        path = folder / "merged.h5"
        joined = {k: np.concatenate([e[k] for e in events.values()]) for k in
                  ("ECAL", "HCAL", "target")}
        index = np.concatenate([np.full(len(e["ECAL"]), CLASS_ORDER.index(name))
                                for name, e in events.items()])
        with h5py.File(path, "w") as f:
            for key, value in joined.items():
                f.create_dataset(key, data=value, compression="gzip",
                                 chunks=(min(2048, len(value)), *value.shape[1:]))
            f["index"] = index
            f["OneHot"] = np.eye(4)[index]
        return [path]
    paths = []
    for name, e in events.items():
        path = folder / f"{name}Escan_1_2.h5"
        with h5py.File(path, "w") as f:
            if layout == "v4":
                f.create_dataset("ECAL/ECAL", data=e["ECAL"], **dataset_options)
                f["HCAL/HCAL"] = e["HCAL"]
                for key in ("energy", "px", "py", "pz", "pdgID"):
                    f[f"Event/{key}"] = e[key]
            else:
                f.create_dataset("ECAL", data=e["ECAL"], **dataset_options)
                f["HCAL"] = e["HCAL"]
                f["target"] = e["target"]
                if layout in ("v2", "v3"):
                    f["pdgID"] = e["pdgID"].astype(np.int32)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def events() -> dict[str, dict]:
    return {name: particle_events(name, 6, seed) for seed, name in enumerate(PARTICLES)}


def lcd(**source) -> DataConfig:
    return DataConfig.model_validate({"source": {"kind": "lcd", **source}})


@pytest.mark.parametrize("layout", ["v1", "v2", "v3", "v4", "merged"])
def test_every_layout_reads_the_same_events(tmp_path, events, layout):
    files = write_layout(tmp_path, layout, events)
    data = lcd(layout=layout, files=[str(f) for f in files], observers=["energy", "pdgID"])
    dataset = load_dataset(data)
    assert dataset.class_names == ["Ele", "Gamma", "Pi0", "ChPi"]
    np.testing.assert_array_equal(dataset.labels, np.repeat(np.arange(4), 6))
    assert dataset.labels.dtype == np.int64
    for name, key in (("ecal", "ECAL"), ("hcal", "HCAL")):
        expected = np.concatenate([e[key] for e in events.values()])
        assert dataset.inputs[name].dtype == np.float32
        np.testing.assert_array_equal(dataset.inputs[name], expected)
    for name in ("energy", "pdgID"):
        expected = np.concatenate([e[name] for e in events.values()])
        np.testing.assert_array_equal(dataset.observers[name], expected)
    assert dataset.input_shapes == {"ecal": ECAL, "hcal": HCAL}


def test_read_lcd_returns_the_documented_arrays(tmp_path, events):
    files = write_layout(tmp_path, "v2", events)
    out = read_lcd(LcdSource(kind="lcd", layout="v2", files=[str(f) for f in files],
                             inputs=["hcal"], observers=["energy", "px"]))
    assert set(out) == {"inputs", "labels", "observers", "class_names"}
    assert set(out["inputs"]) == {"hcal"} and out["inputs"]["hcal"].shape == (24, *HCAL)
    assert set(out["observers"]) == {"energy", "px"}


def test_v1_class_from_file_names_or_from_dict_keys(tmp_path, events):
    subset = {name: events[name] for name in ("Pi0", "Ele")}
    write_layout(tmp_path, "v1", subset)
    by_name = load_dataset(lcd(layout="v1", files=str(tmp_path / "*Escan_*.h5")))
    assert by_name.class_names == ["Ele", "Pi0"]  # the LCD order, whatever the file order
    # glob order: EleEscan before Pi0Escan
    np.testing.assert_array_equal(by_name.labels, np.repeat([0, 1], 6))
    np.testing.assert_array_equal(by_name.inputs["ecal"][:6], events["Ele"]["ECAL"])

    by_key = load_dataset(lcd(layout="v1", files={
        "pizero": str(tmp_path / "Pi0Escan_1_2.h5"), "electron": [str(tmp_path / "Ele*.h5")]}))
    assert by_key.class_names == ["pizero", "electron"]
    np.testing.assert_array_equal(by_key.labels, np.repeat([0, 1], 6))
    np.testing.assert_array_equal(by_key.inputs["hcal"][:6], events["Pi0"]["HCAL"])

    ordered = load_dataset(lcd(layout="v1", files=str(tmp_path / "*.h5"),
                               class_names=["Pi0", "Gamma", "Ele"]))
    assert ordered.class_names == ["Pi0", "Gamma", "Ele"]
    np.testing.assert_array_equal(ordered.labels, np.repeat([2, 0], 6))
    assert class_from_file_name(Path("data/ChPiEscan_3_7.h5")) == "ChPi"


def test_target_column_order_is_an_option(tmp_path, events):
    e = dict(events["Gamma"])
    e["target"] = e["target"][:, :, [4, 0, 1, 2, 3]]  # pdgID first, as in another version
    write_layout(tmp_path, "v1", {"Gamma": e, "Ele": events["Ele"]})
    (tmp_path / "EleEscan_1_2.h5").unlink()
    path = str(tmp_path / "GammaEscan_1_2.h5")
    columns = ["pdgID", "energy", "px", "py", "pz"]
    dataset = load_dataset(lcd(layout="v1", files=path, target_columns=columns,
                               observers=["energy", "pdgID"]))
    np.testing.assert_array_equal(dataset.observers["energy"], e["energy"])
    np.testing.assert_array_equal(dataset.observers["pdgID"], np.full(6, 22.0))
    default = load_dataset(lcd(layout="v1", files=path))
    np.testing.assert_array_equal(default.observers["energy"], np.full(6, 22.0))


def test_merged_class_names_can_be_overridden(tmp_path, events):
    (path,) = write_layout(tmp_path, "merged", events)
    dataset = load_dataset(lcd(layout="merged", files=str(path),
                               class_names=["e", "Gamma", "Pi0", "ChPi"]))
    assert dataset.class_names == ["e", "Gamma", "Pi0", "ChPi"]
    with pytest.raises(DataError, match=r"merged.h5:index: class index 2 at event 12 is out of "
                                        r"range for the class names \['a', 'b'\]"):
        load_dataset(lcd(layout="merged", files=str(path), class_names=["a", "b"]))
    with h5py.File(path, "a") as f:
        del f["index"]
    np.testing.assert_array_equal(load_dataset(lcd(layout="merged", files=str(path))).labels,
                                  np.repeat(np.arange(4), 6))  # from OneHot


def test_unknown_particle_id(tmp_path, events):
    e = dict(events["Pi0"])
    e["pdgID"] = e["pdgID"].copy()
    e["pdgID"][3] = 13
    write_layout(tmp_path, "v2", {"Pi0": e})
    with pytest.raises(DataError, match=r"Pi0Escan_1_2.h5:pdgID: particle id 13 at event 3 is "
                                        r"not one of 11 \(Ele\), 22 \(Gamma\)"):
        load_dataset(lcd(layout="v2", files=str(tmp_path / "*.h5")))


# --------------------------------------------------------------------------- bad input


def test_corrupt_and_truncated_files_are_one_line(tmp_path, events):
    bad = tmp_path / "EleEscan_bad.h5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match=r"EleEscan_bad.h5: not a readable HDF5 file"):
        load_dataset(lcd(layout="v1", files=str(bad)))

    (path,) = write_layout(tmp_path / "t", "v1", {"Ele": events["Ele"]})
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(DataError, match=r"EleEscan_1_2.h5: not a readable HDF5 file.*truncated"):
        load_dataset(lcd(layout="v1", files=str(path)))


def test_damaged_chunk_is_a_data_error(tmp_path, events):
    # a file that opens but whose compressed ECAL bytes were never fully written
    (path,) = write_layout(tmp_path, "v2", {"Gamma": events["Gamma"]}, compression="gzip",
                           chunks=(2, *ECAL))
    with h5py.File(path, "r") as f:
        info = f["ECAL"].id.get_chunk_info(1)
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset)
        handle.write(b"\xff" * info.size)
    with pytest.raises(DataError, match=r"GammaEscan_1_2.h5:ECAL: cannot be read .*truncated"):
        load_dataset(lcd(layout="v2", files=str(path)))


def test_missing_key_lists_nearest_first(tmp_path, events):
    (path,) = write_layout(tmp_path, "v1", {"Ele": events["Ele"]})
    with pytest.raises(KeyNotFoundError, match=r"EleEscan_1_2.h5: no dataset 'pdgID'; the file "
                                               r"has 'ECAL', 'HCAL', 'target'"):
        load_dataset(lcd(layout="v2", files=str(path)))
    with pytest.raises(KeyNotFoundError, match=r"no dataset 'ECAL/ECAL'; the file has 'ECAL'"):
        load_dataset(lcd(layout="v4", files=str(path)))
    with h5py.File(path, "a") as f:
        del f["target"]
    with pytest.raises(KeyNotFoundError, match=r"no dataset 'target'"):
        load_dataset(lcd(layout="v1", files=str(path)))


def test_shapes_differing_between_files(tmp_path, events):
    small = dict(events["Gamma"])
    small["ECAL"] = small["ECAL"][:, :20]
    write_layout(tmp_path, "v1", {"Ele": events["Ele"], "Gamma": small})
    with pytest.raises(DataError, match=r"ECAL: event shape differs between files: "
                                        r"EleEscan_1_2.h5 \(25, 25, 25\), "
                                        r"GammaEscan_1_2.h5 \(20, 25, 25\)"):
        load_dataset(lcd(layout="v1", files=str(tmp_path / "*.h5")))


def test_events_differing_between_keys_and_short_target(tmp_path, events):
    (path,) = write_layout(tmp_path, "v1", {"Ele": events["Ele"]})
    with h5py.File(path, "a") as f:
        del f["HCAL"]
        f["HCAL"] = events["Ele"]["HCAL"][:5]
    with pytest.raises(DataError, match=r"keys hold different numbers of events: ECAL 6, HCAL 5"):
        load_dataset(lcd(layout="v1", files=str(path)))
    with pytest.raises(DataError, match=r"target: has 5 columns; data.source.target_columns "
                                        r"puts 'pz' in column 6"):
        load_dataset(lcd(layout="v1", files=str(path), inputs=["ecal"], observers=["pz"],
                         target_columns=["a", "b", "c", "d", "e", "f", "pz"]))


def test_class_not_in_the_file_name(tmp_path, events):
    (path,) = write_layout(tmp_path, "v1", {"Ele": events["Ele"]})
    path = path.rename(tmp_path / "electrons_1.h5")
    with pytest.raises(DataError, match=r"electrons_1.h5: cannot tell the particle from the file "
                                        r"name; expected <Class>Escan\*.h5"):
        load_dataset(lcd(layout="v1", files=str(path)))
    with pytest.raises(DataError, match=r"class 'Ele' is not in data.source.class_names"):
        load_dataset(lcd(layout="v1", files={"Ele": str(path)}, class_names=["Gamma", "Pi0"]))


@pytest.mark.parametrize("source, match", [
    ({"layout": "v5", "files": "a.h5"},
     r"data\.source\.layout: Input should be 'v1', 'v2', 'v3', 'v4' or 'merged'"),
    ({"layout": "v1", "files": "a.h5", "inputs": ["ecal", "tracker"]},
     r"data\.source\.inputs\.1: Input should be 'ecal' or 'hcal'"),
    ({"layout": "v1", "files": "a.h5", "observers": ["pt"]}, r"observers\.0: Input should be"),
    ({"layout": "v1", "files": "a.h5", "target_columns": ["energy", "px"],
      "observers": ["pz"]}, r"observer 'pz' is not one of the target_columns"),
    ({"layout": "v1", "files": {}}, r"files: .*at least one file"),
])
def test_bad_lcd_config(tmp_path, source, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"data": {"source": {"kind": "lcd", **source}}})


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"GammaEscan_\*.h5: no file matches"):
        scan_lcd(LcdSource(kind="lcd", layout="v1", files=str(tmp_path / "GammaEscan_*.h5")))


# --------------------------------------------------------------------------- end to end


def test_training_on_lcd_files(tmp_path):
    from hepdl.training import fit

    two = {name: particle_events(name, 20, seed) for seed, name in enumerate(["Ele", "ChPi"])}
    for e in two.values():  # something to learn: the pions leave more in the HCAL
        e["HCAL"] *= 3 if e["pdgID"][0] in (211, -211) else 1
    write_layout(tmp_path / "data", "v1", two)
    config = config_from_dict({
        "name": "lcd", "seed": 2, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "lcd", "layout": "v1",
                            "files": {"Ele": str(tmp_path / "data/Ele*.h5"),
                                      "ChPi": str(tmp_path / "data/ChPi*.h5")}},
                 "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
        "model": {"width": 16, "depth": 1},
        "train": {"epochs": 1, "batch_size": 8, "threads": 1},
    })
    run = fit(config)
    assert (run / "model.pt").is_file() and (run / "history.csv").is_file()
    splits = load_splits(config.data, config.task, config.seed)
    assert splits["train"].class_names == ["Ele", "ChPi"]
    assert [len(splits[k]) for k in ("train", "val", "test")] == [24, 8, 8]


def test_energy_regression_on_generated_files_in_memory_and_streamed(tmp_path):
    import h5py

    from hepdl.generate.calo import make_calo
    from hepdl.training import fit

    make_calo(tmp_path / "calo.h5", 160, seed=5, block_size=64)
    runs = {}
    for in_memory in (True, False):
        runs[in_memory] = fit(config_from_dict({
            "name": f"energy_{in_memory}", "seed": 2, "runs_dir": str(tmp_path / "runs"),
            "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(tmp_path / "calo.h5")},
                     "in_memory": in_memory},
            "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
            "model": {"width": 16, "depth": 1},
            "train": {"loss": "mse", "epochs": 2, "batch_size": 16, "threads": 1}}))
    with h5py.File(tmp_path / "calo.h5") as f:
        energy = f["target"][:, 0, 0]
    splits = load_splits(config_from_dict({"data": {"source": {
        "kind": "lcd", "layout": "v2", "files": str(tmp_path / "calo.h5")}},
        "train": {"loss": "mse"}}).data, "regression", 2)
    assert np.isin(splits["test"].labels, energy).all()  # the target is the particle energy
    state = {k: torch.load(run / "model.pt", weights_only=True)["model"] for k, run in runs.items()}
    torch.testing.assert_close(state[True]["preprocess.ecal.0.mean_"],
                               state[False]["preprocess.ecal.0.mean_"])
    with pytest.raises(ConfigError, match="add 'energy'"):
        load_splits(config_from_dict({"data": {"source": {
            "kind": "lcd", "layout": "v2", "files": str(tmp_path / "calo.h5"), "observers": []}},
            "train": {"loss": "mse"}}).data, "regression", 2)


def test_scalars_such_as_the_energy_are_model_inputs(tmp_path):
    from hepdl.generate.calo import make_calo

    make_calo(tmp_path / "calo.h5", 64, seed=6, block_size=64)
    data = DataConfig.model_validate({"source": {
        "kind": "lcd", "layout": "v2", "files": str(tmp_path / "calo.h5"),
        "scalar_inputs": ["energy"]}})
    dataset = load_dataset(data)
    assert dataset.input_shapes == {"ecal": (25, 25, 25), "hcal": (5, 5, 60), "energy": (1,)}
    np.testing.assert_allclose(dataset.inputs["energy"][:, 0], dataset.observers["energy"],
                               rtol=1e-6)
    with pytest.raises(ConfigError, match="scalar_inputs need in_memory: true"):
        config_from_dict({"data": {**data.model_dump(mode="json"), "in_memory": False}})

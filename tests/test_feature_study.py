"""The feature-set study: network and BDT on the same splits, one table row per set."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from hepdl.config import StudyConfig, config_from_dict
from hepdl.errors import ConfigError
from hepdl.feature_study import run_feature_study

from .conftest import write_config


def susy_like(path, n=3000, seed=0):
    """Columns a, b carry the signal only through a product (a*b > 0), which a 'high-level'
    column ab = a*b gives away; c is noise."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    label = (a * b + 0.3 * rng.normal(size=n) > 0).astype(int)
    np.savez(path, a=a, b=b, c=c, ab=a * b, label=label)
    return path


def config(tmp_path, sets):
    return {"name": "fs", "seed": 2, "runs_dir": str(tmp_path / "runs"),
            "data": {"source": {"kind": "npz", "path": str(susy_like(tmp_path / "d.npz")),
                                "inputs": {"x": ["a", "b", "c"]}, "label": "label"}},
            "preprocess": {"x": ["standardize"]}, "model": {"width": 32, "depth": 2},
            "train": {"epochs": 6, "batch_size": 64, "threads": 1},
            "study": {"feature_sets": sets}}


def test_each_set_gives_network_and_bdt_auc_on_the_same_test_events(tmp_path):
    sets = {"noise": ["c"], "high": ["ab"], "low": ["a", "b"]}
    result = run_feature_study(config_from_dict(config(tmp_path, sets)), n_boot=20)
    rows = {r["features"]: r for r in result["rows"]}
    assert list(rows) == ["noise", "high", "low"]
    assert rows["noise"]["network_auc"] < 0.6 and rows["noise"]["bdt_auc"] < 0.6
    assert rows["high"]["network_auc"] > 0.9 and rows["high"]["bdt_auc"] > 0.9
    assert rows["low"]["network_auc"] > 0.85  # the network finds the product itself
    for row in rows.values():
        d = row["network_minus_bdt"]
        assert d["difference"] == pytest.approx(row["network_auc"] - row["bdt_auc"])
        assert 0 < row["network_auc_error"] < 0.05 and d["error"] > 0
        assert row["test_events"] == 450  # 15% of 3000, the same events for both
    saved = json.loads((tmp_path / "runs" / "fs" / "features.json").read_text())
    assert saved["rows"] == result["rows"]
    assert "| high (1) |" in (tmp_path / "runs" / "fs" / "table.md").read_text()


def test_study_section_needs_a_grid_or_feature_sets(tmp_path, cli):
    with pytest.raises(ValidationError, match="grid .* or feature_sets"):
        StudyConfig.model_validate({})
    raw = config(tmp_path, {"low": ["a", "b"]})
    raw["data"]["source"]["inputs"] = {"x": ["a"], "y": ["b"]}
    with pytest.raises(ConfigError, match="exactly one input"):
        run_feature_study(config_from_dict(raw))
    path = write_config(tmp_path / "fs.yaml", config(tmp_path, {"low": ["a", "b"]}))
    result = cli("study", "normalization", path)
    assert result.exit_code == 2 and "no study grid" in result.output

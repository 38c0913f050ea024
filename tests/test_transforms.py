"""Every normalization against a direct numpy computation, through save/load, fitted on train."""

import numpy as np
import pytest
import torch

from hepdl.errors import ConfigError, DataError
from hepdl.preprocess import build_chain, build_transform

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(500, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 50.0, 2.0, 30.0]
CELLS = np.where(RNG.random((300, 3, 4, 5)) < 0.2, RNG.exponential(5.0, (300, 3, 4, 5)), 0.0)


def make(spec, data):
    transform = build_transform(spec, data.shape[1:], "preprocess.x[0]")
    return transform.fit(torch.tensor(data, dtype=torch.float32))


def numpy_cases():
    f, c = FEATURES, CELLS
    q99 = np.quantile(c[c != 0], 0.99)
    med, q25, q75 = np.median(f, 0), np.quantile(f, 0.25, 0), np.quantile(f, 0.75, 0)
    shared = f.std(0)
    shared[[0, 3]] = np.sqrt((f[:, [0, 3]].var(0)).mean())
    l1 = np.abs(c).reshape(len(c), -1).sum(1)[:, None, None, None]
    l2 = np.sqrt((c**2).reshape(len(c), -1).sum(1))[:, None, None, None]
    mx = np.abs(c).reshape(len(c), -1).max(1)[:, None, None, None]
    return [
        ({"divide": {"by": 150.0}}, c, c / 150),
        ({"divide": {"by": "max"}}, c, c / c.max()),
        ({"divide": {"by": "quantile", "q": 0.99}}, c, c / q99),
        ("minmax", f, (f - f.min(0)) / (f.max(0) - f.min(0))),
        ("robust", f, (f - med) / (q75 - q25)),
        ({"shared_scale": {"groups": [[0, 3]]}}, f, (f - f.mean(0)) / shared),
        ({"log": {"offset": -5.0}}, f[:, 1:2], np.log(f[:, 1:2] + 5.0)),
        ({"log1p": {"scale": 2.0}}, c, np.log1p(c / 2.0)),
        ({"image_norm": {"norm": "l1"}}, c, c / np.where(l1 > 0, l1, 1)),
        ({"image_norm": {"norm": "l2"}}, c, c / np.where(l2 > 0, l2, 1)),
        ({"image_norm": {"norm": "max"}}, c, c / np.where(mx > 0, mx, 1)),
        ("nonlinear_log_tanh", c, np.tanh(np.log(c + 1) / 2)),
        ("learnable_log_tanh", c, np.tanh(np.log(c + 1) / 2)),  # starts as the nonlinear one
        ("standardize", f, (f - f.mean(0)) / f.std(0)),
    ]


@pytest.mark.parametrize("spec, data, expected", numpy_cases(),
                         ids=lambda v: str(v)[:30] if not isinstance(v, np.ndarray) else "")
def test_transform_matches_numpy_and_survives_save_load(spec, data, expected):
    transform = make(spec, data)
    x = torch.tensor(data, dtype=torch.float32)
    np.testing.assert_allclose(transform(x).detach().numpy(), expected, rtol=2e-4, atol=2e-5)
    again = build_transform(spec, data.shape[1:], "preprocess.x[0]")
    again.load_state_dict(transform.state_dict())
    torch.testing.assert_close(again(x), transform(x))
    try:  # where an inverse exists it undoes the transform
        back = transform.inverse_transform(transform(x)).detach().numpy()
    except NotImplementedError:
        return
    np.testing.assert_allclose(back, data, rtol=1e-3, atol=1e-3)


def test_pca_matches_scikit_learn_and_whitens():
    from sklearn.decomposition import PCA

    x = torch.tensor(FEATURES, dtype=torch.float32)
    ours = make({"pca": {"whiten": True}}, FEATURES)
    theirs = PCA(whiten=True).fit(FEATURES)
    np.testing.assert_allclose(np.abs(ours(x).numpy()), np.abs(theirs.transform(FEATURES)),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.cov(ours(x).numpy().T), np.eye(4), atol=1e-2)
    plain = make("pca", FEATURES)
    np.testing.assert_allclose(plain.inverse_transform(plain(x)).numpy(), FEATURES, atol=1e-3)


def test_streamed_fit_equals_whole_fit():
    x = torch.tensor(CELLS, dtype=torch.float32)
    for spec in ({"divide": {"by": "max"}}, "minmax"):
        whole = make(spec, CELLS)
        chunked = build_transform(spec, CELLS.shape[1:], "p")
        chunked.reset()
        for part in torch.split(x, 70):
            chunked.partial_fit(part)
        torch.testing.assert_close(chunked(x), whole(x))


def test_the_learnable_normalization_trains():
    chain = build_chain(["learnable_log_tanh"], (4,), "preprocess.x").fit(torch.zeros(1, 4))
    params = dict(chain.named_parameters())
    assert set(params) == {"0.slope", "0.log_scale", "0.offset"}
    x = torch.rand(64, 4) * 50
    loss = (chain(x) - 0.9).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_bad_options_and_bad_data():
    with pytest.raises(ConfigError, match="bad options"):
        build_transform({"divide": {"by": "median"}}, (3,), "preprocess.x[0]")
    with pytest.raises(ConfigError, match="bad options"):
        build_transform({"image_norm": {"norm": "l3"}}, (3,), "preprocess.x[0]")
    with pytest.raises(ConfigError, match="bad options"):
        build_transform({"shared_scale": {"groups": [[0, 9]]}}, (3,), "preprocess.x[0]")
    with pytest.raises(DataError, match=r"at or below the offset 20"):
        make({"log": {"offset": 20.0}}, np.array([[10.0], [30.0]]))


FITTED = ["standardize", "minmax", "robust", {"divide": {"by": "max"}},
          {"divide": {"by": "quantile", "q": 0.9}}, {"shared_scale": {"groups": [[0, 1]]}},
          "pca", {"pca": {"whiten": True}}]


def trained(tmp_path, chain):
    """Train one quick run with ``chain`` on x; return its checkpoint, the training split's x
    and all of x."""
    from hepdl.config import config_from_dict
    from hepdl.data import load_splits
    from hepdl.training import fit

    data = np.abs(FEATURES).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=data, y=(data[:, 0] > 1).astype(int))
    config = config_from_dict({
        "name": "fit", "seed": 4, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "npz", "path": str(tmp_path / "d.npz"), "inputs": {"x": "x"},
                            "label": "y"}},
        "preprocess": {"x": chain}, "model": {"width": 4, "depth": 1},
        "train": {"epochs": 1, "threads": 1, "lr": 1e-9}})
    checkpoint = torch.load(fit(config) / "model.pt", weights_only=True)
    train = load_splits(config.data, "classification", 4)["train"].inputs["x"]
    return checkpoint, train, data


@pytest.mark.parametrize("spec", FITTED, ids=str)
def test_each_transform_is_fitted_on_the_training_split_only(tmp_path, spec):
    from hepdl.models import Network

    checkpoint, train, data = trained(tmp_path, [spec])
    network = Network(checkpoint["spec"])
    network.load_state_dict(checkpoint["model"])
    on_train, on_all = make(spec, train), make(spec, data)
    x = torch.tensor(data)
    torch.testing.assert_close(network.preprocess["x"](x), on_train(x))
    assert not torch.allclose(on_all(x), on_train(x), atol=1e-6)  # the splits do differ


def test_a_chain_fits_each_transform_on_the_output_of_the_ones_before(tmp_path):
    checkpoint, train, data = trained(tmp_path, [{"divide": {"by": "max"}}, "minmax"])
    state = checkpoint["model"]
    assert float(state["preprocess.x.0.scale_"]) == pytest.approx(train.max())
    assert train.max() < data.max()  # the test or val split holds the largest value
    np.testing.assert_allclose(state["preprocess.x.1.max_"].numpy(),
                               (train / train.max()).max(0), rtol=1e-6)


def test_quantile_uses_every_value():
    ones, hundreds = torch.ones(2**14, 1024), torch.full((2**14, 1024), 100.0)
    t = build_transform({"divide": {"by": "quantile", "q": 0.99}}, (1024,), "p")
    t.fit(torch.cat([ones, hundreds]))
    assert float(t.scale_) == pytest.approx(100.0)

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from hepdl.errors import ConfigError, DataError
from hepdl.preprocess import build_chain, build_transform
from hepdl.preprocess.base import fit_streaming
from hepdl.preprocess.standardize import Standardize


def sample(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) * [1, 10, 0.1, 3, 1] + [0, 100, -5, 2, 0]
    x[:, 4] = 7.0  # a constant feature, like an always-empty calorimeter cell
    return torch.tensor(x, dtype=torch.float32)


def test_standardize_matches_scikit_learn():
    x = sample()
    ours = Standardize(shape=(5,)).fit(x)
    theirs = StandardScaler().fit(x.numpy().astype(np.float64))
    np.testing.assert_allclose(ours.mean_.numpy(), theirs.mean_, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_.numpy(), theirs.scale_, rtol=1e-5)
    np.testing.assert_allclose(ours(x).numpy(), theirs.transform(x.numpy()), atol=1e-4)
    assert ours.scale_[4] == 1  # constant feature: scale 1, not a division by zero


def test_partial_fit_over_chunks_equals_fit():
    x = sample(3001)
    whole = Standardize(shape=(5,)).fit(x)
    chunked = Standardize(shape=(5,))
    for chunk in torch.split(x, 700):
        chunked.partial_fit(chunk)
    np.testing.assert_allclose(chunked.mean_.numpy(), whole.mean_.numpy(), rtol=1e-10)
    np.testing.assert_allclose(chunked.m2_.numpy(), whole.m2_.numpy(), rtol=1e-9)


def test_inverse_and_state_dict_round_trip():
    x = sample()
    t = Standardize(shape=(5,)).fit(x)
    np.testing.assert_allclose(t.inverse_transform(t(x)).numpy(), x.numpy(), rtol=1e-5, atol=1e-4)
    loaded = Standardize(shape=(5,))
    loaded.load_state_dict(t.state_dict())
    assert bool(loaded.fitted_)
    torch.testing.assert_close(loaded(x), t(x))


def test_refuses_unfitted_and_wrong_shape():
    t = Standardize(shape=(5,))
    with pytest.raises(RuntimeError, match="not fitted"):
        t(sample())
    t.fit(sample())
    with pytest.raises(DataError, match=r"expected events of shape \(5,\), got \(4,\)"):
        t(torch.zeros(3, 4))


def test_fit_resets_previous_statistics():
    t = Standardize(shape=(5,)).fit(sample(seed=1) + 50)
    t.fit(sample(seed=2))
    np.testing.assert_allclose(t.mean_.numpy(), sample(seed=2).double().mean(0).numpy(), rtol=1e-9)


def test_chain_from_config_and_unknown_names():
    chain = build_chain(["standardize"], (5,), "preprocess.x").fit(sample())
    assert abs(float(chain(sample()).mean())) < 1e-5
    with pytest.raises(ConfigError, match=r"unknown transform 'standardise'; did you mean "
                                          r"standardize\?"):
        build_transform("standardise", (5,), "preprocess.x[0]")
    with pytest.raises(ConfigError, match="bad options"):
        build_transform({"standardize": {"with_mean": False}}, (5,), "preprocess.x[0]")


def test_nonlinear_log_tanh_is_the_calodnn_formula():
    from hepdl.preprocess.nonlinear import NonlinearLogTanh

    x = torch.tensor([[-30.0, -1.0, 0.0, 0.5, 3.2, 480.4]])
    t = NonlinearLogTanh(shape=(6,)).fit(x)
    expected = np.tanh(np.sign(x.numpy()) * np.log(np.abs(x.numpy()) + 1) / 2)
    np.testing.assert_allclose(t(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(t.inverse_transform(t(x)).numpy(), x.numpy(), rtol=1e-3)
    scaled = NonlinearLogTanh(shape=(6,), scale=150.0).fit(x)
    np.testing.assert_allclose(scaled(x).numpy(), np.tanh(np.sign(x.numpy()) * np.log(
        np.abs(x.numpy()) / 150 + 1) / 2), rtol=1e-6)
    with pytest.raises(ConfigError, match="bad options"):
        build_transform({"nonlinear_log_tanh": {"scale": 0}}, (6,), "preprocess.ecal[0]")


def test_large_inputs_are_fitted_chunk_by_chunk_with_the_same_result(monkeypatch):
    import hepdl.models.network as network_module
    from hepdl.config import config_from_dict
    from hepdl.models import Network, network_spec

    config = config_from_dict({"name": "x", "data": {"source": {"kind": "digits"}},
                               "preprocess": {"x": ["standardize", "minmax"]}})
    x = sample(10_000)
    whole = Network(network_spec(config, {"x": (5,)}, ["a", "b"]))
    whole.fit_preprocessing({"x": x})
    calls = []
    monkeypatch.setattr(network_module, "CHUNKED_FIT_ABOVE", 1000)
    monkeypatch.setattr(network_module, "FIT_CHUNK_BYTES", 20 * 999)  # chunks of 999 events
    def counted(chains, chunks):
        calls.append(sum(len(chunk["x"]) == 999 for chunk in chunks()))
        return fit_streaming(chains, chunks)

    monkeypatch.setattr(network_module, "fit_streaming", counted)
    chunked = Network(network_spec(config, {"x": (5,)}, ["a", "b"]))
    chunked.fit_preprocessing({"x": x})
    assert calls == [10]  # the chunked path ran, over 10 full chunks and a short one
    for key, value in whole.preprocess.state_dict().items():
        torch.testing.assert_close(chunked.preprocess.state_dict()[key], value, rtol=1e-6,
                                   atol=1e-6)

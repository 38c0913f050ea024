import math

import pytest
import torch

from hepdl.config import MLPConfig
from hepdl.errors import ConfigError
from hepdl.models import Network, create_model, list_models, register_model
from hepdl.models.layers import initialize


def std_of_init(scheme: str, n_in=400, n_out=300) -> float:
    layer = torch.nn.Linear(n_in, n_out)
    torch.manual_seed(0)
    initialize(layer, scheme)
    assert torch.all(layer.bias == 0)
    return float(layer.weight.detach().std())


@pytest.mark.parametrize("scheme, expected", [
    ("glorot_normal", math.sqrt(2 / (400 + 300))),   # seeds/002: sqrt(2/(n_in+n_out))
    ("glorot_uniform", math.sqrt(2 / (400 + 300))),  # U(-a, a), a = sqrt(6/(n_in+n_out))
    ("he_normal", math.sqrt(2 / 400)),                # seeds/002: sqrt(2/n_in)
    ("he_uniform", math.sqrt(2 / 400)),
    ("normal", 1.0),
])
def test_initialization_widths_follow_the_formulas(scheme, expected):
    assert std_of_init(scheme) == pytest.approx(expected, rel=0.02)


def test_mlp_layers_and_output():
    config = MLPConfig(width=16, depth=3, activation="tanh", dropout=0.2, batch_norm=True)
    model = create_model(config, {"a": (2, 3), "b": (4,)}, n_outputs=5)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 16), (16, 16), (16, 16),
                                                                 (16, 5)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 3
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 3
    out = model({"a": torch.zeros(7, 2, 3), "b": torch.zeros(7, 4)})
    assert out.shape == (7, 5)


def test_registry_refuses_duplicates_and_suggests_names():
    assert "mlp" in list_models()
    with pytest.raises(ValueError, match="registered twice"):
        register_model("mlp")(lambda *a: None)

    class Fake:
        name = "mpl"

    with pytest.raises(ConfigError, match="unknown model 'mpl'; did you mean mlp"):
        create_model(Fake(), {"a": (1,)}, 2)


def test_network_keeps_preprocessing_in_its_state_dict():
    spec = {"input_shapes": {"x": [3]}, "n_outputs": 2, "class_names": ["a", "b"],
            "task": "classification", "loss": "cross_entropy",
            "preprocess": {"x": ["standardize"]}, "model": {"name": "mlp", "width": 8, "depth": 1}}
    network = Network(spec)
    network.fit_preprocessing({"x": torch.randn(100, 3) * 4 + 9})
    state = network.state_dict()
    assert "preprocess.x.0.mean_" in state and "preprocess.x.0.scale_" in state
    again = Network(spec)
    again.load_state_dict(state)
    x = {"x": torch.randn(5, 3)}
    torch.testing.assert_close(again.eval()(x), network.eval()(x))


def cnn_config(**fields):
    from hepdl.config import CNNConfig

    return CNNConfig(name="cnn", **fields)


def test_3d_cnn_on_the_ecal_volume_with_the_hcal_merged():
    config = cnn_config(channels=[4, 8], dims=3, dense_width=16)
    model = create_model(config, {"ecal": (25, 25, 25), "hcal": (5, 5, 60)}, n_outputs=4)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8)]
    # 25 -> 13 -> 7 after two ceil-mode poolings: 8 x 7^3 features, plus the 1500 HCAL cells
    assert model.head[0].in_features == 8 * 7**3 + 5 * 5 * 60
    out = model({"ecal": torch.randn(3, 25, 25, 25), "hcal": torch.randn(3, 5, 5, 60)})
    assert out.shape == (3, 4)


def test_2d_cnn_of_seeds_003_with_max_and_average_pooling():
    config = cnn_config(channels=[64, 64, 64], dims=2, batch_norm=False, global_pool="max_avg")
    model = create_model(config, {"towers": (2, 47, 47)}, n_outputs=1)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.head[0].in_features == 64 * 2  # global max and average, concatenated
    assert model({"towers": torch.randn(5, 2, 47, 47)}).shape == (5, 1)


def test_cnn_refuses_an_input_that_is_not_an_image():
    with pytest.raises(ConfigError, match=r"is not a 3D image"):
        create_model(cnn_config(dims=3), {"x": (4, 5)}, 2)
    with pytest.raises(ConfigError, match="no image input"):
        create_model(cnn_config(dims=2), {"x": (4,)}, 2)

import numpy as np
import pytest
import torch

from hepdl.config import AugmentConfig, config_from_dict
from hepdl.data import load_splits
from hepdl.errors import ConfigError
from hepdl.runs import read_meta
from hepdl.training import Interrupted, fit
from hepdl.training.augment import Mirroring, flip_events, mirror_masks

from .conftest import one_error_line, small_config, write_config


@pytest.mark.parametrize(("shape", "axis"), [((6, 5, 7), -2), ((6, 5, 7), -1),
                                             ((6, 2, 5, 7), -2), ((6, 2, 5, 7), -1),
                                             ((6, 3, 5, 7), -3)])
def test_flip_events_flips_exactly_the_masked_events_along_the_axis(shape, axis):
    x = torch.randn(shape)
    before = x.clone()
    mirror = torch.tensor([True, False, True, False, False, True])
    out = flip_events(x, mirror, axis)
    for i in range(len(x)):
        expected = x[i].flip(axis) if mirror[i] else x[i]
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # a new tensor, the batch untouched
    with pytest.raises(ValueError, match="axis -4 is not an event axis"):
        flip_events(torch.zeros(6, 5, 7), mirror, -4)


def test_eta_is_the_second_to_last_axis_and_phi_the_last():
    image = torch.arange(6.0).reshape(1, 2, 3)  # (event, eta, phi)
    mirroring = Mirroring(("towers",), {"flip_eta": -2}, seed=0)
    masks = mirror_masks(1, seed=0, epoch=0, batch=0)
    eta = mirroring({"towers": image}, 0, 0)["towers"]
    expected = image.flip(1) if masks["flip_eta"][0] else image  # rows (eta) reversed
    torch.testing.assert_close(eta, expected)
    both = Mirroring(("towers",), {"flip_eta": -2, "flip_phi": -1}, seed=0)
    batch = torch.randn(400, 2, 5, 5)
    out = both({"towers": batch}, 4, 7)["towers"]
    masks = mirror_masks(400, seed=0, epoch=4, batch=7)
    rotated = masks["flip_eta"] & masks["flip_phi"]
    # both mirrors at once are the 180-degree rotation
    torch.testing.assert_close(out[rotated], torch.rot90(batch[rotated], 2, dims=(-2, -1)))


def test_masks_depend_on_seed_epoch_and_batch_only():
    masks = mirror_masks(1000, seed=5, epoch=2, batch=9)
    again = mirror_masks(1000, seed=5, epoch=2, batch=9)
    assert list(masks) == ["flip_eta", "flip_phi"]
    for name in masks:
        assert torch.equal(masks[name], again[name])
        assert 400 < int(masks[name].sum()) < 600  # a random half
        for other in ({"seed": 5, "epoch": 2, "batch": 10}, {"seed": 5, "epoch": 3, "batch": 9},
                      {"seed": 6, "epoch": 2, "batch": 9}):
            assert not torch.equal(masks[name], mirror_masks(1000, **other)[name])
    assert not torch.equal(masks["flip_eta"], masks["flip_phi"])  # independent switches

    mirroring = Mirroring(("ecal", "hcal"), {"flip_phi": -1}, seed=5)
    ecal, hcal, energy = torch.randn(64, 8, 8), torch.randn(64, 4, 4), torch.randn(64, 3)
    inputs = {"ecal": ecal, "hcal": hcal, "energy": energy}
    first, second = mirroring(inputs, 2, 9), mirroring(inputs, 2, 9)
    assert all(torch.equal(first[k], second[k]) for k in inputs)
    assert first["energy"] is energy  # not listed: left as it is
    mirrored = mirror_masks(64, seed=5, epoch=2, batch=9)["flip_phi"]
    # the symmetry acts on the whole event: the same events in every input
    for name, value in (("ecal", ecal), ("hcal", hcal)):
        assert torch.equal(first[name][mirrored], value[mirrored].flip(-1))
        assert torch.equal(first[name][~mirrored], value[~mirrored])
    other = mirroring(inputs, 2, 10)["ecal"]
    assert not torch.equal(other, first["ecal"])


def images(path, n=240, seed=0):
    """8 x 8 images of two classes: a hot cell in the upper left or in the lower right half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    pixels = rng.exponential(0.2, size=(n, 8, 8)).astype(np.float32)
    row = np.where(labels == 1, rng.integers(4, 8, n), rng.integers(0, 4, n))
    col = rng.integers(0, 8, n)
    pixels[np.arange(n), row, col] += 5.0
    features = rng.normal(size=(n, 2)).astype(np.float32)
    np.savez(path, towers=pixels, features=features, label=labels)
    return path


def image_config(tmp_path, **train) -> dict:
    raw = small_config(
        tmp_path, data={"source": {"kind": "npz", "path": str(images(tmp_path / "images.npz")),
                                   "inputs": {"towers": "towers", "features": "features"},
                                   "label": "label", "class_names": ["bkg", "sig"]}},
        preprocess={"towers": [{"image_norm": {"norm": "max"}}], "features": ["standardize"]},
        train={"epochs": 2, "batch_size": 32, **train})
    raw["model"] = {"name": "cnn", "dims": 2, "channels": [4], "dense_width": 16,
                    "dropout": 0.2}
    return raw


def weights(run) -> dict:
    return torch.load(run / "model.pt", weights_only=True)["model"]


def test_resolved_config_has_augmentation_off_by_default():
    config = AugmentConfig()
    assert (config.flip_eta, config.flip_phi, config.eta_axis, config.phi_axis,
            config.inputs) == (False, False, -2, -1, None)
    with pytest.raises(ValueError, match="eta_axis and phi_axis are both -1"):
        AugmentConfig(eta_axis=-1)
    with pytest.raises(ValueError, match="less than or equal to -1"):
        AugmentConfig(eta_axis=0)


def test_augmented_training_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    calls = []
    mirror = Mirroring.__call__

    def spy(self, inputs, epoch, batch, part=None):
        calls.append((epoch, batch, tuple(inputs)))
        return mirror(self, inputs, epoch, batch, part)

    monkeypatch.setattr(Mirroring, "__call__", spy)
    augment = {"flip_eta": True, "flip_phi": True}
    config = config_from_dict(image_config(tmp_path, augment=augment))
    straight = fit(config)
    batches = -(-len(load_splits(config.data, config.task, config.seed)["train"]) // 32)
    # every training batch, never a validation batch
    assert [c[:2] for c in calls] == [(e, b) for e in range(2) for b in range(batches)]
    plain = image_config(tmp_path, augment={})
    plain["name"] = "plain"
    unmirrored = fit(config_from_dict(plain))
    assert any(not torch.equal(v, weights(unmirrored)[k]) for k, v in weights(straight).items())

    calls.clear()
    cut = image_config(tmp_path, augment=augment, time_limit=1e-9)
    cut["name"] = "cut"
    with pytest.raises(Interrupted, match="time limit"):  # stops after every batch
        fit(config_from_dict(cut))
    run = tmp_path / "runs" / "cut"
    for _ in range(40):  # each resume starts mid-epoch, at the next batch
        try:
            fit(resume=run)
            break
        except Interrupted:
            continue
    assert read_meta(run)["epochs_trained"] == 2
    assert [c[:2] for c in calls] == [(e, b) for e in range(2) for b in range(batches)]
    for key, value in weights(straight).items():
        torch.testing.assert_close(weights(run)[key], value, msg=key)


def test_a_flip_of_an_input_without_image_axes_is_a_config_error(tmp_path, cli):
    raw = image_config(tmp_path, augment={"flip_phi": True, "inputs": ["towers", "features"]})
    with pytest.raises(ConfigError, match=r"^train.augment: input 'features' of shape \(2,\) "
                                          r"per event has too few axes to mirror as an image"):
        fit(config_from_dict(raw))
    line = one_error_line(cli("train", write_config(tmp_path / "c.yaml", raw)))
    assert "input 'features'" in line and "train.augment.inputs" in line

    shapes = {"towers": (8, 8), "features": (2,)}
    with pytest.raises(ConfigError, match="train.augment.inputs: no input 'ecal'; the inputs "
                                          "are towers, features"):
        Mirroring.from_config(AugmentConfig(flip_eta=True, inputs=["ecal"]), shapes, 1)
    with pytest.raises(ConfigError, match=r"train.augment: flip_eta on, but no input has 2 or "
                                          r"more axes per event to mirror: features \(2,\)"):
        Mirroring.from_config(AugmentConfig(flip_eta=True), {"features": (2,)}, 1)
    with pytest.raises(ConfigError, match=r"input 'towers' of shape \(8, 8\)"):
        Mirroring.from_config(AugmentConfig(flip_eta=True, eta_axis=-3, phi_axis=-2), shapes, 1)
    assert Mirroring.from_config(AugmentConfig(), shapes, 1) is None
    volume = Mirroring.from_config(AugmentConfig(flip_eta=True, eta_axis=-3, phi_axis=-2),
                                   {"ecal": (25, 25, 25), "energy": ()}, 1)
    assert volume.inputs == ("ecal",) and volume.axes == {"flip_eta": -3}


def test_the_learning_rate_range_test_mirrors_as_training_does(tmp_path, monkeypatch):
    from hepdl.training.lr_find import range_test

    calls = []
    mirror = Mirroring.__call__

    def spy(self, inputs, epoch, batch, part=None):
        calls.append((epoch, batch))
        return mirror(self, inputs, epoch, batch, part)

    monkeypatch.setattr(Mirroring, "__call__", spy)
    mirrored = range_test(config_from_dict(image_config(
        tmp_path, augment={"flip_eta": True, "flip_phi": True})), steps=12)
    # 192 training events in batches of 32: 6 batches an epoch, the masks of training's own
    assert calls == [(e, b) for e in range(2) for b in range(6)]
    calls.clear()
    plain = range_test(config_from_dict(image_config(tmp_path, augment={})), steps=12)
    assert not calls and plain.losses != mirrored.losses


def test_the_range_test_sweeps_in_training_precision(tmp_path):
    from hepdl.training.lr_find import range_test

    fp32 = range_test(config_from_dict(image_config(tmp_path)), steps=12)
    bf16 = range_test(config_from_dict(image_config(tmp_path, precision="bf16")), steps=12)
    assert len(bf16.losses) == len(fp32.losses) == 12
    assert bf16.losses != fp32.losses  # bfloat16 keeps 8 bits of mantissa: other losses
    np.testing.assert_allclose(bf16.losses, fp32.losses, rtol=0.05)

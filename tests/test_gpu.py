"""The GPU paths: device placement, mixed precision and nccl. Skipped where torch sees no GPU;
run them on a machine that has one (``pytest tests/test_gpu.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepdl import api
from hepdl.config import config_from_dict
from hepdl.runs import Run, load_checkpoint

from .conftest import small_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no GPU")


def trained(tmp_path, name: str, **train) -> Run:
    config = small_config(tmp_path / name, train={"epochs": 4, **train},
                          data={"source": {"kind": "digits", "images": True}},
                          preprocess={"pixels": [{"divide": {"by": 16.0}}]})
    config["model"] = {"name": "cnn", "dims": 2, "channels": [8, 16], "batch_norm": True,
                       "dense_width": 32}
    return api.train(config_from_dict(config), console=None)  # trained and evaluated


def test_a_cnn_trains_on_the_gpu_as_on_the_cpu(tmp_path):
    cpu = trained(tmp_path, "cpu", device="cpu")
    gpu = trained(tmp_path, "gpu", device="cuda")
    # the same seed and batches; cuDNN's sums differ from the CPU's in the last bits only
    np.testing.assert_allclose(gpu.history["val_loss"], cpu.history["val_loss"], rtol=1e-3)
    weights = load_checkpoint(gpu.path / "model.pt")["model"]
    assert all(t.device.type == "cpu" for t in weights.values())  # loadable without a GPU
    assert gpu.metrics["accuracy"] > 0.85  # 0.914 on the CPU


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(tmp_path, precision):
    fp32 = trained(tmp_path, "fp32", device="cuda")
    mixed = trained(tmp_path, precision, device="cuda", precision=precision)
    np.testing.assert_allclose(mixed.history["val_loss"], fp32.history["val_loss"], rtol=0.1)
    scaler = load_checkpoint(mixed.path / "last.pt")["scaler"]
    assert bool(scaler) == (precision == "fp16")  # fp16 needs the gradient scaler, bf16 none


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl needs a GPU per rank")
def test_two_gpu_ranks_over_nccl_give_the_single_gpu_result(tmp_path):
    from .test_distributed import two_ranks_and_one, weights, write_config

    config = write_config(tmp_path, 1000, epochs=3, shuffle=False)
    config.write_text(config.read_text().replace("threads: 1", "threads: 1\n  device: cuda"))
    two, one, output = two_ranks_and_one(tmp_path, config)
    assert "2 ranks (DDP, nccl)" in output
    np.testing.assert_allclose(two.history["val_loss"], one.history["val_loss"], rtol=1e-4)
    for key, value in weights(one.path).items():
        torch.testing.assert_close(weights(two.path)[key], value, rtol=1e-4, atol=1e-5)

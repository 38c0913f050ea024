"""Convolutional networks on calorimeter images: 2D (tower images, seeds/003) and 3D (ECAL volume).

One input (``image_input``, by default the first with two or more axes) goes through
[Conv -> BatchNorm? -> activation -> Pool] blocks; its features are pooled (flattened, or a
global max, average, or both concatenated: the seeds/003 variant), merged with the other
inputs flattened (the HCAL tower, scalars), then a dense head as in the MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from hepdl.errors import ConfigError
from hepdl.models.layers import activation, flat_size, initialize
from hepdl.models.registry import register_model

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d, ("avg", 2): nn.AvgPool2d,
         ("avg", 3): nn.AvgPool3d}


class CNN(nn.Module):
    def __init__(self, input_shapes: dict[str, tuple[int, ...]], n_outputs: int, config):
        super().__init__()
        self.input_names = list(input_shapes)
        image = config.image_input or next(
            (name for name, shape in input_shapes.items() if len(shape) >= 2), None)
        if image is None or image not in input_shapes:
            raise ConfigError("model.image_input", f"no image input among {input_shapes}")
        shape = tuple(input_shapes[image])
        dims = config.dims
        if len(shape) == dims:
            self.add_channel, channels = True, 1
        elif len(shape) == dims + 1:
            self.add_channel, channels = False, shape[0]
        else:
            raise ConfigError("model.dims", f"input {image!r} of shape {shape} is not a "
                                            f"{dims}D image (with or without a channel axis)")
        self.image = image
        blocks: list[nn.Module] = []
        for width in config.channels:
            blocks.append(_CONV[dims](channels, width, config.kernel_size,
                                      padding=config.kernel_size // 2))
            if config.batch_norm:
                blocks.append(_BATCH_NORM[dims](width))
            blocks.append(activation(config.activation))
            blocks.append(_POOL[(config.pool, dims)](2, ceil_mode=True))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.global_pool = config.global_pool
        with torch.no_grad():
            probe = torch.zeros(1, *((1, *shape) if self.add_channel else shape))
            n_features = self._pooled(self.features(probe)).shape[1]
        n_other = sum(flat_size(s) for name, s in input_shapes.items() if name != image)
        head: list[nn.Module] = []
        size = n_features + n_other
        for _ in range(config.dense_depth):
            head += [nn.Linear(size, config.dense_width), activation(config.activation)]
            if config.dropout > 0:
                head.append(nn.Dropout(config.dropout))
            size = config.dense_width
        self.head = nn.Sequential(*head)
        self.output = nn.Linear(size, n_outputs)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "flatten":
            return x.flatten(1)
        axes = tuple(range(2, x.ndim))
        if self.global_pool == "max":
            return x.amax(axes)
        if self.global_pool == "avg":
            return x.mean(axes)
        return torch.cat([x.amax(axes), x.mean(axes)], 1)  # max_avg: seeds/003's variant

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        image = inputs[self.image]
        if self.add_channel:
            image = image.unsqueeze(1)
        parts = [self._pooled(self.features(image))]
        parts += [inputs[name].flatten(1) for name in self.input_names if name != self.image]
        return self.output(self.head(torch.cat(parts, 1)))


@register_model("cnn")
def build_cnn(config, input_shapes: dict[str, tuple[int, ...]], n_outputs: int) -> CNN:
    model = CNN(input_shapes, n_outputs, config)
    initialize(model, config.init)
    return model

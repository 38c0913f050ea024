"""Data augmentation by the detector's symmetries: training events mirrored in eta and in phi.

seeds/003 trains on 47 x 47 tower images (eta, phi) of electron candidates with random
horizontal flips, as the network overfits within four epochs without them. The detector is
symmetric under z -> -z (eta -> -eta) and under a reflection through a plane holding the beam
(phi -> -phi, which turns an event into that of the opposite charge), so a mirrored event is as
real as the original. :class:`Mirroring` mirrors a random half of the events of a training batch
for each symmetry switched on in ``train.augment``.

The events mirrored are drawn from ``(seed, epoch, batch)`` alone, with a generator of their
own (the global torch random state, which dropout draws from, is not touched), so a run resumed
mid-epoch mirrors the same events as an uninterrupted one. The loop mirrors the raw batch,
before the preprocessing inside the network: a flip commutes with a per-event norm
(``ImageNorm``) but not with a per-pixel standardization, whose fitted means are not
mirror-symmetric in general, and the raw events are what the symmetry acts on.

Example
-------
>>> mirroring = Mirroring.from_config(AugmentConfig(flip_phi=True), {"ecal": (47, 47)}, seed=1)
>>> inputs = mirroring(inputs, epoch=0, batch=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hepdl.config import AugmentConfig
from hepdl.errors import ConfigError

SWITCHES = {"flip_eta": "eta_axis", "flip_phi": "phi_axis"}
"""Each symmetry's switch -> the field naming its axis, in the order their masks are drawn (each
mask is drawn whether on or not: switching one on leaves the events the other mirrors as they
were)."""

_STREAM = 0x6D6972726F72  # keeps these draws apart from the loaders' shuffles of the same seed


def flip_events(x: torch.Tensor, mirror: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` with the events where ``mirror`` is true flipped along ``axis``, the others unchanged.

    Parameters
    ----------
    x : torch.Tensor
        A batch, events along the first axis.
    mirror : torch.Tensor
        Boolean, one per event.
    axis : int
        The event axis flipped, counted from the end (-1: the last).

    Returns
    -------
    torch.Tensor
        A new tensor; ``x`` is not modified.
    """
    if not -x.ndim < axis < 0:
        raise ValueError(f"axis {axis} is not an event axis of a batch of shape {tuple(x.shape)}")
    where = mirror.to(x.device).reshape(len(x), *([1] * (x.ndim - 1)))
    return torch.where(where, x.flip(axis), x)


def mirror_masks(n_events: int, *, seed: int, epoch: int, batch: int) -> dict[str, torch.Tensor]:
    """Which events of batch ``batch`` of ``epoch`` each symmetry mirrors: a random half each.

    The masks depend on ``(seed, epoch, batch)`` only, and are independent of each other.
    """
    state = np.random.SeedSequence([seed, epoch, batch, _STREAM]).generate_state(1, np.uint64)
    generator = torch.Generator().manual_seed(int(state[0]))
    draws = torch.rand(len(SWITCHES), n_events, generator=generator) < 0.5
    return dict(zip(SWITCHES, draws, strict=True))


@dataclass(frozen=True)
class Mirroring:
    """The symmetries applied to the training batches of a run, checked against its inputs.

    Attributes
    ----------
    inputs : tuple of str
        The inputs mirrored; the same events in each.
    axes : dict of str to int
        Switch on (``flip_eta``, ``flip_phi``) -> the event axis it flips, from the end.
    seed : int
        The run's seed.
    """

    inputs: tuple[str, ...]
    axes: dict[str, int]
    seed: int

    @classmethod
    def from_config(cls, config: AugmentConfig, input_shapes: dict[str, tuple[int, ...]],
                    seed: int, hits_inputs: Sequence[str] = ()) -> Mirroring | None:
        """The mirroring ``train.augment`` asks for, or None when every switch is off.

        Raises
        ------
        ConfigError
            An input named is not one of the run's, or has too few axes per event for the
            flips (an image needs at least two); a flip is on and no input can take it; or
            the data holds inputs as hits (``hits_inputs``), which are not flipped.
        """
        axes = {name: getattr(config, field) for name, field in SWITCHES.items()
                if getattr(config, name)}
        if not axes:
            return None
        if hits_inputs:
            raise ConfigError("train.augment", f"needs dense inputs; {', '.join(hits_inputs)} "
                                               "are read as hits (zero-suppressed): use the "
                                               "dense file")
        needed = max(-axis for axis in axes.values())
        if config.inputs is None:
            names = [name for name, shape in input_shapes.items() if len(shape) >= 2]
            if not names:
                shapes = ", ".join(f"{k} {tuple(v)}" for k, v in input_shapes.items())
                raise ConfigError("train.augment", f"{' and '.join(axes)} on, but no input has "
                                  f"2 or more axes per event to mirror: {shapes}")
        else:
            names = list(config.inputs)
            unknown = [name for name in names if name not in input_shapes]
            if unknown:
                raise ConfigError("train.augment.inputs", f"no input {unknown[0]!r}; the "
                                  f"inputs are {', '.join(input_shapes)}")
        for name in names:
            shape = tuple(input_shapes[name])
            if len(shape) < max(needed, 2):
                flips = ", ".join(f"{k} on axis {v}" for k, v in axes.items())
                raise ConfigError("train.augment", f"input {name!r} of shape {shape} per event "
                                  f"has too few axes to mirror as an image ({flips}); list "
                                  "the image inputs in train.augment.inputs")
        return cls(tuple(names), axes, seed)

    def __call__(self, inputs: dict[str, torch.Tensor], epoch: int, batch: int,
                 part: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """The batch with a random half of its events mirrored per switch (new tensors).

        ``part``: a data-parallel rank's events are ``offset, total``: they begin at ``offset``
        of the whole batch of ``total`` events, and take their slice of its masks, so the
        ranks' masks together are the masks one process draws for that batch (in memory and
        unshuffled, the same events too).
        """
        n_events = len(next(iter(inputs.values())))
        offset, total = part if part is not None else (0, n_events)
        masks = mirror_masks(total, seed=self.seed, epoch=epoch, batch=batch)
        out = dict(inputs)
        for name in self.inputs:
            for switch, axis in self.axes.items():
                out[name] = flip_events(out[name], masks[switch][offset:offset + n_events], axis)
        return out

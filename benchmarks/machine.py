"""What a benchmark ran on: cores, threads and versions, written beside every result."""

from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    import numpy
    import torch

    from hepdl import __version__

    return {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": numpy.__version__, "hepdl": __version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}

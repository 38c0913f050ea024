"""Under torchrun: train each CONFIG RUN_DIR pair in turn, every rank in one process group
that this script starts (and hepdl leaves open), so that one launch trains several runs.

    torchrun --standalone --nproc-per-node 2 tests/ddp_runs.py CONFIG RUN_DIR [CONFIG RUN_DIR ...]
"""

import sys

import torch.distributed as dist

from hepdl.api import train
from hepdl.config import load_config

if __name__ == "__main__":
    dist.init_process_group("gloo")
    for config, run in zip(sys.argv[1::2], sys.argv[2::2], strict=True):
        train(load_config(config), run_dir=run)
    dist.destroy_process_group()

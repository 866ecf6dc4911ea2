"""``python -m magnet_audio.train CONFIG.yaml [key=value ...] [--resume [CKPT]]``: MAGNeT LM training.

The same as ``magnet train``; meant for torchrun:
``torchrun --nproc_per_node 4 -m magnet_audio.train configs/train_magnet.yaml``.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

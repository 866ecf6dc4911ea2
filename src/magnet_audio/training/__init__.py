"""Training MAGNeT on your own audio: data, token cache, objective, trainer, export.

    magnet tokenize data/ --codec facebook/magnet-small-10secs --out cache/   # optional: train does it too
    magnet train configs/train_magnet.yaml data.train=cache/ run_dir=runs/mine
    magnet export runs/mine exported/                                         # MAGNeT.get_pretrained("exported/")
"""

from .config import TrainConfig, load_config
from .objectives import MagnetObjective
from .loop import Trainer
from .trainer import train

__all__ = ["TrainConfig", "load_config", "MagnetObjective", "Trainer", "train"]

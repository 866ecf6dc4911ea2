"""``python -m magnet_audio``: the ``magnet`` command (what ``torchrun -m magnet_audio ...`` runs)."""

import sys

from .cli import main

sys.exit(main())

"""User-facing errors.

Everything that is the user's fault (a missing or corrupt checkpoint, a bad prompt, an unwritable
path) raises a :class:`MagnetError` subclass with a message that says what to do. The CLI prints
the message and exits non-zero instead of showing a traceback.
"""


class MagnetError(Exception):
    """Base class for errors caused by input rather than by a bug."""


class CheckpointError(MagnetError):
    """A checkpoint is missing, corrupt, unsafe to load, or does not match its partner."""


class InputError(MagnetError, ValueError):
    """Bad arguments: empty prompts, wrong audio shape, out-of-range generation parameters."""


class TrainingDiverged(MagnetError):
    """The loss or the weights became NaN or infinite: training stopped, the checkpoints on disk
    are all from before (none is written with non-finite weights)."""

"""vqsim.channels: packet-loss and bit-error channel models (numpy/scipy only)."""
from ._markov import ChainState
from .base import BitErrorModel, LossModel
from .bernoulli import Bernoulli
from .biterror import BinarySymmetric, GilbertElliottBitError
from .factory import MODELS, from_spec, make_channel
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov
from .netem import parse_netem
from .presets import PRESETS, Preset, get_preset
from .trace import Trace, TraceExhaustedError

__all__ = [
    "LossModel",
    "BitErrorModel",
    "ChainState",
    "Bernoulli",
    "GilbertElliott",
    "FourStateMarkov",
    "Trace",
    "TraceExhaustedError",
    "BinarySymmetric",
    "GilbertElliottBitError",
    "parse_netem",
    "Preset",
    "PRESETS",
    "get_preset",
    "MODELS",
    "make_channel",
    "from_spec",
]

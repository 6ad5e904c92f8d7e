"""vqsim.channels: packet-loss and bit-error channel models (numpy/scipy only)."""
from ._intervals import Estimate
from ._markov import ChainState
from .base import BitErrorModel, LossModel
from .bernoulli import Bernoulli
from .biterror import BinarySymmetric, GilbertElliottBitError
from .factory import MODELS, from_spec, make_channel
from .fit import FAMILIES, FitResult, fit_all
from .gilbert import GilbertElliott
from .goodness import GoodnessOfFit, goodness_of_fit, verdict
from .markov4 import FourStateMarkov
from .netem import parse_netem
from .presets import PRESETS, Preset, get_preset
from .scale import max_scale, scale_loss
from .trace import Trace, TraceExhaustedError
from .trace_io import LossTrace, read_trace

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
    "LossTrace",
    "read_trace",
    "FAMILIES",
    "Estimate",
    "FitResult",
    "fit_all",
    "GoodnessOfFit",
    "goodness_of_fit",
    "verdict",
    "scale_loss",
    "max_scale",
]

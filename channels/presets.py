"""Named channel presets for experiment configs.

Honesty note: none of these presets is a parameter fit to a specific
published trace.  Each one picks round, illustrative numbers for the *kind*
of channel named, with the loss model structure (and, where stated, the
order of magnitude) taken from the cited work.  Use them as comparable
reference points across experiments, not as measurements; for a real
network, fit the model to a trace (``channels.trace.Trace`` replays one).
"""
from __future__ import annotations

from dataclasses import dataclass

from codec.errors import ParameterError

from .base import BitErrorModel, LossModel
from .bernoulli import Bernoulli
from .biterror import BinarySymmetric, GilbertElliottBitError
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov

_YAJNIK = (
    "M. Yajnik, S. Moon, J. Kurose, D. Towsley, 'Measurement and modelling of the temporal dependence "
    "in packet loss', Proc. IEEE INFOCOM 1999, vol. 1, pp. 345-352"
)
_HH08 = (
    "G. Hasslinger, O. Hohlfeld, 'The Gilbert-Elliott model for packet loss in real time services on the "
    "Internet', Proc. 14th GI/ITG Conf. MMB, 2008"
)
_HGH08 = (
    "O. Hohlfeld, R. Geib, G. Hasslinger, 'Packet loss in real-time services: Markovian models generating "
    "QoE impairments', Proc. IEEE IWQoS 2008, pp. 239-248"
)
_Y1541 = "ITU-T Rec. Y.1541 (12/2011), 'Network performance objectives for IP-based services'"
_G1050 = "ITU-T Rec. G.1050 (11/2007), 'Network model for evaluating multimedia transmission performance over IP'"
_LUTZ = (
    "E. Lutz, D. Cygan, M. Dippold, F. Dolainsky, W. Papke, 'The land mobile satellite communication "
    "channel - recording, statistics, and channel model', IEEE Trans. Veh. Technol. 40(2), 1991"
)
_SALSANO = (
    "S. Salsano, F. Ludovici, A. Ordine, 'Definition of a general and intuitive loss model for packet "
    "networks and its implementation in the Netem module in the Linux kernel' (cited by tc-netem(8))"
)
_GILBERT = (
    "E. N. Gilbert, 'Capacity of a burst-noise channel', Bell Syst. Tech. J. 39, 1960; "
    "E. O. Elliott, 'Estimates of error rates for codes on burst-noise channels', Bell Syst. Tech. J. 42, 1963"
)


@dataclass(frozen=True)
class Preset:
    """A named, documented channel.

    Attributes:
        name: registry key.
        description: what it models and how the numbers were chosen.
        citation: where the model structure / magnitudes come from.
        model: the channel instance (a ``LossModel`` or a ``BitErrorModel``).
    """

    name: str
    description: str
    citation: str
    model: LossModel | BitErrorModel

    @property
    def kind(self) -> str:
        """``"loss"`` for packet-erasure presets, ``"bit"`` for bit-error presets."""
        return "loss" if isinstance(self.model, LossModel) else "bit"


def _p(name: str, description: str, citation: str, model: LossModel | BitErrorModel) -> tuple[str, Preset]:
    return name, Preset(name, description, citation, model)


PRESETS: dict[str, Preset] = dict(
    [
        _p("lossless", "No loss at all (reference run).", "-", Bernoulli(0.0)),
        _p(
            "wired",
            "Near-lossless wired path: independent losses at 1e-4, a decade below the 1e-3 IP packet loss "
            "ratio objective of ITU-T Y.1541 QoS classes 0-4 (illustrative value, not a measurement). "
            "Yajnik et al. found the Bernoulli model adequate for part of their Internet traces.",
            f"{_Y1541}; {_YAJNIK}",
            Bernoulli(1e-4),
        ),
        _p(
            "internet",
            "Best-effort Internet path: simple Gilbert model, ~1% loss, mean burst 1.5 packets "
            "(illustrative: after Yajnik et al., who found losses mostly isolated or in short runs and a "
            "2-state Markov chain adequate for many traces; Hasslinger & Hohlfeld fit Gilbert-Elliott "
            "models to backbone traces).",
            f"{_YAJNIK}; {_HH08}",
            GilbertElliott.from_loss_and_burst(0.01, 1.5),
        ),
        _p(
            "wifi",
            "Wireless LAN: full Gilbert-Elliott with rare residual loss in Good (0.1%) and 50% loss in short "
            "Bad periods (mean 1/r = 3.3 packets) - about 1.7% loss in short bursts. Illustrative numbers; "
            "the 2-state GE structure follows Hohlfeld et al., who found it captures wired and wireless loss "
            "patterns well.",
            f"{_HGH08}; {_HH08}",
            GilbertElliott(p=0.01, r=0.3, h=0.5, k=0.999),
        ),
        _p(
            "cellular-edge",
            "Cell-edge mobile link: lossy, long fades - Gilbert-Elliott with Bad periods of mean 1/r = 6.7 "
            "packets losing 90%, 0.5% loss in Good; about 11% loss overall. Illustrative numbers (no single "
            "measurement reproduced); GE structure as in Hohlfeld et al. and the G.1050 (2007) impairment "
            "model, which is Gilbert-Elliott based.",
            f"{_HGH08}; {_G1050}",
            GilbertElliott(p=0.02, r=0.15, h=0.1, k=0.995),
        ),
        _p(
            "satellite",
            "Mobile satellite link with shadowing: simple Gilbert, ~3% loss in long bursts (mean 20 "
            "packets). Two-state good/bad structure after Lutz et al.'s land-mobile satellite channel model; "
            "the numbers are illustrative.",
            _LUTZ,
            GilbertElliott.from_loss_and_burst(0.03, 20.0),
        ),
        _p(
            "bursty-4state",
            "netem 4-state model with both isolated losses (p14) and bursts that contain received packets "
            "(p32/p23): about 2.6% loss. Illustrative parameters exercising the model of Salsano et al.",
            _SALSANO,
            FourStateMarkov(p13=0.005, p31=0.3, p32=0.2, p23=0.4, p14=0.01),
        ),
        _p(
            "bits-random",
            "Binary symmetric bit errors at 1e-5 (illustrative).",
            "-",
            BinarySymmetric(1e-5),
        ),
        _p(
            "bits-bursty",
            "Bursty bit errors: Gilbert-Elliott over bits, Bad periods of mean 100 bits with BER 1e-2, "
            "Good BER 1e-7; overall BER about 1e-4 (illustrative numbers, classic burst-noise model).",
            _GILBERT,
            GilbertElliottBitError(p=1e-4, r=1e-2, ber_good=1e-7, ber_bad=1e-2),
        ),
    ]
)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` (case-insensitive, '_' == '-').

    Raises:
        ValueError: unknown name; the message lists the available presets.
    """
    if not isinstance(name, str):
        raise ParameterError(f"preset name must be a string, got {name!r}")
    try:
        return PRESETS[_key(name)]
    except KeyError:
        raise ParameterError(f"unknown channel preset {name!r}; available: {', '.join(sorted(PRESETS))}") from None

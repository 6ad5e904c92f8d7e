"""vqsim.sim: packetization, interleaving, FEC and the SimPy transmission model.

Never imports torch: it works on ``codec.types.IndexMap`` (numpy) alone.

Pipeline: ``packetize`` (interleave + per-packet entropy coding + optional
``ErasureFEC`` parity; 36-byte or compact header) → ``NetworkSimulator`` /
``transmit`` (sender, drop-tail queue, link — optionally a named
``LINK_PRESETS`` link with its airtime and duty cycle —, loss / bit-error
channel, receiver with playout deadline) → ``depacketize`` (checks, FEC
recovery, reassembly) → ``TransmissionRecord``.
"""
from .fec import HAVE_CREEDSOLO, ErasureFEC, FECError, InPacketRS
from .interleave import SCHEMES, Interleaving, interleave
from .links import JITTERS, LINK_PRESETS, LinkConfig, LinkPreset, LoRaParams, get_link_preset
from .network import NetworkSimulator, PacketTrace, Session, transmit
from .packet import HEADER_SIZE, HEADERS, OVERHEAD, REASONS, CompactSession, Packet, PacketError
from .packetizer import DEFAULT_MTU, DepacketizeResult, depacketize, packetize
from .record import TransmissionRecord

__all__ = [
    "DEFAULT_MTU", "HAVE_CREEDSOLO", "HEADERS", "HEADER_SIZE", "JITTERS", "LINK_PRESETS", "OVERHEAD", "REASONS",
    "SCHEMES", "CompactSession", "DepacketizeResult", "ErasureFEC", "FECError", "InPacketRS", "Interleaving",
    "LinkConfig", "LinkPreset", "LoRaParams", "NetworkSimulator", "Packet", "PacketError", "PacketTrace", "Session",
    "TransmissionRecord", "depacketize", "get_link_preset", "interleave", "packetize", "transmit",
]

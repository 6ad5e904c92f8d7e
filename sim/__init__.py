"""vqsim.sim: packetization, interleaving, FEC and the SimPy transmission model.

Never imports torch: it works on ``codec.types.IndexMap`` (numpy) alone.

Pipeline: ``packetize`` (interleave + per-packet entropy coding + optional
``ErasureFEC`` parity) → ``NetworkSimulator`` / ``transmit`` (sender, drop-tail
queue, link, loss / bit-error channel, receiver with playout deadline) →
``depacketize`` (checks, FEC recovery, reassembly) → ``TransmissionRecord``.
"""
from .fec import HAVE_CREEDSOLO, ErasureFEC, FECError, InPacketRS
from .interleave import SCHEMES, Interleaving, interleave
from .network import JITTERS, LinkConfig, NetworkSimulator, PacketTrace, Session, transmit
from .packet import HEADER_SIZE, OVERHEAD, REASONS, Packet, PacketError
from .packetizer import DEFAULT_MTU, DepacketizeResult, depacketize, packetize
from .record import TransmissionRecord

__all__ = [
    "DEFAULT_MTU", "HAVE_CREEDSOLO", "HEADER_SIZE", "JITTERS", "OVERHEAD", "REASONS", "SCHEMES",
    "DepacketizeResult", "ErasureFEC", "FECError", "InPacketRS", "Interleaving", "LinkConfig",
    "NetworkSimulator", "Packet", "PacketError", "PacketTrace", "Session", "TransmissionRecord",
    "depacketize", "interleave", "packetize", "transmit",
]

"""Link models: ``LinkConfig`` and named presets of constrained links (payload limit, bit rate, airtime, duty cycle).

Each ``LinkPreset`` describes one radio / acoustic / satellite link with the
numbers a vqsim transmission needs:

* ``max_payload_bytes`` — the largest vqsim packet (header + payload + CRC +
  in-packet RS) one link-layer frame carries (the PHY/MAC payload limit less
  the MAC fields counted in ``per_packet_overhead_bytes``).
* ``airtime_s(payload_bytes)`` — time on the air of one frame carrying
  ``payload_bytes`` vqsim bytes.  LoRa uses the exact symbol-count formula
  (below); the others ``8·(payload + per_packet_overhead_bytes) / bitrate_bps
  + per_packet_time_s``.
* ``duty_cycle`` — regulatory duty-cycle limit dc (fraction of time on air);
  after each frame the transmitter stays silent for
  T_off = airtime · (1/dc − 1), so on-air time / total time ≤ dc.

LoRa time on air (Semtech SX1276/77/78/79 datasheet rev. 7, §4.1.1.6–7;
Semtech AN1200.13 "LoRa Modem Designer's Guide")::

    T_sym      = 2^SF / BW
    T_preamble = (n_preamble + 4.25) · T_sym
    n_payload  = 8 + max(ceil((8·PL − 4·SF + 28 + 16·CRC − 20·IH) / (4·(SF − 2·DE))) · (CR + 4), 0)
    T_frame    = T_preamble + n_payload · T_sym

with PL the PHY payload in bytes (here vqsim bytes + the LoRaWAN MAC
overhead), CRC = 1 (uplink CRC on), IH = 0 (explicit header), CR = 1 (coding
rate 4/5), DE = 1 (low-data-rate optimisation) for SF11/SF12 at 125 kHz.

Honesty note: the LoRa and BLE numbers are taken from the cited
specifications; the NB-IoT, satellite and acoustic presets are *illustrative*
round numbers for the kind of link named (their structure and orders of
magnitude from the cited documents), to be replaced by measurements of a
real deployment.  Propagation delays assume the range stated in each
description.

``LinkConfig`` (the link a ``NetworkSimulator`` serializes packets on) lives
here too; ``LinkConfig.from_preset(name)`` builds one from a preset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.errors import ParameterError

_SX1276 = ("Semtech SX1276/77/78/79 datasheet rev. 7 (2020), §4.1.1 LoRa modem (packet structure, time on "
           "air); Semtech AN1200.13 'LoRa Modem Designer's Guide' (2013)")
_RP002 = ("LoRa Alliance, 'RP002-1.0.3 LoRaWAN Regional Parameters' (2021), EU863-870 section: DR0 = SF12/125 "
          "kHz, DR3 = SF9/125 kHz, DR5 = SF7/125 kHz, max MACPayload M = 59/123/230 B, max FRMPayload N = "
          "51/115/222 B (no FOpts); 1 % duty cycle on the default channels' sub-band (ETSI EN 300 220-2)")
_LORAWAN_MAC = "LoRa Alliance, 'LoRaWAN 1.0.4 Specification' (2020), §4: MHDR 1 + FHDR 7 + FPort 1 + MIC 4 = 13 B"
_BLE = ("Bluetooth SIG, 'Bluetooth Core Specification v5.0' (2016), Vol 6 Part B §2.1 (LE 1M packet: preamble "
        "1 B, access address 4 B, PDU header 2 B, payload ≤ 251 B with LE Data Packet Length Extension, MIC 4 B "
        "when encrypted, CRC 3 B; 1 Msym/s) and Vol 3 Part A §3 / Part F §3.4.7 (L2CAP basic header 4 B, ATT "
        "notification opcode + handle 3 B: 251 − 7 = 244 B of ATT payload)")
_NBIOT = ("3GPP TS 36.306 (UE category NB1: max 1000 bits per uplink transport block; ~ 60 kbit/s peak "
          "multi-tone uplink in Rel-13); 3GPP TS 36.323 (max PDCP SDU 1600 B for NB-IoT); the "
          "20 kbit/s effective uplink is an illustrative round number in the range measured in the literature, "
          "e.g. Y.-P. E. Wang et al., 'A Primer on 3GPP Narrowband Internet of Things', IEEE Commun. Mag. 55(3), 2017")
_IRIDIUM = ("Iridium Communications, 'Iridium Short Burst Data Service Developers Guide' (rel. 3.0): mobile-"
            "originated SBD message ≤ 340 B, mobile-terminated ≤ 270 B; Iridium channel rate 2.4 kbit/s (L-band "
            "TDMA). LEO, not GEO (780 km orbit): one up-and-down hop ≈ 5–17 ms; the seconds-long SBD session "
            "set-up is modelled as the illustrative per-message time")
_GEO = ("Geometry of the geostationary orbit (35 786 km altitude): up → down one-way path 71 600–83 600 km, "
        "0.24–0.28 s at c (ITU-T G.114 (05/2003) gives ~ 0.26 s for a 36 000 km hop); bit rate and MTU are "
        "illustrative (Inmarsat-class low-rate data service)")
_WHOI = ("L. Freitag et al., 'The WHOI Micro-Modem: an acoustic communications and navigation system for "
         "multiple platforms', Proc. IEEE OCEANS 2005 (PSK rates up to ~ 5 kbit/s, 256-byte frames); EvoLogics "
         "S2C R 18/34 datasheet (up to 13.9 kbit/s, 3.5 km); numbers here are illustrative; sound speed 1500 m/s")


@dataclass(frozen=True)
class LoRaParams:
    """LoRa modulation parameters for the time-on-air formula (see the module docstring).

    Attributes:
        sf: spreading factor 6 … 12.
        bw_hz: bandwidth in Hz (125 kHz for the presets).
        cr: coding rate index 1 … 4 (4/5 … 4/8).
        preamble_symbols: programmed preamble length (8 for LoRaWAN).
        crc: payload CRC on.
        implicit_header: implicit-header mode (IH = 1).
        low_dr_optimize: DE; None = on when T_sym > 16 ms (SF11/SF12 at 125 kHz).
    """

    sf: int
    bw_hz: float = 125e3
    cr: int = 1
    preamble_symbols: int = 8
    crc: bool = True
    implicit_header: bool = False
    low_dr_optimize: bool | None = None

    def __post_init__(self) -> None:
        if not 6 <= self.sf <= 12 or not 1 <= self.cr <= 4 or not self.bw_hz > 0:
            raise ParameterError(f"LoRa needs SF in [6, 12], CR in [1, 4], BW > 0; got {self}")

    @property
    def symbol_s(self) -> float:
        """T_sym = 2^SF / BW."""
        return (1 << self.sf) / self.bw_hz

    @property
    def de(self) -> int:
        if self.low_dr_optimize is None:
            return int(self.symbol_s > 0.016)
        return int(self.low_dr_optimize)

    def payload_symbols(self, phy_bytes: int) -> int:
        """n_payload for a PHY payload of ``phy_bytes`` bytes."""
        num = 8 * phy_bytes - 4 * self.sf + 28 + 16 * int(self.crc) - 20 * int(self.implicit_header)
        return 8 + max(math.ceil(num / (4 * (self.sf - 2 * self.de))) * (self.cr + 4), 0)

    def time_on_air_s(self, phy_bytes: int) -> float:
        """T_preamble + n_payload · T_sym for a PHY payload of ``phy_bytes`` bytes."""
        return (self.preamble_symbols + 4.25 + self.payload_symbols(phy_bytes)) * self.symbol_s


@dataclass(frozen=True)
class LinkPreset:
    """A named, documented constrained link.

    Attributes:
        name: registry key.
        description: what it models, the range assumed, how the numbers were chosen.
        max_payload_bytes: largest vqsim packet one frame carries (bytes).
        bitrate_bps: PHY bit rate (LoRa: the equivalent SF·BW·4/(4+CR)/2^SF rate, informational).
        per_packet_overhead_bytes: link-layer bytes added to each frame (MAC / PHY headers, CRC);
            carried on the air, not corrupted or seen by the receiver.
        propagation_s: one-way propagation delay at the stated range.
        duty_cycle: largest fraction of time on air (e.g. 0.01), None = unrestricted.
        source: citation of the numbers.
        illustrative: True when the numbers are round values for the kind of link, not a spec.
        per_packet_time_s: fixed extra time on air per frame (preamble / acquisition / set-up).
        lora: LoRa modulation parameters; then the airtime uses the LoRa formula.
    """

    name: str
    description: str
    max_payload_bytes: int
    bitrate_bps: float
    per_packet_overhead_bytes: int
    propagation_s: float
    duty_cycle: float | None
    source: str
    illustrative: bool = False
    per_packet_time_s: float = 0.0
    lora: LoRaParams | None = None

    def __post_init__(self) -> None:
        if self.max_payload_bytes < 1 or not self.bitrate_bps > 0 or self.per_packet_overhead_bytes < 0:
            raise ParameterError(f"bad link preset {self.name!r}: payload limit, bit rate and overhead")
        if self.duty_cycle is not None and not 0 < self.duty_cycle <= 1:
            raise ParameterError(f"duty_cycle must be in (0, 1] or None, got {self.duty_cycle}")

    def frame_airtime_s(self, frame_bytes: int) -> float:
        """Time on air of a frame of ``frame_bytes`` bytes *including* ``per_packet_overhead_bytes``."""
        if self.lora is not None:
            return self.lora.time_on_air_s(int(frame_bytes)) + self.per_packet_time_s
        return 8.0 * frame_bytes / self.bitrate_bps + self.per_packet_time_s

    def airtime_s(self, payload_bytes: int) -> float:
        """Time on air of one frame carrying ``payload_bytes`` vqsim bytes (overhead added here)."""
        return self.frame_airtime_s(int(payload_bytes) + self.per_packet_overhead_bytes)

    def off_time_s(self, airtime_s: float) -> float:
        """Silence the duty cycle imposes after a frame of ``airtime_s``: airtime·(1/dc − 1) (0 without one)."""
        return duty_off_time_s(airtime_s, self.duty_cycle)

    def image_airtime_s(self, image_bytes: int, header_bytes: int) -> tuple[int, float]:
        """(frames, total time incl. duty-cycle silences) to send ``image_bytes`` of payload in full frames.

        Every frame carries ``max_payload_bytes − header_bytes`` image bytes (the last one the rest);
        the silence after the last frame is not counted.
        """
        per = self.max_payload_bytes - header_bytes
        if per < 1:
            raise ParameterError(f"{self.name}: a {header_bytes}-byte header leaves no room in "
                                 f"{self.max_payload_bytes}-byte frames")
        n = max(1, -(-int(image_bytes) // per))
        last = int(image_bytes) - (n - 1) * per
        full = self.airtime_s(per + header_bytes)
        t_last = self.airtime_s(last + header_bytes)
        return n, (n - 1) * (full + self.off_time_s(full)) + t_last


def duty_off_time_s(airtime_s: float, duty_cycle: float | None) -> float:
    """T_off = airtime · (1/dc − 1); 0 when ``duty_cycle`` is None or 1."""
    if duty_cycle is None:
        return 0.0
    return airtime_s * (1.0 / duty_cycle - 1.0)


def _lora(name: str, sf: int, dr: int, max_app: int) -> LinkPreset:
    lp = LoRaParams(sf=sf)
    rate = sf * lp.bw_hz / (1 << sf) * 4 / (4 + lp.cr)
    return LinkPreset(
        name=name,
        description=(f"LoRaWAN EU868 DR{dr}: LoRa SF{sf}, 125 kHz, CR 4/5, 8-symbol preamble, explicit header, "
                     f"CRC on{', low-data-rate optimisation' if lp.de else ''}; FRMPayload ≤ {max_app} B, "
                     f"13 B LoRaWAN MAC overhead per frame, 1 % duty cycle; ~ 10 km range"),
        max_payload_bytes=max_app, bitrate_bps=rate, per_packet_overhead_bytes=13,
        propagation_s=10e3 / 299_792_458.0, duty_cycle=0.01,
        source=f"{_SX1276}; {_RP002}; {_LORAWAN_MAC}", lora=lp)


LINK_PRESETS: dict[str, LinkPreset] = {p.name: p for p in (
    _lora("lora_sf7", 7, 5, 222),
    _lora("lora_sf9", 9, 3, 115),
    _lora("lora_sf12", 12, 0, 51),
    LinkPreset(
        name="ble_1m",
        description=("Bluetooth LE 4.2/5 LE 1M PHY with Data Length Extension, GATT notifications: 244 B ATT "
                     "payload; 21 B per frame = preamble 1 + access address 4 + header 2 + MIC 4 + CRC 3 + "
                     "L2CAP 4 + ATT 3 (inter-frame space and connection events not modelled); ~ 10 m range"),
        max_payload_bytes=244, bitrate_bps=1e6, per_packet_overhead_bytes=21, propagation_s=10 / 299_792_458.0,
        duty_cycle=None, source=_BLE),
    LinkPreset(
        name="nbiot",
        description=("NB-IoT uplink (UE cat. NB1), illustrative: 20 kbit/s effective, 1600 B PDCP SDU limit, "
                     "28 B IPv4 + UDP per packet (no header compression), ~ 5 km to the cell"),
        max_payload_bytes=1600 - 28, bitrate_bps=20e3, per_packet_overhead_bytes=28,
        propagation_s=5e3 / 299_792_458.0, duty_cycle=None, source=_NBIOT, illustrative=True),
    LinkPreset(
        name="iridium_sbd",
        description=("Iridium Short Burst Data, mobile-originated (LEO): 340 B per message at 2.4 kbit/s, "
                     "illustrative 1 s per-message session set-up, ~ 8 ms one-way via one satellite"),
        max_payload_bytes=340, bitrate_bps=2400.0, per_packet_overhead_bytes=0, propagation_s=0.008,
        duty_cycle=None, source=_IRIDIUM, illustrative=True, per_packet_time_s=1.0),
    LinkPreset(
        name="geo_sat",
        description=("GEO satellite low-rate data link (Inmarsat-class), illustrative: 2.4 kbit/s, 512 B "
                     "frames, 8 B link framing, 0.27 s one-way (one GEO hop)"),
        max_payload_bytes=512, bitrate_bps=2400.0, per_packet_overhead_bytes=8, propagation_s=0.27,
        duty_cycle=None, source=_GEO, illustrative=True),
    LinkPreset(
        name="acoustic",
        description=("Underwater acoustic modem (WHOI Micro-Modem-class PSK), illustrative: 5 kbit/s, 256 B "
                     "frames, 0.2 s acquisition preamble per frame, 1 km range at 1500 m/s (0.67 s)"),
        max_payload_bytes=256, bitrate_bps=5000.0, per_packet_overhead_bytes=0, propagation_s=1000 / 1500.0,
        duty_cycle=None, source=_WHOI, illustrative=True, per_packet_time_s=0.2),
)}
"""The link presets by name (see each preset's ``source`` and ``illustrative``)."""


def get_link_preset(name: str) -> LinkPreset:
    """The preset called ``name``; ParameterError listing the known names otherwise."""
    try:
        return LINK_PRESETS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown link preset {name!r}; known: {', '.join(LINK_PRESETS)}") from None


JITTERS: tuple[str, ...] = ("none", "uniform", "normal", "exponential")


@dataclass(frozen=True)
class LinkConfig:
    """A point-to-point link with a drop-tail queue.

    Attributes:
        bandwidth_bps: link rate in bit/s (> 0); serialization of s bytes takes 8·s / bandwidth_bps.
        propagation_s: one-way propagation delay (≥ 0).
        jitter: ``"none"``; ``"uniform"`` J ~ U(−jitter_s, +jitter_s); ``"normal"``
            J ~ N(0, jitter_s²); ``"exponential"`` J ~ Exp(mean jitter_s).  The
            symmetric ones are truncated so that propagation_s + J ≥ 0 (uniform:
            drawn on [max(−jitter_s, −propagation_s), jitter_s]; normal: redrawn).
        jitter_s: jitter scale in seconds (≥ 0).
        queue_packets: drop-tail capacity in waiting packets (≥ 0), None = unbounded.
        queue_bytes: drop-tail capacity in waiting bytes (≥ 0), None = unbounded.
        overhead_bytes: lower-layer bytes per packet counted on the link
            (e.g. 28 for IPv4 + UDP), ≥ 0; they are not corrupted or sent to the receiver.
        duty_cycle: None (default: no rule) or dc in (0, 1]: after each packet the link
            stays silent for T_off = airtime · (1/dc − 1) (the packet's serialization
            time is its airtime); waiting packets queue meanwhile.
        preset: None (default) or a ``LINK_PRESETS`` name: packets may not exceed the
            preset's ``max_payload_bytes``, and the airtime of a packet is the preset's
            (LoRa: the symbol-count formula; others 8·s / bandwidth_bps plus the
            preset's ``per_packet_time_s``).  ``from_preset`` fills the other fields.

    With ``duty_cycle`` and ``preset`` left None the link behaves exactly as before
    they existed (no extra events, same floating-point times).
    """

    bandwidth_bps: float = 10e6
    propagation_s: float = 0.02
    jitter: str = "none"
    jitter_s: float = 0.0
    queue_packets: int | None = None
    queue_bytes: int | None = None
    overhead_bytes: int = 0
    duty_cycle: float | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bandwidth_bps) and self.bandwidth_bps > 0):
            raise ParameterError(f"bandwidth_bps must be a finite number > 0, got {self.bandwidth_bps}")
        if not (math.isfinite(self.propagation_s) and self.propagation_s >= 0):
            raise ParameterError(f"propagation_s must be finite and ≥ 0, got {self.propagation_s}")
        if self.jitter not in JITTERS:
            raise ParameterError(f"jitter must be one of {JITTERS}, got {self.jitter!r}")
        if not (math.isfinite(self.jitter_s) and self.jitter_s >= 0):
            raise ParameterError(f"jitter_s must be finite and ≥ 0, got {self.jitter_s}")
        for name in ("queue_packets", "queue_bytes"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
                raise ParameterError(f"{name} must be None (unbounded) or an int ≥ 0, got {v!r}")
        if not isinstance(self.overhead_bytes, (int, np.integer)) or self.overhead_bytes < 0:
            raise ParameterError(f"overhead_bytes must be an int ≥ 0, got {self.overhead_bytes!r}")
        dc = self.duty_cycle
        if dc is not None and (isinstance(dc, bool) or not isinstance(dc, (int, float, np.floating))
                               or not 0 < dc <= 1):
            raise ParameterError(f"duty_cycle must be None (no rule) or a number in (0, 1], got {dc!r}")
        if self.preset is not None:
            get_link_preset(self.preset)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "LinkConfig":
        """The link of preset ``name`` (bit rate, overhead, propagation, duty cycle); ``overrides`` replace fields."""
        p = get_link_preset(name)
        kw: dict[str, Any] = {"bandwidth_bps": p.bitrate_bps, "propagation_s": p.propagation_s,
                              "overhead_bytes": p.per_packet_overhead_bytes, "duty_cycle": p.duty_cycle}
        kw.update(overrides)
        return cls(**kw, preset=name)

    @property
    def link_preset(self) -> "LinkPreset | None":
        """The ``LinkPreset`` named by ``preset`` (None without one)."""
        return None if self.preset is None else LINK_PRESETS[self.preset]

    @property
    def max_packet_bytes(self) -> int | None:
        """Largest packet (vqsim bytes, link overhead excluded) the link carries; None = no limit."""
        p = self.link_preset
        return None if p is None else p.max_payload_bytes

    def serialization_s(self, nbytes: np.ndarray | int) -> np.ndarray:
        """Serialization time (airtime) of packets of ``nbytes`` (overhead included by the caller)."""
        p = self.link_preset
        if p is None:
            return np.asarray(nbytes, dtype=np.float64) * 8.0 / self.bandwidth_bps
        nb = np.asarray(nbytes, dtype=np.int64)
        if p.lora is not None:  # one formula evaluation per distinct size
            u, inv = np.unique(nb.reshape(-1), return_inverse=True)
            t = np.array([p.lora.time_on_air_s(int(v)) for v in u])[inv].reshape(nb.shape)
        else:
            t = nb * 8.0 / self.bandwidth_bps
        return t + p.per_packet_time_s

    def off_time_s(self, airtime_s: np.ndarray) -> np.ndarray | None:
        """Duty-cycle silence after each packet, airtime·(1/dc − 1); None without a duty-cycle rule."""
        if self.duty_cycle is None:
            return None
        return np.asarray(airtime_s, dtype=np.float64) * (1.0 / self.duty_cycle - 1.0)

    def draw_delays(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Propagation + jitter of n packets, (n,) float64, all ≥ 0 (one vectorized draw)."""
        prop, j = self.propagation_s, self.jitter_s
        if self.jitter == "none" or j == 0.0:
            return np.full(n, prop)
        if self.jitter == "uniform":
            return prop + rng.uniform(max(-j, -prop), j, size=n)
        if self.jitter == "exponential":
            return prop + rng.exponential(j, size=n)
        x = rng.normal(0.0, j, size=n)  # truncated normal: redraw the values below −prop
        for _ in range(64):
            bad = np.flatnonzero(x < -prop)
            if bad.size == 0:
                break
            x[bad] = rng.normal(0.0, j, size=bad.size)
        return prop + np.maximum(x, -prop)

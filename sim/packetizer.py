"""Packetizer and depacketizer: IndexMap ⇄ independently decodable packets.

Packetizing
-----------
``mtu`` is the largest *payload* of a data packet in bytes; each packet adds
``packet.OVERHEAD`` = 40 bytes of header + CRC (and, on the wire, the optional
in-packet RS parity).  FEC parity packets carry one parity symbol of
(largest data packet + 2) bytes, so they may exceed ``mtu`` by up to 42 bytes.

The positions are split among P data packets by an interleaver
(``sim.interleave``) with a *balanced* split (packet sizes differ by at most
one index), so which positions packet j carries follows from the header
fields (scheme, seed, seq, count, h, w) alone.  Every packet's payload is
coded on its own (the coder restarts in each packet) with
``codec.entropy.encode_symbols``, so a packet decodes without any other.

Choosing P: start from P = ⌈(coded size of the whole map) / mtu⌉, code every
packet, and while the largest payload exceeds ``mtu`` raise P to
max(P + 1, ⌈P · largest / mtu⌉) and recode.  For ``"raw"`` (exact size
⌈n·b/8⌉) this ends in one or two rounds; for the variable-length coders it
plays the role of a greedy fill while keeping the balanced split (a true
greedy fill would give packets data-dependent position sets that a receiver
could not infer for lost packets).  Every payload is checked against ``mtu``.

Depacketizing
-------------
``depacketize`` never raises on bad input packets: each one is dropped and
counted by reason (``packet.REASONS``).  A packet whose header claims a map or
image larger than the receiver's ``codec.limits.DecodeLimits`` (default 2^15
indices, 2^21 pixels) is dropped as ``"over_limit"`` before anything is
allocated for it, and so is one claiming a codebook size K above the
limits' ``max_codebook_size`` (default 2^16): each packet restarts its coder,
so an arithmetic-coded packet costs a model of K counts whatever its payload
holds (a copy of a cached template, ≤ ≈ 0.5 ms at the cap).  Packets are grouped by their header
"stream key" (image id, count, K, h, w, image size, scheme, coder, seed, FEC
n/k and code); the key fixed by the caller's expectations, else the most common one,
is the image, and packets with another key are ``"foreign"``.  Reordering is
harmless and only counted (``"reordered"``, not a drop reason).  Missing data
packets are rebuilt from FEC parity when their block has enough packets.

Compact header
--------------
``header="compact"`` (``sim.packet``: 4–6 header bytes and a 1/2/4-byte CRC
instead of 40 bytes) moves the stream's shared fields into a
``CompactSession`` that the receiver must be given (``session=``; the
sender's is ``packets[0].session``).  FEC parity is then computed over the
compact data packets, so the packets must be sent as
``p.to_bytes("compact")``.  Default: the 36-byte header, unchanged.

If no packet of the image arrives, the receiver still returns an all-lost map
as long as it knows the session parameters (``codebook_size`` and ``shape``;
``image_size`` defaults to ``codec.types.DEFAULT_DOWNSAMPLING``·shape, i.e.
16·shape) — pass them, as a real receiver would.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from codec.entropy import CONTEXT_CODERS, PACKET_CODERS, decode_symbols, encode_symbols
from codec.errors import BitstreamError, ParameterError
from codec.limits import DecodeLimits, LimitExceededError, resolve_limits
from codec.types import DEFAULT_DOWNSAMPLING, IndexMap

from .fec import BACKENDS, DEFAULT_CODE, ErasureFEC, FECError
from .interleave import SCHEMES, Interleaving, interleave, tile_boxes, tile_seed, tile_shape
from .packet import HEADERS, MAX_PAYLOAD, OVERHEAD, REASONS, CompactSession, Packet, PacketError, parse_packet

DEFAULT_MTU = 1200
MIN_MTU = 8
MAX_MTU = MAX_PAYLOAD - OVERHEAD - 2  # so FEC parity symbols still fit a packet
MAX_PACKETS = 0xFFFF

StreamKey = tuple[Any, ...]
"""``Packet.stream_key``: the header fields every packet of one image shares."""

TILE_SHAPES: tuple[tuple[int, int], ...] = (
    (32, 32), (24, 32), (24, 24), (16, 24), (16, 16), (12, 16), (8, 16), (8, 12), (8, 8), (6, 8), (4, 8),
    (4, 6), (4, 4), (2, 4), (2, 2), (1, 2), (1, 1))
"""Tile shapes (rows, cols) the ``tile`` interleaver tries, largest first: the largest whose every payload fits
``mtu`` is used (the packet count follows from it; wide tiles first, as Kodak-like maps are landscape)."""


class TileCoder(Protocol):
    """A packet coder for 2-D tiles (``codec.entropy.CONTEXT_CODERS``; e.g. ``codec.entropy.tf_ar.TileContextCoder``).

    ``encode_tile`` maps a (th, tw) int array of indices to payload bytes; ``decode_tile(payload, (th, tw))``
    inverts it or raises ``codec.errors.BitstreamError``.  The sender's and the receiver's coder must be the
    same model (a session parameter, like the ``arith`` coders' prior).
    """

    name: str

    def encode_tile(self, tile: np.ndarray) -> bytes: ...

    def decode_tile(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray: ...


def _check_image_id(image_id: int) -> None:
    if not 0 <= int(image_id) < 2**32:
        raise ParameterError(f"image_id must be in [0, 2^32), got {image_id}")


@dataclass(frozen=True)
class PacketizeOptions:
    """How an image is cut into packets: the one list of ``packetize``'s options.

    ``packetize``, ``NetworkSimulator.send`` and ``transmit`` take either one of
    these (``options=``) or the same names as keywords (which override the
    ``options`` given).  Checked when built.

    Attributes:
        mtu: maximum payload bytes of a data packet (see the module docstring),
            in [``MIN_MTU``, ``MAX_MTU``].
        interleave: one of ``interleave.SCHEMES``.
        seed: interleaver seed (used by ``"random"``), in [0, 2^32).
        coder: payload coder, one of ``codec.entropy.PACKET_CODERS``: a symbol coder
            (``CODERS``) codes each packet's run of indices; a context coder
            (``CONTEXT_CODERS``: ``"tf_tile"``) codes each packet's tile with
            ``context_coder`` and needs ``interleave="tile"``.
        fec: optional packet-level erasure code; then the order is, per block,
            k data packets followed by the block's n − k parity packets.  Its
            ``code`` is written into every header (flag bit), so the receiver
            decodes with the same code.
        prior: optional codebook histogram for the ``"arith"`` coders (the
            receiver must use the same).
        header: ``"full"`` (36-byte header, default) or ``"compact"`` (see the
            module docstring: parity covers the compact data packets).
        context_coder: the ``TileCoder`` of a context coder (the receiver needs the same one).

    With ``interleave="tile"`` the ``seed`` is not used: the packetizer picks the largest tile of
    :data:`TILE_SHAPES` whose payloads all fit ``mtu`` and writes its shape in the headers' seed field.

    Raises:
        ParameterError: a value out of its range or not one of its choices.
    """

    mtu: int = DEFAULT_MTU
    interleave: str = "raster"
    seed: int = 0
    coder: str = "raw"
    fec: ErasureFEC | None = None
    prior: np.ndarray | None = field(default=None, compare=False)
    header: str = "full"
    context_coder: TileCoder | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not MIN_MTU <= int(self.mtu) <= MAX_MTU:
            raise ParameterError(f"mtu must be in [{MIN_MTU}, {MAX_MTU}] payload bytes, got {self.mtu}")
        if self.interleave not in SCHEMES:
            raise ParameterError(f"interleave must be one of {SCHEMES}, got {self.interleave!r}")
        if self.coder not in PACKET_CODERS:
            raise ParameterError(f"coder must be one of {PACKET_CODERS}, got {self.coder!r}")
        if self.coder in CONTEXT_CODERS:
            if self.interleave != "tile":
                raise ParameterError(f"coder {self.coder!r} codes rectangular tiles: use interleave='tile' "
                                     f"(got {self.interleave!r})")
            if self.context_coder is None or getattr(self.context_coder, "name", None) != self.coder:
                raise ParameterError(f"coder {self.coder!r} needs context_coder= (the transformer both ends use, "
                                     "e.g. codec.entropy.tf_ar.TileContextCoder.for_codebook('default/1024', 1024))")
        if not 0 <= int(self.seed) < 2**32:
            raise ParameterError(f"seed must be in [0, 2^32), got {self.seed}")

    def _check_header(self) -> None:  # checked after image_id, as packetize always did
        if self.header not in HEADERS:
            raise ParameterError(f"header must be one of {HEADERS}, got {self.header!r}")

    @classmethod
    def resolve(cls, options: PacketizeOptions | None, overrides: dict[str, Any]) -> PacketizeOptions:
        """``options`` (default: all defaults) with the keyword ``overrides`` applied.

        Raises:
            TypeError: a keyword that is not a field (as for any unexpected keyword argument).
        """
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be a PacketizeOptions, got {type(options).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}; packetize options are {sorted(names)}")
        if options is None:
            return cls(**overrides)
        return dataclasses.replace(options, **overrides) if overrides else options


def encode_payloads(index_map: IndexMap, num_packets: int, scheme: str, seed: int, coder: str,
                    prior: np.ndarray | None = None, context_coder: TileCoder | None = None) -> list[bytes]:
    """Coded payload of each of the P data packets (coder restarted per packet; a context coder per tile)."""
    h, w = index_map.shape
    if coder in CONTEXT_CODERS:
        if context_coder is None:
            raise ParameterError(f"coder {coder!r} needs a context_coder")
        boxes = tile_boxes(h, w, *tile_shape(seed))
        a = index_map.indices
        return [context_coder.encode_tile(a[t:t + r, lf:lf + c]) for t, lf, r, c in boxes]
    il = interleave(scheme, h, w, num_packets, seed)
    flat = index_map.indices.reshape(-1)[il.order]
    b = il.bounds
    K = index_map.codebook_size
    return [encode_symbols(flat[b[j]:b[j + 1]], K, coder, prior) for j in range(num_packets)]


CONTEXT_GAIN = 0.75
"""Where ``tile`` starts its search for a context coder: the largest tile whose size times this fraction of
the ``arith`` coder's bits per index fits ``mtu`` (``tf_tile`` measured 0.78-0.83 of ``arith`` on Kodak)."""


def _first_tile(index_map: IndexMap, opts: PacketizeOptions) -> int:
    """Index into :data:`TILE_SHAPES` of the first tile worth coding (larger ones cannot fit ``mtu``)."""
    K = index_map.codebook_size
    a = index_map.indices.reshape(-1)
    coder = "arith" if opts.coder in CONTEXT_CODERS else opts.coder
    bits = 8 * len(encode_symbols(a, K, coder, opts.prior)) / a.size
    if opts.coder in CONTEXT_CODERS:
        bits *= CONTEXT_GAIN
    fits = [i for i, (th, tw) in enumerate(TILE_SHAPES) if th * tw * bits <= 8 * opts.mtu]
    return fits[0] if fits else len(TILE_SHAPES) - 1


def _count_tiles(index_map: IndexMap, opts: PacketizeOptions) -> tuple[int, int, list[bytes]]:
    """(P, seed, payloads) of the ``tile`` scheme: the largest :data:`TILE_SHAPES` tile whose payloads fit
    (trying from :func:`_first_tile` down)."""
    h, w = index_map.shape
    largest = 0
    for th, tw in TILE_SHAPES[_first_tile(index_map, opts):]:
        th, tw = min(th, h), min(tw, w)
        seed = tile_seed(th, tw)
        P = len(tile_boxes(h, w, th, tw))
        if P > MAX_PACKETS:
            break
        payloads = encode_payloads(index_map, P, "tile", seed, opts.coder, opts.prior, opts.context_coder)
        largest = max(len(p) for p in payloads)
        if largest <= opts.mtu:
            return P, seed, payloads
    raise ParameterError(f"mtu={opts.mtu} is too small for the tile interleaver: the smallest tile tried "
                         f"needs {largest} bytes")


def _count_packets(index_map: IndexMap, opts: PacketizeOptions) -> tuple[int, int, list[bytes]]:
    """(P, seed, payloads): the fewest balanced packets whose payloads all fit ``opts.mtu`` (the seed is
    ``opts.seed``, except for the ``tile`` scheme, whose seed field names the tile shape)."""
    if opts.interleave == "tile":
        return _count_tiles(index_map, opts)
    mtu = opts.mtu
    h, w = index_map.shape
    N = h * w
    K = index_map.codebook_size
    total = len(encode_symbols(index_map.indices.reshape(-1), K, opts.coder, opts.prior))
    P = min(N, max(1, -(-total // mtu)))
    while True:
        payloads = encode_payloads(index_map, P, opts.interleave, opts.seed, opts.coder, opts.prior)
        largest = max(len(p) for p in payloads)
        if largest <= mtu:
            return P, int(opts.seed), payloads
        if P >= min(N, MAX_PACKETS):
            raise ParameterError(f"mtu={mtu} is too small: a packet of {N // P} index(es) needs {largest} bytes"
                                 if P >= N else f"the map needs more than {MAX_PACKETS} packets at mtu={mtu}")
        P = min(N, MAX_PACKETS, max(P + 1, -(-P * largest // mtu)))


def packetize(index_map: IndexMap, options: PacketizeOptions | None = None, *, image_id: int = 0,
              **overrides: Any) -> list[Packet]:
    """Split an index map into packets, in send order.

    Args:
        index_map: the map to send (h, w ≤ 65535, image size ≤ 65535 px).
        options: mtu, interleaver, coder, FEC, prior and header (``PacketizeOptions``;
            default: its defaults).
        image_id: uint32 tag written in every header.
        **overrides: any field of ``PacketizeOptions`` by name (``mtu=``,
            ``interleave=``, ``seed=``, ``coder=``, ``fec=``, ``prior=``,
            ``header=``), replacing the one in ``options``.

    Returns:
        The packets (data and parity) in transmission order.

    Raises:
        ParameterError: bad options, or ``mtu`` too small for even one index per packet.
    """
    opts = PacketizeOptions.resolve(options, overrides)
    _check_image_id(image_id)
    opts._check_header()
    P, seed, payloads = _count_packets(index_map, opts)
    if P > MAX_PACKETS:  # pragma: no cover - _count_packets caps P
        raise ParameterError(f"the map needs more than {MAX_PACKETS} packets at mtu={opts.mtu}")
    scheme, coder, fec, header = opts.interleave, opts.coder, opts.fec, opts.header
    h, w = index_map.shape
    K = index_map.codebook_size
    iid, isz = int(image_id), index_map.image_size
    n, k, code = (fec.n, fec.k, fec.code) if fec is not None else (0, 0, DEFAULT_CODE)
    # the first packet goes through full validation; the rest share its checked fields
    first = Packet(iid, 0, P, K, h, w, isz, scheme, coder, seed, payloads[0], False, 0, n, k, code)

    def data_packet(j: int) -> Packet:
        return Packet._trusted(iid, j, P, K, h, w, isz, scheme, coder, seed, payloads[j], False,
                               j // k if k else 0, n, k, code)

    if fec is None:
        return [data_packet(j) for j in range(P)]
    if header == "compact" and fec.num_blocks(P) * (n - k) > MAX_PACKETS:
        raise ParameterError(f"{fec.num_blocks(P) * (n - k)} parity packets do not fit the compact header's "
                             f"16-bit sequence number")
    to_bytes = Packet.to_bytes if header == "full" else first.session.encode
    out: list[Packet] = []
    for blk in range(fec.num_blocks(P)):
        data = [data_packet(j) for j in range(blk * k, min(P, (blk + 1) * k))]
        out.extend(data)
        parity = fec.encode_block([to_bytes(p) for p in data])
        if blk == 0:  # validate one parity packet; the others differ only in seq / block / payload
            Packet(iid, 0, P, K, h, w, isz, scheme, coder, seed, parity[0], True, 0, n, k, code)
        out.extend(Packet._trusted(iid, i, P, K, h, w, isz, scheme, coder, seed, sym, True, blk, n, k, code)
                   for i, sym in enumerate(parity))
    return out


@dataclass
class DepacketizeResult:
    """What the receiver rebuilt.

    Attributes:
        index_map: received map, lost positions filled with 0.
        lost_mask: bool (h, w), True where the index did not arrive.
        counts_by_reason: dropped packets per reason (every key of
            ``packet.REASONS``) plus ``"reordered"`` (informational, not dropped).
        num_data_packets: P from the headers (0 if no packet arrived).
        data_received: data packets received intact (before FEC; a packet whose CRC
            passed but whose payload does not decode is "bad_payload", not intact).
        recovered_fec: data packets rebuilt from parity.
        lost_packets: bool (P,), data packets finally missing.
        image_id: the image id of the accepted stream (None if no packet).
    """

    index_map: IndexMap
    lost_mask: np.ndarray
    counts_by_reason: dict[str, int]
    num_data_packets: int = 0
    data_received: int = 0
    recovered_fec: int = 0
    lost_packets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    image_id: int | None = None

    @property
    def num_lost(self) -> int:
        return int(self.lost_mask.sum())

    @property
    def loss_ratio(self) -> float:
        return float(self.num_lost / self.lost_mask.size)


@dataclass
class _Receiver:
    """The receiver's fixed settings and its drop counters, shared by the steps of ``depacketize``."""

    header: str
    session: CompactSession | None
    expected_image_id: int | None
    codebook_size: int | None
    shape: tuple[int, int] | None
    image_size: tuple[int, int] | None
    prior: np.ndarray | None
    counts: Counter[str]

    def fits(self, p: Packet) -> bool:
        """Whether a packet agrees with the session parameters the caller gave."""
        return ((self.expected_image_id is None or p.image_id == self.expected_image_id)
                and (self.codebook_size is None or p.codebook_size == self.codebook_size)
                and (self.shape is None or (p.h, p.w) == tuple(self.shape))
                and (self.image_size is None or p.image_size == tuple(self.image_size)))


def _parse_all(items: Iterable[bytes | bytearray | memoryview | Packet], rx: _Receiver,
               max_packet_size: int | None, limits: DecodeLimits) -> list[tuple[Packet, bytes]]:
    """Every item that parses and is within ``limits``, with its bytes; the others counted by reason."""
    counts = rx.counts
    parsed: list[tuple[Packet, bytes]] = []
    sessions: dict[StreamKey, CompactSession] = {}
    for item in items:
        try:
            if isinstance(item, Packet):
                if rx.header == "full":
                    raw = item.to_bytes()
                else:  # one CompactSession per stream, not one per packet
                    key = item.stream_key[2:]  # the fields a CompactSession holds
                    if key not in sessions:
                        sessions[key] = item.session
                    raw = sessions[key].encode(item)
                pkt = item
                if max_packet_size is not None and len(raw) > max_packet_size:
                    raise PacketError("oversized")
            elif isinstance(item, (bytes, bytearray, memoryview)):
                raw = bytes(item)
                pkt = parse_packet(raw, rx.header, rx.session, image_id=rx.expected_image_id,
                                   max_size=max_packet_size)
            else:
                counts["bad_type"] += 1
                continue
        except PacketError as e:
            counts[e.reason] += 1
            continue
        try:
            limits.check(pkt.h, pkt.w, *pkt.image_size, what="packet header", codebook_size=pkt.codebook_size)
        except LimitExceededError:
            counts["over_limit"] += 1
            continue
        parsed.append((pkt, raw))
    return parsed


def _choose_stream(parsed: list[tuple[Packet, bytes]],
                   rx: _Receiver) -> tuple[StreamKey | None, list[tuple[Packet, bytes]]]:
    """The image's stream key (the caller's expectations, else the most common) and its packets; others "foreign"."""
    votes = Counter(p.stream_key for p, _ in parsed if rx.fits(p))
    key = max(votes, key=votes.__getitem__) if votes else None  # ties: first seen (Counter keeps order)
    accepted: list[tuple[Packet, bytes]] = []
    for p, raw in parsed:
        if p.stream_key == key:
            accepted.append((p, raw))
        else:
            rx.counts["foreign"] += 1
    return key, accepted


def _all_lost(rx: _Receiver, codebook_id: str | None) -> DepacketizeResult:
    """The result when no packet of the image arrived: an all-lost map of the session's size."""
    if rx.codebook_size is None or rx.shape is None:
        raise PacketError("no_packets", "no valid packet arrived; pass codebook_size and shape "
                          "(the session parameters) to get an all-lost map")
    h, w = (int(v) for v in rx.shape)
    f = DEFAULT_DOWNSAMPLING
    isz = rx.image_size if rx.image_size is not None else (f * h, f * w)
    imap = IndexMap(np.zeros((h, w), np.int32), int(rx.codebook_size), isz, codebook_id)
    return DepacketizeResult(imap, np.ones((h, w), dtype=bool), dict(rx.counts))


def _split_duplicates(accepted: list[tuple[Packet, bytes]], counts: Counter[str]
                      ) -> tuple[dict[int, tuple[Packet, bytes]], dict[tuple[int, int], bytes]]:
    """Data packets by seq and parity payloads by (block, index); duplicates dropped, reordering counted."""
    data: dict[int, tuple[Packet, bytes]] = {}
    parity: dict[tuple[int, int], bytes] = {}
    last = -1
    for p, raw in accepted:
        if (p.parity and (p.block, p.seq) in parity) or (not p.parity and p.seq in data):
            counts["duplicate"] += 1
            continue
        if p.send_index < last:
            counts["reordered"] += 1
        last = max(last, p.send_index)
        if p.parity:
            parity[(p.block, p.seq)] = p.payload
        else:
            data[p.seq] = (p, raw)
    return data, parity


class _PayloadDecoder:
    """Entropy-decodes data payloads into ``decoded``; a payload that does not decode is "bad_payload"."""

    def __init__(self, il: Interleaving, codebook_size: int, prior: np.ndarray | None, counts: Counter[str],
                 context_coder: TileCoder | None = None) -> None:
        self.il = il
        self.codebook_size = codebook_size
        self.prior = prior
        self.counts = counts
        self.context_coder = context_coder
        self.boxes = tile_boxes(il.h, il.w, *tile_shape(il.seed)) if il.scheme == "tile" else None
        self.decoded: dict[int, np.ndarray] = {}

    def all_of(self, data: dict[int, tuple[Packet, bytes]]) -> None:
        """Decode every received data packet; one that does not decode leaves ``data`` (its slot is missing)."""
        for j in sorted(data):
            if not self(j, data[j][0]):
                del data[j]

    def assemble(self, num_packets: int, image_size: tuple[int, int],
                 codebook_id: str | None) -> tuple[IndexMap, np.ndarray]:
        """The map (lost positions 0) and the bool (P,) mask of data packets finally missing."""
        il = self.il
        flat = np.zeros(il.h * il.w, dtype=np.int32)
        got_pkt = np.zeros(num_packets, dtype=bool)
        for j, vals in self.decoded.items():
            flat[il.positions(j)] = vals
            got_pkt[j] = True
        return IndexMap(flat.reshape(il.h, il.w), self.codebook_size, image_size, codebook_id), ~got_pkt

    def __call__(self, j: int, p: Packet) -> bool:
        try:
            if p.coder in CONTEXT_CODERS:
                assert self.context_coder is not None and self.boxes is not None  # checked by depacketize
                shape = (int(self.boxes[j, 2]), int(self.boxes[j, 3]))
                vals = np.asarray(self.context_coder.decode_tile(p.payload, shape)).reshape(-1)
                if vals.size != shape[0] * shape[1] or vals.min() < 0 or vals.max() >= self.codebook_size:
                    raise BitstreamError("tile decodes to the wrong size or out-of-range indices")
                self.decoded[j] = vals
            else:
                self.decoded[j] = decode_symbols(p.payload, self.il.positions(j).size, self.codebook_size, p.coder,
                                                 self.prior)
            return True
        except (BitstreamError, ValueError):
            self.counts["bad_payload"] += 1
            return False


def _recover_fec(first: Packet, key: StreamKey, data: dict[int, tuple[Packet, bytes]],
                 parity: dict[tuple[int, int], bytes], decode: _PayloadDecoder, rx: _Receiver,
                 fec_backend: str) -> int:
    """Rebuild missing data packets of each block from its parity (added to ``data``); returns how many."""
    P = first.count
    fec = ErasureFEC(first.fec_n, first.fec_k, first.fec_code,
                     fec_backend if first.fec_code == "vandermonde" else "auto")
    k = fec.k
    counts = rx.counts
    recovered = 0
    for blk in range(fec.num_blocks(P)):
        lo, hi = blk * k, min(P, (blk + 1) * k)
        if all(j in data for j in range(lo, hi)):
            continue
        par = {i: s for (b, i), s in parity.items() if b == blk}
        if not par:
            continue
        got = {j - lo: data[j][1] for j in range(lo, hi) if j in data}
        try:
            rec = fec.decode_block(got, par, hi - lo)
        except FECError:
            counts["fec_failed"] += 1
            continue
        for jj, raw in rec.items():
            try:
                p = parse_packet(raw, rx.header, rx.session, image_id=rx.expected_image_id)
            except PacketError:
                counts["fec_failed"] += 1
                continue
            if p.stream_key != key or p.parity or p.seq != lo + jj:
                counts["fec_failed"] += 1
                continue
            if not decode(p.seq, p):
                continue
            data[p.seq] = (p, raw)
            recovered += 1
    return recovered


def _stream_interleaving(first: Packet, context_coder: TileCoder | None) -> Interleaving | None:
    """The stream's interleaving from its header fields; None when the receiver cannot decode the stream: the
    fields name no valid interleaving (a tile seed that is no tile shape, a count that is not the grid's tile
    count, a context coder without the tile scheme), or it is context-coded and no such coder was given
    (a UserWarning names the fix)."""
    if first.coder in CONTEXT_CODERS:
        if first.scheme != "tile":
            return None
        if getattr(context_coder, "name", None) != first.coder:
            warnings.warn(f"depacketize: the packets are coded with {first.coder!r} and no context_coder= of that "
                          "coder was given: the stream is dropped as 'bad_field' (pass the sender's TileCoder)",
                          stacklevel=3)
            return None
    try:
        return interleave(first.scheme, first.h, first.w, first.count, first.seed)
    except ParameterError:
        return None


def _check_receiver(fec_backend: str, header: str, session: CompactSession | None) -> None:
    if fec_backend not in BACKENDS:
        raise ParameterError(f"fec_backend must be one of {BACKENDS}, got {fec_backend!r}")
    if header not in HEADERS:
        raise ParameterError(f"header must be one of {HEADERS}, got {header!r}")
    if header == "compact" and not isinstance(session, CompactSession):
        raise ParameterError("header='compact' needs session= (the stream's CompactSession)")


def depacketize(
    packets: Iterable[bytes | bytearray | memoryview | Packet],
    *,
    expected_image_id: int | None = None,
    codebook_size: int | None = None,
    shape: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
    codebook_id: str | None = None,
    prior: np.ndarray | None = None,
    max_packet_size: int | None = None,
    limits: DecodeLimits | None = None,
    fec_backend: str = "auto",
    header: str = "full",
    session: CompactSession | None = None,
    context_coder: TileCoder | None = None,
) -> DepacketizeResult:
    """Rebuild an index map from whatever packets arrived, in any order.

    Args:
        packets: received packets (bytes, or already parsed ``Packet``).
        expected_image_id: accept only this image id (others are "foreign").
        codebook_size, shape, image_size: session parameters the receiver
            knows; packets disagreeing are "foreign".  ``codebook_size`` and
            ``shape`` are required when no packet may arrive at all.
        codebook_id: written into the returned IndexMap (not on the wire).
        prior: histogram for the "arith" coders (same as the sender's).
        max_packet_size: packets longer than this are "oversized".
        limits: largest map / image / codebook size a packet (or the compact
            ``session``) may claim (default ``DecodeLimits.from_env()``);
            larger claims are "over_limit".
        fec_backend: who decodes the erasure code the headers name
            (``sim.fec.BACKENDS``; "auto": zfec for "vandermonde" when importable;
            the Cauchy code is always decoded with numpy).
        header: ``"full"`` (default) or ``"compact"``; then ``session`` (the
            stream's ``CompactSession``) is required.  A compact packet of
            another session fails its CRC ("bad_crc").

    Returns:
        ``DepacketizeResult``.

    Raises:
        ParameterError: unknown ``fec_backend``, or "zfec" when zfec is not
            installed and a "vandermonde" block needs decoding.
        PacketError("no_packets"): no valid packet arrived and ``codebook_size``
            / ``shape`` were not given, so there is nothing to build the map from.

    A stream whose header fields name no valid interleaving (a ``tile`` seed that is no
    tile shape, or a count that is not the grid's tile count; a context coder without
    the ``tile`` scheme), or a context-coded stream when no ``context_coder`` of that
    coder was given (with a ``UserWarning`` naming the fix), is dropped as "bad_field"
    and the map returned all lost.
    """
    _check_receiver(fec_backend, header, session)
    counts: Counter[str] = Counter({r: 0 for r in REASONS})
    counts["reordered"] = 0
    rx = _Receiver(header, session, expected_image_id, codebook_size, shape, image_size, prior, counts)
    parsed = _parse_all(packets, rx, max_packet_size, resolve_limits(limits))

    # ---- choose the stream (image) and drop foreign packets
    key, accepted = _choose_stream(parsed, rx)
    if key is None:
        return _all_lost(rx, codebook_id)
    first = accepted[0][0]
    P, K, h, w = first.count, first.codebook_size, first.h, first.w

    # ---- duplicates and reordering
    data, parity = _split_duplicates(accepted, counts)

    # ---- decode every received payload first: one that passes its CRC but not its entropy decoder
    # (the compact header's CRC-8 lets ~1/256 random corruptions through) is "bad_payload" and its
    # slot counts as missing, so FEC can rebuild it (and no parity is solved with its bytes)
    il = _stream_interleaving(first, context_coder)
    if il is None:
        counts["bad_field"] += len(accepted)
        return _all_lost(dataclasses.replace(rx, codebook_size=K, shape=(h, w),
                                             image_size=first.image_size), codebook_id)
    decode = _PayloadDecoder(il, K, prior, counts, context_coder)
    decode.all_of(data)
    data_received = len(data)

    # ---- FEC recovery of missing data packets
    recovered = 0
    if first.fec_n and len(data) < P and parity:
        recovered = _recover_fec(first, key, data, parity, decode, rx, fec_backend)

    # ---- the decoded payloads into the map
    imap, lost_packets = decode.assemble(P, first.image_size, codebook_id)
    return DepacketizeResult(imap, il.lost_mask(lost_packets), dict(counts), P, data_received, recovered,
                             lost_packets, first.image_id)

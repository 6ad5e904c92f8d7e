"""tf_tile: the packet-level context coder (one tile of the map per packet, coded with the shipped AR transformer)."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from codec.entropy import CODERS, CONTEXT_CODERS, PACKET_CODERS
from codec.entropy.tf_ar import TileContextCoder
from codec.errors import BitstreamError, ParameterError, VQSimError
from sim.interleave import tile_boxes, tile_shape
from sim.packet import HEADER_SIZE, Packet
from sim.packetizer import TILE_SHAPES, PacketizeOptions, depacketize, packetize


@pytest.fixture(scope="module")
def coder():
    return TileContextCoder.for_codebook("default/1024", 1024)


@pytest.fixture(scope="module")
def real(kodim01):
    """The default codec's K = 1,024 index map of the 256x384 top-left crop of kodim01 (16x24 indices)."""
    from codec.zoo import load_codec

    codec = load_codec("default", 1024, device="cpu")
    imap = codec.encode_indices(kodim01[:256, :384])
    assert imap.shape == (16, 24) and imap.codebook_size == 1024
    return imap, codec


@pytest.fixture(scope="module")
def tiled(real, coder):
    """The real map packetized with tf_tile at mtu 128."""
    imap, _ = real
    return packetize(imap, mtu=128, interleave="tile", coder="tf_tile", context_coder=coder, image_id=3)


def session(m):
    return dict(codebook_size=m.codebook_size, shape=m.shape, image_size=m.image_size, codebook_id=m.codebook_id)


def tiles_mask(h, w, seed, tiles):
    mask = np.zeros((h, w), dtype=bool)
    for t, lf, r, c in tile_boxes(h, w, *tile_shape(seed))[list(tiles)]:
        mask[t:t + r, lf:lf + c] = True
    return mask


def test_packet_coder_ids():
    """The context coder comes after every symbol coder, so existing packet headers keep their coder byte."""
    assert CONTEXT_CODERS == ("tf_tile",) and PACKET_CODERS == (*CODERS, "tf_tile")
    assert TileContextCoder.name == "tf_tile"


# --------------------------------------------------------------------------------------- the tile coder
@pytest.mark.parametrize("top,left,th,tw", [(0, 0, 1, 1), (3, 5, 1, 7), (2, 20, 7, 1), (9, 11, 3, 5),
                                            (11, 0, 5, 13), (8, 8, 8, 16)])
def test_tiles_round_trip_bit_exact(real, coder, top, left, th, tw):
    imap, _ = real
    tile = np.ascontiguousarray(imap.indices[top:top + th, left:left + tw])
    assert tile.shape == (th, tw)
    payload = coder.encode_tile(tile)
    assert isinstance(payload, bytes) and len(payload) % 4 == 0 and len(payload) >= 4  # 32-bit words, no header
    back = coder.decode_tile(payload, (th, tw))
    assert back.dtype == np.int32 and back.shape == (th, tw) and np.array_equal(back, tile)


def test_edge_tiles_of_an_odd_grid_round_trip(real, coder):
    """5x7 tiles of the 16x24 map: 5x7 inside, 5x3 on the right edge, 1x7 at the bottom, a 1x3 corner."""
    imap, _ = real
    shapes = set()
    for t, lf, r, c in tile_boxes(16, 24, 5, 7)[[2, 3, 14, 15]]:
        tile = imap.indices[t:t + r, lf:lf + c]
        shapes.add((int(r), int(c)))
        assert np.array_equal(coder.decode_tile(coder.encode_tile(tile), (r, c)), tile)
    assert shapes == {(5, 7), (5, 3), (1, 7), (1, 3)}


def test_encode_tile_rejects_bad_tiles(coder):
    for bad in (np.zeros(6, np.int64), np.zeros((0, 3), np.int64), np.full((2, 2), 1024), np.full((2, 2), -1)):
        with pytest.raises(ParameterError):
            coder.encode_tile(bad)


# --------------------------------------------------------------------------------------- packetized
def test_whole_map_fits_mtu_and_beats_arith(real, coder, tiled):
    imap, codec = real
    pk = tiled
    th, tw = tile_shape(pk[0].seed)
    assert (th, tw) in TILE_SHAPES
    assert len(pk) == len(tile_boxes(16, 24, th, tw)) > 1
    assert all(p.scheme == "tile" and p.coder == "tf_tile" and p.seed == pk[0].seed for p in pk)
    assert all(len(p.payload) <= 128 for p in pk)
    arith = packetize(imap, mtu=128, interleave="random", coder="arith", prior=codec.prior)
    ours, theirs = sum(len(p.payload) for p in pk), sum(len(p.payload) for p in arith)
    assert ours < theirs                              # 344 vs 420 bytes for this crop
    res = depacketize([p.to_bytes() for p in pk], context_coder=coder, **session(imap))
    assert res.index_map == imap and not res.lost_mask.any() and res.image_id == 3
    assert sum(res.counts_by_reason.values()) == 0


def test_lost_packets_cost_exactly_their_tiles(real, coder, tiled):
    imap, _ = real
    wire = [p.to_bytes() for p in tiled]
    P, seed = len(wire), tiled[0].seed
    for lost in ([0], [1, P - 1]):
        kept = [b for j, b in enumerate(wire) if j not in lost][::-1]     # any order
        res = depacketize(kept, context_coder=coder, **session(imap))
        want = tiles_mask(16, 24, seed, lost)
        assert np.array_equal(res.lost_mask, want)
        assert res.lost_packets.tolist() == [j in lost for j in range(P)]
        assert res.data_received == P - len(lost)
        assert np.array_equal(res.index_map.indices[~want], imap.indices[~want])
        assert np.all(res.index_map.indices[want] == 0)


def test_fec_rebuilds_a_lost_tile(real, coder):
    from sim.fec import ErasureFEC

    imap, _ = real
    pk = packetize(imap, mtu=128, interleave="tile", coder="tf_tile", context_coder=coder, fec=ErasureFEC(3, 2))
    res = depacketize([p.to_bytes() for p in pk if p.parity or p.seq != 0], context_coder=coder, **session(imap))
    assert res.recovered_fec == 1 and not res.lost_mask.any() and res.index_map == imap


def _with_payload(p: Packet, payload: bytes) -> Packet:
    return Packet(p.image_id, p.seq, p.count, p.codebook_size, p.h, p.w, p.image_size, p.scheme, p.coder, p.seed,
                  payload)


def test_corrupted_payloads_are_bad_payload(real, coder, tiled):
    """Empty and non-word-length payloads (valid CRC) are refused as "bad_payload": their tiles are lost and
    every other tile arrives exact."""
    imap, _ = real
    P, seed = len(tiled), tiled[0].seed
    assert P >= 4
    bad = {0: b"", 1: tiled[1].payload[:-1], 2: tiled[2].payload[:-6], 3: tiled[3].payload[:3]}
    stream = [_with_payload(p, bad[p.seq]) if p.seq in bad else p for p in tiled]
    for items in (stream, [p.to_bytes() for p in stream]):
        res = depacketize(items, context_coder=coder, **session(imap))
        assert res.counts_by_reason["bad_payload"] == len(bad)
        assert sum(res.counts_by_reason.values()) == len(bad)
        want = tiles_mask(16, 24, seed, sorted(bad))
        assert np.array_equal(res.lost_mask, want) and res.data_received == P - len(bad)
        assert np.array_equal(res.index_map.indices[~want], imap.indices[~want])


def test_flipped_payload_bytes_with_fixed_crc_never_raise(real, coder, tiled):
    """Random byte flips in the coded words, CRC recomputed: each packet is refused ("bad_payload", its tile
    lost) or decodes to in-range indices; nothing but the project's errors ever escapes the coder."""
    imap, _ = real
    rng = np.random.default_rng(0)
    P, seed = len(tiled), tiled[0].seed
    refused = 0
    for trial in range(3):
        wire = []
        for p in tiled:
            b = bytearray(p.to_bytes())
            for pos in rng.integers(HEADER_SIZE, len(b) - 4, 1 + trial):
                b[pos] ^= int(rng.integers(1, 256))
            b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "big")
            wire.append(bytes(b))
        res = depacketize(wire, context_coder=coder, **session(imap))
        n_bad = res.counts_by_reason["bad_payload"]
        assert n_bad == int(res.lost_packets.sum()) and sum(res.counts_by_reason.values()) == n_bad
        assert np.array_equal(res.lost_mask, tiles_mask(16, 24, seed, np.flatnonzero(res.lost_packets)))
        got = res.index_map.indices[~res.lost_mask]
        assert got.size == 0 or (got.min() >= 0 and got.max() < 1024)
        refused += n_bad
        # the coder itself: only BitstreamError (a VQSimError), or a tile of the right shape
        for p in tiled:
            x = bytearray(p.payload)
            x[int(rng.integers(0, len(x)))] ^= 0xA5
            r, c = (int(v) for v in tile_boxes(16, 24, *tile_shape(seed))[p.seq, 2:])
            try:
                out = coder.decode_tile(bytes(x), (r, c))
                assert out.shape == (r, c) and out.min() >= 0 and out.max() < 1024
            except VQSimError as e:
                assert isinstance(e, BitstreamError)
    assert refused >= P                                 # most flips are caught (here 3 trials × P packets)


def test_decode_tile_refuses_short_and_ragged_payloads(real, coder):
    imap, _ = real
    payload = coder.encode_tile(imap.indices[:4, :4])
    for bad, match in ((b"", "no 32-bit word"), (payload[:3], "no 32-bit word"),
                       (payload[:-1], "32-bit words"), (payload + b"\x01", "32-bit words")):
        with pytest.raises(BitstreamError, match=match):
            coder.decode_tile(bad, (4, 4))


def test_tf_tile_needs_the_tile_interleaver_and_a_context_coder(real, coder, tiled):
    imap, _ = real
    for scheme in ("random", "raster", "checkerboard"):
        with pytest.raises(ParameterError, match="interleave='tile'"):
            packetize(imap, mtu=128, interleave=scheme, coder="tf_tile", context_coder=coder)
    with pytest.raises(ParameterError, match="context_coder"):
        PacketizeOptions(coder="tf_tile", interleave="tile")
    # a receiver without the coder cannot decode the stream: dropped as bad_field, with a warning naming the fix
    with pytest.warns(UserWarning, match="context_coder"):
        res = depacketize([p.to_bytes() for p in tiled], **session(imap))
    assert res.lost_mask.all() and res.counts_by_reason["bad_field"] == len(tiled)
    with pytest.warns(UserWarning, match="context_coder"):
        res = depacketize(tiled)
    assert res.lost_mask.all() and res.lost_mask.shape == imap.shape


def test_network_bernoulli_loses_whole_tiles(real, coder, tiled):
    from channels import Bernoulli
    from sim.network import NetworkSimulator

    imap, _ = real
    seed = tiled[0].seed
    boxes = tile_boxes(16, 24, *tile_shape(seed))
    net = NetworkSimulator(channel=Bernoulli(0.4), rng=np.random.default_rng(1))
    seen_partial = False
    for _ in range(4):
        rec = net.send(imap, mtu=128, coder="tf_tile", interleave="tile", context_coder=coder)
        assert rec.data_packets == len(boxes) and rec.data_lost == rec.channel_lost
        lost_tiles = [j for j, (t, lf, r, c) in enumerate(boxes) if rec.lost_mask[t:t + r, lf:lf + c].any()]
        for t, lf, r, c in boxes:                       # every tile is either wholly lost or wholly received
            assert rec.lost_mask[t:t + r, lf:lf + c].all() or not rec.lost_mask[t:t + r, lf:lf + c].any()
        assert len(lost_tiles) == rec.data_lost
        assert np.array_equal(rec.lost_mask, tiles_mask(16, 24, seed, lost_tiles))
        assert rec.lost_indices == int(rec.lost_mask.sum())
        ok = ~rec.lost_mask
        assert np.array_equal(rec.received.indices[ok], imap.indices[ok])
        seen_partial |= 0 < rec.data_lost < len(boxes)
    assert seen_partial

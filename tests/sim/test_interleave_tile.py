"""The ``tile`` interleaver: rectangles of the map in raster order, the tile shape in the seed field, and the
symbol coders packetized over it (numpy only; the transformer coder ``tf_tile`` is in
tests/codec/test_entropy_tf_tile.py)."""
import zlib

import numpy as np
import pytest
from indexmaps import session, skewed_map

from codec.errors import ParameterError
from sim.interleave import SCHEMES, interleave, tile_boxes, tile_seed, tile_shape
from sim.packet import HEADER_SIZE, REASONS, Packet
from sim.packetizer import TILE_SHAPES, depacketize, packetize


def tiles_mask(h, w, th, tw, tiles):
    """(h, w) bool mask of the listed tiles (numbers in transmission order), built from the boxes."""
    mask = np.zeros((h, w), dtype=bool)
    for t, lf, r, c in tile_boxes(h, w, th, tw)[list(tiles)]:
        mask[t:t + r, lf:lf + c] = True
    return mask


# ------------------------------------------------------------------------------------------ the scheme
def test_tile_is_the_last_scheme_code():
    """Appended, so every existing header keeps its scheme code."""
    assert SCHEMES[:4] == ("raster", "block", "random", "checkerboard") and SCHEMES[4] == "tile"


def test_edge_tiles_are_clipped():
    boxes = tile_boxes(5, 7, 2, 3)                  # 3 rows of tiles (2, 2, 1) × 3 columns (3, 3, 1)
    assert boxes.dtype == np.int64
    assert boxes.tolist() == [[0, 0, 2, 3], [0, 3, 2, 3], [0, 6, 2, 1],
                              [2, 0, 2, 3], [2, 3, 2, 3], [2, 6, 2, 1],
                              [4, 0, 1, 3], [4, 3, 1, 3], [4, 6, 1, 1]]
    assert tile_boxes(3, 4, 8, 16).tolist() == [[0, 0, 3, 4]]  # a tile larger than the map is the map


@pytest.mark.parametrize("h,w,th,tw", [(1, 1, 1, 1), (5, 7, 2, 3), (16, 24, 8, 16), (9, 4, 4, 4), (6, 6, 3, 3),
                                       (3, 10, 5, 4), (13, 21, 1, 2)])
def test_order_is_each_tile_in_raster_order(h, w, th, tw):
    boxes = tile_boxes(h, w, th, tw)
    P = -(-h // th) * -(-w // tw)
    assert len(boxes) == P
    il = interleave("tile", h, w, P, tile_seed(th, tw))
    assert np.array_equal(np.sort(il.order), np.arange(h * w))
    assert il.bounds.tolist() == [0, *np.cumsum(boxes[:, 2] * boxes[:, 3]).tolist()]
    grid = np.arange(h * w).reshape(h, w)
    for j, (t, lf, r, c) in enumerate(boxes):
        assert np.array_equal(il.positions(j), grid[t:t + r, lf:lf + c].reshape(-1))
        assert np.all(il.packet_of[il.positions(j)] == j)
    assert not il.order.flags.writeable and not il.bounds.flags.writeable and not il.packet_of.flags.writeable


def test_lost_mask_is_the_union_of_the_lost_tiles():
    h, w, th, tw = 13, 21, 4, 6                     # 4 × 4 tiles, the last row and column clipped
    P = 16
    il = interleave("tile", h, w, P, tile_seed(th, tw))
    for lost in ([0], [3], [15], [1, 6, 12], list(range(P))):
        want = tiles_mask(h, w, th, tw, lost)
        assert np.array_equal(il.lost_mask(np.array(lost)), want)
        assert np.array_equal(il.lost_mask(np.isin(np.arange(P), lost)), want)
    assert not il.lost_mask(np.zeros(P, bool)).any()
    # the clipped corner tile is a 1×3 hole
    assert il.lost_mask(np.array([15])).sum() == 1 * 3 and il.lost_mask(np.array([15]))[12, 18:].all()


@pytest.mark.parametrize("th,tw", [(1, 1), (8, 16), (16, 8), (1, 65535), (65535, 1), (65535, 65535), (24, 32)])
def test_tile_seed_and_shape_round_trip(th, tw):
    seed = tile_seed(th, tw)
    assert seed == th * 65536 + tw and 0 <= seed < 2**32
    assert tile_shape(seed) == (th, tw)


@pytest.mark.parametrize("th,tw", [(0, 4), (4, 0), (0, 0), (65536, 1), (1, 65536), (-1, 2)])
def test_tile_seed_rejects_sides_out_of_range(th, tw):
    with pytest.raises(ParameterError, match="tile sides"):
        tile_seed(th, tw)


@pytest.mark.parametrize("seed", [0, 5, 0xFFFF, 3 << 16, 0xFFFF0000])
def test_tile_shape_rejects_a_zero_side(seed):
    with pytest.raises(ParameterError, match="tile seed"):
        tile_shape(seed)


def test_wrong_packet_count_or_seed_raises():
    seed = tile_seed(4, 6)                          # 13×21 → 4 × 4 = 16 tiles
    assert interleave("tile", 13, 21, 16, seed).num_packets == 16
    for P in (1, 15, 17, 13 * 21):
        with pytest.raises(ParameterError, match="16 packets"):
            interleave("tile", 13, 21, P, seed)
    with pytest.raises(ParameterError, match="tile seed"):
        interleave("tile", 13, 21, 16, 7)           # seed 7 names a 0×7 tile
    with pytest.raises(ParameterError):
        interleave("tile", 13, 21, 16, 2**32)


# ------------------------------------------------------------------------------------------ packetized
@pytest.mark.parametrize("coder", ["raw", "arith"])
@pytest.mark.parametrize("h,w", [(16, 24), (13, 21)])
def test_symbol_coders_over_tiles_round_trip_with_losses(coder, h, w):
    m = skewed_map(h, w, seed=h)
    pk = packetize(m, mtu=40, interleave="tile", coder=coder, seed=99, image_id=4)
    th, tw = tile_shape(pk[0].seed)                 # the shape travels in the seed field, opts.seed is unused
    assert (th, tw) in {(min(a, h), min(b, w)) for a, b in TILE_SHAPES}
    P = len(pk)
    assert P == len(tile_boxes(h, w, th, tw)) > 3
    assert all(p.scheme == "tile" and p.coder == coder and p.seed == pk[0].seed and p.count == P for p in pk)
    assert all(len(p.payload) <= 40 for p in pk)
    wire = [p.to_bytes() for p in pk]
    res = depacketize(wire, **session(m))
    assert res.index_map == m and not res.lost_mask.any() and res.image_id == 4
    for lost in ([0], [1, P - 2], [P - 1]):        # the last tile is a clipped edge tile when h, w do not divide
        res = depacketize([b for j, b in enumerate(wire) if j not in lost], **session(m))
        want = tiles_mask(h, w, th, tw, lost)
        assert np.array_equal(res.lost_mask, want)
        assert res.lost_packets.tolist() == [j in lost for j in range(P)]
        assert np.array_equal(res.index_map.indices[~want], m.indices[~want])
        assert np.all(res.index_map.indices[want] == 0)
        assert sum(res.counts_by_reason.values()) == 0


def test_raw_uses_the_largest_tile_that_fits():
    """raw at K = 256 is 8 bits per index, so mtu = 40 holds 40 indices: 4×8 (32) is the largest listed tile
    that fits (6×8 = 48 does not)."""
    m = skewed_map(16, 24)
    pk = packetize(m, mtu=40, interleave="tile", coder="raw")
    assert tile_shape(pk[0].seed) == (4, 8) and len(pk) == 4 * 3
    assert [len(p.payload) for p in pk] == [32] * 12
    i = TILE_SHAPES.index((4, 8))
    assert all(th * tw > 40 for th, tw in TILE_SHAPES[:i])


def _forged(m, pk, seed=None, count=None):
    """The stream's packets with their seed or count field replaced (what a corrupt sender emits)."""
    return [Packet(p.image_id, p.seq, p.count if count is None else count, p.codebook_size, p.h, p.w, p.image_size,
                   p.scheme, p.coder, p.seed if seed is None else seed, p.payload) for p in pk]


@pytest.mark.parametrize("field", ["seed 0x5", "seed 0x30000", "seed 3x3", "count"])
def test_header_with_a_tile_seed_that_names_no_grid_is_bad_field(field):
    m = skewed_map(16, 24)
    pk = packetize(m, mtu=40, interleave="tile", coder="arith", image_id=2)
    P = len(pk)
    bad = {"seed 0x5": dict(seed=5),                 # a 0×5 tile
           "seed 0x30000": dict(seed=3 << 16),       # a 3×0 tile
           "seed 3x3": dict(seed=tile_seed(3, 3)),   # a real shape, but its grid has 48 tiles, not P
           "count": dict(count=P + 1)}[field]
    forged = _forged(m, pk, **bad)
    for stream in ([p.to_bytes() for p in forged], forged):
        res = depacketize(stream, **session(m))      # must not raise
        assert res.counts_by_reason == {**{r: 0 for r in REASONS}, "reordered": 0, "bad_field": P}
        assert res.lost_mask.all() and res.index_map.shape == m.shape
        assert res.index_map.image_size == m.image_size and res.index_map.codebook_id == m.codebook_id
    # without the session parameters the header's own fields size the all-lost map
    res = depacketize([p.to_bytes() for p in forged])
    assert res.lost_mask.shape == m.shape and res.lost_mask.all() and res.counts_by_reason["bad_field"] == P


def test_tile_seed_mangled_on_the_wire_with_valid_crc_is_bad_field():
    m = skewed_map(16, 24)
    wire = [bytearray(p.to_bytes()) for p in packetize(m, mtu=40, interleave="tile", coder="raw")]
    seed_at = HEADER_SIZE - 6                        # seed (4 bytes) then payload_len (2 bytes) end the header
    assert int.from_bytes(wire[0][seed_at:seed_at + 4], "big") == tile_seed(4, 8)
    for b in wire:
        b[seed_at:seed_at + 4] = (0x00000009).to_bytes(4, "big")
        b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "big")
    res = depacketize([bytes(b) for b in wire], **session(m))
    assert res.counts_by_reason["bad_field"] == len(wire) and res.lost_mask.all()

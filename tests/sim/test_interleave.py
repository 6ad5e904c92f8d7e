"""Interleavers: permutations, balanced splits, and the neighbour properties each scheme promises."""
import numpy as np
import pytest

from sim.interleave import SCHEMES, balanced_bounds, interleave


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "tile"])  # tile: test_interleave_tile.py
@pytest.mark.parametrize("h,w,P", [(1, 1, 1), (5, 7, 3), (32, 48, 16), (9, 4, 36)])
def test_order_is_permutation_and_split_balanced(scheme, h, w, P):
    il = interleave(scheme, h, w, P, seed=7)
    N = h * w
    assert np.array_equal(np.sort(il.order), np.arange(N))
    sizes = np.diff(il.bounds)
    assert sizes.sum() == N and sizes.max() - sizes.min() <= 1
    assert np.all(sizes[:-1] >= sizes[1:])  # the first N mod P packets carry one more
    for j in range(P):  # packet_of is the inverse of the split
        assert np.all(il.packet_of[il.positions(j)] == j)
    assert not il.order.flags.writeable and not il.packet_of.flags.writeable


def test_raster_is_contiguous():
    il = interleave("raster", 6, 10, 4)
    for j in range(4):
        pos = il.positions(j)
        assert np.array_equal(pos, np.arange(pos[0], pos[0] + pos.size))


def test_block_takes_every_pth_position():
    h, w, P = 7, 9, 5
    il = interleave("block", h, w, P)
    for j in range(P):
        assert np.array_equal(il.positions(j), np.arange(j, h * w, P))


def test_random_matches_seeded_permutation_and_depends_on_seed():
    il = interleave("random", 8, 8, 4, seed=123)
    assert np.array_equal(il.order, np.random.default_rng(123).permutation(64))
    assert not np.array_equal(il.order, interleave("random", 8, 8, 4, seed=124).order)


def test_checkerboard_two_packets_are_the_two_colours():
    h, w = 6, 8
    il = interleave("checkerboard", h, w, 2)
    r, c = np.divmod(np.arange(h * w), w)
    assert np.array_equal(il.packet_of, ((r + c) % 2).astype(np.int32))


@pytest.mark.parametrize("P", [4, 8, 16])
def test_checkerboard_separates_all_eight_neighbours(P):
    h, w = 16, 24  # P divides every coset size, so no packet straddles two cosets
    il = interleave("checkerboard", h, w, P)
    g = il.packet_of.reshape(h, w)
    pairs = {"right": (g[:, :-1], g[:, 1:]), "down": (g[:-1], g[1:]),
             "down-right": (g[:-1, :-1], g[1:, 1:]), "down-left": (g[:-1, 1:], g[1:, :-1])}
    for name, (a, b) in pairs.items():
        assert not np.any(a == b), name


def test_interleaving_scatters_a_lost_packet():
    """A lost raster packet is a band; under random / checkerboard its indices have far fewer lost neighbours."""
    h, w, P = 32, 48, 16

    def lost_neighbour_pairs(scheme):
        m = interleave(scheme, h, w, P, seed=1).lost_mask(np.array([5]))
        return int((m[:, 1:] & m[:, :-1]).sum() + (m[1:] & m[:-1]).sum())

    raster = lost_neighbour_pairs("raster")
    assert raster == 2 * (w - 1) + w  # 96 indices = two full rows: 2·47 horizontal + 48 vertical pairs
    assert lost_neighbour_pairs("checkerboard") == 0
    assert lost_neighbour_pairs("random") < raster / 5


def test_lost_mask_from_bool_and_int():
    il = interleave("block", 4, 6, 3)
    m1 = il.lost_mask(np.array([False, True, False]))
    m2 = il.lost_mask(np.array([1]))
    assert np.array_equal(m1, m2) and m1.sum() == 8


@pytest.mark.parametrize("args", [("zigzag", 4, 4, 2), ("raster", 0, 4, 1), ("raster", 4, 4, 0),
                                  ("raster", 4, 4, 17), ("random", 4, 4, 2, -1), ("random", 4, 4, 2, 2**32)])
def test_bad_arguments_raise_value_error(args):
    with pytest.raises(ValueError):
        interleave(*args)


def test_balanced_bounds():
    assert balanced_bounds(10, 3).tolist() == [0, 4, 7, 10]


def test_cache_is_bounded_in_bytes_and_reuses_entries():
    import importlib

    il_mod = importlib.import_module("sim.interleave")

    il_mod._CACHE.clear()
    a = interleave("random", 32, 48, 7, 1)
    assert interleave("random", 32, 48, 7, 1) is a  # cached
    # 30 different 512×512 maps (3 MB of arrays each): 94 MB uncached, the cache keeps ≤ its bound
    for seed in range(30):
        interleave("random", 512, 512, 64, seed)
    info = il_mod.cache_info()
    assert info["bytes"] <= il_mod.CACHE_MAX_BYTES
    assert 0 < info["entries"] < 31
    # an entry larger than a quarter of the bound is computed but never kept
    before = il_mod.cache_info()["bytes"]
    big = interleave("raster", 2048, 2048, 2, 0)
    assert big.order.nbytes > il_mod.CACHE_MAX_BYTES // 4
    assert il_mod.cache_info()["bytes"] == before
    il_mod._CACHE.clear()

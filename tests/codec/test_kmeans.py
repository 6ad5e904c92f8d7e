"""Tests of codec.kmeans (Lloyd K-means codebook reduction)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from codec.kmeans import (
    REDUCED_SIZES,
    KMeansResult,
    benchmark_kmeans,
    clustered_codebook,
    kmeans_codebook,
    reduced_sizes,
)


@pytest.fixture(scope="module")
def gaussian_cb() -> np.ndarray:
    return np.random.default_rng(123).standard_normal((2048, 32)).astype(np.float32)


def _sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    X, C = X.astype(np.float64), C.astype(np.float64)
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)


def test_reduced_sizes():
    assert reduced_sizes(16384) == list(REDUCED_SIZES)
    assert reduced_sizes(1024) == [512, 256, 128, 64, 32, 16, 8]
    assert reduced_sizes(100) == [64, 32, 16, 8]
    assert reduced_sizes(8) == []
    with pytest.raises(ValueError, match="K"):
        reduced_sizes(1)


def test_deterministic_and_seed_dependent(gaussian_cb):
    a = kmeans_codebook(gaussian_cb, 64, seed=7)
    b = kmeans_codebook(gaussian_cb, 64, seed=7)
    c = kmeans_codebook(gaussian_cb, 64, seed=8)
    assert isinstance(a, KMeansResult)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert a.iterations == b.iterations and a.inertia_history == b.inertia_history
    assert not np.array_equal(a.centroids, c.centroids)
    # a Generator works as the seed, and torch input gives the same result
    d = kmeans_codebook(torch.from_numpy(gaussian_cb), 64, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.centroids, d.centroids)


def test_result_shapes_and_nearest_centroid_at_convergence(gaussian_cb):
    res = kmeans_codebook(gaussian_cb, 64, seed=0)
    assert res.converged and 1 <= res.iterations < 300
    assert res.centroids.shape == (64, 32) and res.centroids.dtype == np.float32
    assert res.assignment.shape == (2048,) and np.issubdtype(res.assignment.dtype, np.integer)
    assert res.size == 64 and 0 <= res.assignment.min() and res.assignment.max() < 64
    d = _sq_dists(gaussian_cb, res.centroids)
    own = d[np.arange(len(d)), res.assignment]
    assert np.all(own <= d.min(1) * (1 + 1e-5) + 1e-6)
    # fixed point: every centroid is the mean of its members
    for j in range(64):
        members = gaussian_cb[res.assignment == j]
        assert len(members) > 0
        np.testing.assert_allclose(res.centroids[j], members.mean(0), atol=1e-5)
    assert res.inertia == pytest.approx(own.sum(), rel=1e-6)
    assert res.inertia == res.inertia_history[-1]
    np.testing.assert_array_equal(res.remap(np.array([[0, 5], [7, 2047]])), res.assignment[[[0, 5], [7, 2047]]])
    with pytest.raises(ValueError):
        res.remap(np.array([2048]))


def test_inertia_non_increasing(gaussian_cb):
    for seed in range(3):
        res = kmeans_codebook(gaussian_cb, 128, seed=seed)
        h = np.array(res.inertia_history)
        assert len(h) == res.iterations + 1
        assert np.all(np.diff(h) <= 1e-6 * h[0])
        assert h[-1] < h[0]


def test_tol_stops_no_later(gaussian_cb):
    full = kmeans_codebook(gaussian_cb, 64, seed=3)
    loose = kmeans_codebook(gaussian_cb, 64, seed=3, tol=1e-2)
    assert loose.converged and loose.iterations <= full.iterations
    capped = kmeans_codebook(gaussian_cb, 64, seed=3, max_iter=1)
    assert capped.iterations == 1 and not capped.converged
    d = _sq_dists(gaussian_cb, capped.centroids)  # assignment is still nearest-centroid
    assert np.all(d[np.arange(len(d)), capped.assignment] <= d.min(1) * (1 + 1e-5) + 1e-6)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True iff labelings a and b define the same partition (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_recovers_separated_clusters_exactly():
    rng = np.random.default_rng(5)
    n, K, D = 32, 512, 16
    X = clustered_codebook(K, D, n, spread=0.01, rng=rng)
    labels = np.arange(K) % n
    true_means = np.stack([X[labels == j].mean(0) for j in range(n)])
    # one initial codeword per true cluster (shuffled): Lloyd's first step recovers them
    init = rng.permutation(n) + n * rng.integers(0, K // n, size=n)
    runs = [kmeans_codebook(X, n, init=init)] + [kmeans_codebook(X, n, seed=s, init="k-means++") for s in range(3)]
    for res in runs:
        assert res.converged
        assert _same_partition(res.assignment, labels)
        for j in range(n):
            np.testing.assert_allclose(res.centroids[j], true_means[labels[res.assignment == j][0]], atol=1e-5)
        within = ((X - true_means[labels]) ** 2).sum()
        assert res.inertia == pytest.approx(within, rel=1e-4)


def test_empty_cluster_reseeded_deterministically():
    # 1-D: init centroids (0, 0, 10). Ties go to the lowest index, so centroid 1
    # gets no member; update: c0 = 0, c2 = mean(10, 11, 20, 21) = 15.5 and c1 is
    # re-seeded with the farthest codeword (10 and 21 are both 5.5 away; lowest
    # index wins -> 10). Next step: {0,0}, {10,11}, {20,21}, inertia 0 + .5 + .5.
    X = np.array([[0.0], [0.0], [10.0], [11.0], [20.0], [21.0]], dtype=np.float32)
    res = kmeans_codebook(X, 3, init=np.array([0, 1, 2]))
    assert res.n_reseeded == 1 and res.converged
    np.testing.assert_array_equal(res.assignment, [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(res.centroids[:, 0], [0.0, 10.5, 20.5])
    assert res.inertia == pytest.approx(1.0)


def test_validation(gaussian_cb):
    with pytest.raises(ValueError, match="size"):
        kmeans_codebook(gaussian_cb, 2048)
    with pytest.raises(ValueError, match="size"):
        kmeans_codebook(gaussian_cb, 4096)
    with pytest.raises(ValueError, match="size"):
        kmeans_codebook(gaussian_cb, 1)
    bad = gaussian_cb.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans_codebook(bad, 8)
    with pytest.raises(ValueError, match="2-D"):
        kmeans_codebook(gaussian_cb[0], 8)
    with pytest.raises(ValueError, match="max_iter"):
        kmeans_codebook(gaussian_cb, 8, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        kmeans_codebook(gaussian_cb, 8, tol=-1.0)
    with pytest.raises(ValueError, match="init"):
        kmeans_codebook(gaussian_cb, 8, init="farthest")
    with pytest.raises(ValueError, match="distinct"):
        kmeans_codebook(gaussian_cb, 3, init=np.array([0, 0, 1]))
    with pytest.raises(TypeError):
        kmeans_codebook(np.array([["a", "b"]] * 4), 2)


def test_timing_small_problem():
    """4096×64 → 256 (1/64 of the 16384×256 → 1024 work per iteration) runs to
    convergence well within a few seconds on one shared CPU core."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cb = np.random.default_rng(0).standard_normal((4096, 64)).astype(np.float32)
        t0 = time.perf_counter()
        res = kmeans_codebook(cb, 256, seed=0)
        dt = time.perf_counter() - t0
    finally:
        torch.set_num_threads(prev)
    assert res.converged
    assert dt < 15.0, f"{dt:.1f} s for {res.iterations} iterations"


def test_benchmark_function_small():
    r = benchmark_kmeans(K=1024, D=16, S=64, data="clustered")
    assert r["converged"] and r["iterations"] >= 1 and r["seconds"] > 0
    assert r["S"] == 64 and r["data"] == "clustered"
    with pytest.raises(ValueError, match="data"):
        benchmark_kmeans(data="uniform")

"""K-means reduction of a VQ codebook (rate control by a smaller codebook).

Mao et al. reduce the bit rate of a VQGAN codec by clustering its K codewords
into S < K groups with K-means and replacing every codeword by the centroid of
its group: an image is then coded with ceil(log2 S) instead of ceil(log2 K)
bits per index, and ``assignment[i]`` tells which reduced codeword replaces
original codeword ``i``.

Algorithm (Lloyd's, deterministic given ``seed``):

1. *Init* (``init="random"``, the paper's choice and the default): ``S``
   distinct codewords chosen uniformly at random (without replacement) by
   ``numpy.random.default_rng(seed)``. Alternatives: ``init="k-means++"``
   (Arthur & Vassilvitskii 2007 D²-sampling from the same generator; avoids
   the poor local optima random seeding falls into on strongly clustered
   codebooks) or an explicit array of S distinct codeword indices.
2. *Assign*: every codeword x_i goes to its nearest centroid in Euclidean
   distance, a_i = argmin_j ||x_i − c_j||². Computed in float32 chunks with
   ||x − c||² = ||x||² − 2 x·c + ||c||² (one BLAS matmul per chunk; ||x||² is
   constant per row so the argmin needs only ||c||² − 2 x·c). Ties go to the
   lowest centroid index.
3. *Update*: c_j = mean of the codewords assigned to j (scatter-add, then
   divide by the counts).
4. Repeat 2-3 until the assignment no longer changes (then the centroids are
   a fixed point of Lloyd's map), or until the relative inertia decrease is
   ≤ ``tol`` when ``tol > 0``, or ``max_iter`` update steps.

Inertia J = Σ_i ||x_i − c_{a_i}||² (float64 accumulation of exact
differences). Each Lloyd step can only lower it, so
``KMeansResult.inertia_history`` is non-increasing (up to float32 rounding in
the argmin of near-ties).

*Empty clusters*: if a centroid loses all its codewords, it is re-seeded
deterministically with the codeword that is farthest from its own (updated)
centroid; several empty clusters take the next farthest codewords, in
descending order of distance (ties: lowest index). Moving a centroid that owns
no points onto a point never increases J, so monotonicity is preserved. If the
codebook has fewer than S distinct vectors, duplicate centroids (some with no
members) are unavoidable; the run still terminates because the assignment
stops changing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ParameterError

REDUCED_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32, 16, 8)

_CHUNK_ELEMENTS = 1 << 22  # rows × S of one distance block (16 MiB in float32)


def reduced_sizes(K: int) -> list[int]:
    """The paper's reduced codebook sizes strictly below ``K`` (descending)."""
    K = int(K)
    if K < 2:
        raise ParameterError(f"K (codebook size) must be >= 2, got {K}")
    return [s for s in REDUCED_SIZES if s < K]


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of :func:`kmeans_codebook`.

    Attributes:
        centroids: float32 (S, D), the reduced codebook.
        assignment: int64 (K,), ``assignment[i]`` = index in [0, S) of the
            centroid nearest to original codeword i (under ``centroids``).
        iterations: number of Lloyd update steps performed.
        inertia: Σ_i ||x_i − centroids[assignment[i]]||² (float, squared units of
            the codebook).
        converged: True if the assignment stopped changing (or, with
            ``tol > 0``, the relative inertia decrease fell to ≤ tol) before
            ``max_iter``.
        inertia_history: inertia after the initial assignment (entry 0) and
            after each update + re-assignment step (entries 1..iterations).
        n_reseeded: total number of empty clusters re-seeded over the run.
    """

    centroids: np.ndarray
    assignment: np.ndarray
    iterations: int
    inertia: float
    converged: bool
    inertia_history: tuple[float, ...] = field(default=())
    n_reseeded: int = 0

    @property
    def size(self) -> int:
        """S, the reduced codebook size."""
        return int(self.centroids.shape[0])

    def remap(self, indices: np.ndarray) -> np.ndarray:
        """Map original codebook indices (any shape) to reduced-codebook indices."""
        idx = np.asarray(indices)
        if idx.size and (idx.min() < 0 or idx.max() >= self.assignment.shape[0]):
            raise ParameterError(f"indices must lie in [0, {self.assignment.shape[0]})")
        return self.assignment[idx]


def _as_codebook(codebook: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(codebook, torch.Tensor):
        X = codebook.detach().to("cpu", torch.float32)
    else:
        arr = np.asarray(codebook)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"codebook must be a real numeric array, got dtype {arr.dtype}")
        X = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if X.ndim != 2:
        raise ParameterError(f"codebook must be 2-D (K, D), got shape {tuple(X.shape)}")
    if X.shape[0] < 3 or X.shape[1] < 1:
        raise ParameterError(f"codebook must have K >= 3 rows and D >= 1 columns, got shape {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ParameterError("codebook contains NaN or infinite values")
    return X.contiguous()


def _assign(X: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """argmin_j ||x_i − c_j||² for every row of X, in row chunks (int64 (K,))."""
    K, S = X.shape[0], C.shape[0]
    c2 = (C * C).sum(1)
    CT = C.T.contiguous()
    out = torch.empty(K, dtype=torch.int64)
    step = max(1, _CHUNK_ELEMENTS // max(S, 1))
    buf = torch.empty(min(step, K), S, dtype=torch.float32)
    for lo in range(0, K, step):
        hi = min(K, lo + step)
        d = buf[: hi - lo]
        torch.addmm(c2, X[lo:hi], CT, beta=1.0, alpha=-2.0, out=d)  # ||c||² − 2 x·c
        out[lo:hi] = d.argmin(1)
    return out


def _point_errors(X: torch.Tensor, C: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Squared distance of every codeword to its assigned centroid (float64 (K,))."""
    diff = X - C[A]
    return (diff * diff).sum(1, dtype=torch.float64)


def _update(
    X: torch.Tensor, A: torch.Tensor, S: int, C_old: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """New centroids = member means; empty clusters re-seeded (see module doc)."""
    D = X.shape[1]
    counts = torch.bincount(A, minlength=S)
    sums = torch.zeros(S, D, dtype=torch.float64).index_add_(0, A, X.to(torch.float64))
    empty = counts == 0
    C = (sums / counts.clamp_min(1).unsqueeze(1).to(torch.float64)).to(torch.float32)
    n_empty = int(empty.sum())
    if n_empty:
        C[empty] = C_old[empty]  # placeholders; they own no points
        err = _point_errors(X, C, A)
        # descending distance, ties by lowest index (stable sort of -err)
        order = np.argsort(-err.numpy(), kind="stable")[:n_empty]
        C[torch.nonzero(empty).flatten()] = X[torch.from_numpy(order)]
    return C, n_empty


def _kmeanspp(X: torch.Tensor, S: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: first index uniform, then each next one drawn with
    probability proportional to D(x)², the squared distance to the nearest
    index chosen so far (one (K, D) matvec per draw)."""
    K = X.shape[0]
    x2 = (X * X).sum(1)
    chosen = np.empty(S, dtype=np.int64)
    chosen[0] = rng.integers(K)
    d2 = (x2 - 2.0 * (X @ X[chosen[0]]) + x2[chosen[0]]).clamp_min(0).to(torch.float64).numpy()
    for k in range(1, S):
        cum = np.cumsum(d2)
        if cum[-1] <= 0.0:  # fewer distinct vectors than S: fill with unused indices
            rest = np.setdiff1d(np.arange(K), chosen[:k])[: S - k]
            chosen[k:] = rest
            break
        i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        i = min(i, K - 1)
        chosen[k] = i
        di = (x2 - 2.0 * (X @ X[i]) + x2[i]).clamp_min(0).to(torch.float64).numpy()
        np.minimum(d2, di, out=d2)
        d2[i] = 0.0
    return chosen


def _initial_indices(
    X: torch.Tensor, S: int, init: str | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    K = X.shape[0]
    if isinstance(init, str):
        if init == "random":
            return np.sort(rng.choice(K, size=S, replace=False))
        if init in ("k-means++", "kmeans++"):
            return _kmeanspp(X, S, rng)
        raise ParameterError(f"init must be 'random', 'k-means++' or an index array, got {init!r}")
    idx = np.asarray(init)
    if idx.shape != (S,) or not np.issubdtype(idx.dtype, np.integer):
        raise ParameterError(f"init index array must be integer of shape ({S},), got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= K or np.unique(idx).size != S:
        raise ParameterError(f"init indices must be {S} distinct values in [0, {K})")
    return idx.astype(np.int64)


def kmeans_codebook(
    codebook: np.ndarray | torch.Tensor,
    size: int,
    seed: int | np.random.Generator = 0,
    max_iter: int = 300,
    tol: float = 0.0,
    init: str | np.ndarray = "random",
) -> KMeansResult:
    """Cluster a (K, D) codebook into ``size`` = S centroids with Lloyd's K-means.

    Args:
        codebook: (K, D) real array or tensor (the VQ embedding weight), finite.
        size: S, the reduced codebook size, 2 ≤ S < K.
        seed: seed (or a ``numpy.random.Generator``) for the random choice of
            the S initial codewords; the whole run is deterministic given it.
        max_iter: maximum number of Lloyd update steps (≥ 1).
        tol: ≥ 0. 0 (default) = run until the assignment is unchanged; > 0 also
            stops once (J_prev − J) / J_prev ≤ tol.
        init: ``"random"`` (default, as in the paper), ``"k-means++"``, or an
            integer array of S distinct indices into the codebook.

    Returns:
        :class:`KMeansResult`; ``assignment`` always maps every codeword to its
        nearest returned centroid.

    Complexity: O(iterations · K · S · D) flops, dominated by one float32 matmul
    per iteration (16384×256 → 1024: ≈ 8.6 GFLOP per iteration).
    """
    X = _as_codebook(codebook)
    K = X.shape[0]
    S = int(size)
    if not 2 <= S < K:
        raise ParameterError(f"size must satisfy 2 <= size < K = {K}, got {size}")
    max_iter = int(max_iter)
    if max_iter < 1:
        raise ParameterError(f"max_iter must be >= 1, got {max_iter}")
    tol = float(tol)
    if not (tol >= 0.0 and math.isfinite(tol)):
        raise ParameterError(f"tol must be a finite number >= 0, got {tol}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))

    C = X[torch.from_numpy(_initial_indices(X, S, init, rng))].clone()
    A = _assign(X, C)
    J = float(_point_errors(X, C, A).sum())
    history = [J]
    converged = False
    n_reseeded = 0
    it = 0
    while it < max_iter:
        it += 1
        C, n_empty = _update(X, A, S, C)
        n_reseeded += n_empty
        A_new = _assign(X, C)
        J_new = float(_point_errors(X, C, A_new).sum())
        history.append(J_new)
        same = bool(torch.equal(A_new, A))
        rel = (J - J_new) / J if J > 0 else 0.0
        A, J = A_new, J_new
        if same or (tol > 0 and rel <= tol):
            converged = True
            break

    assignment = A.numpy().astype(np.int64)
    return KMeansResult(
        centroids=C.numpy().astype(np.float32, copy=True),
        assignment=assignment,
        iterations=it,
        inertia=J,
        converged=converged,
        inertia_history=tuple(history),
        n_reseeded=n_reseeded,
    )


def clustered_codebook(
    K: int, D: int, n_clusters: int, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """Synthetic codebook: ``n_clusters`` N(0, I) centres, K points scattered
    around them with i.i.d. N(0, spread²) offsets (float32 (K, D)); point i
    belongs to centre i mod n_clusters."""
    centres = rng.standard_normal((n_clusters, D))
    labels = np.arange(K) % n_clusters
    return (centres[labels] + spread * rng.standard_normal((K, D))).astype(np.float32)


def benchmark_kmeans(
    K: int = 16384,
    D: int = 256,
    S: int = 1024,
    data: str = "gaussian",
    seed: int = 0,
    max_iter: int = 300,
    init: str = "random",
) -> dict[str, float | int | bool | str]:
    """Time :func:`kmeans_codebook` on a synthetic codebook.

    ``data``: ``"gaussian"`` (i.i.d. N(0, 1) entries, the hard case: no cluster
    structure, slow convergence) or ``"clustered"`` (S tight clusters, spread
    0.05). The run uses the torch thread count in force (the caller's to set,
    e.g. ``codec.runtime.configure_cpu``) and reports it as ``threads``.

    Returns a dict with seconds, iterations, converged, inertia, seconds per
    iteration and the configuration.
    """
    if data not in ("gaussian", "clustered"):
        raise ParameterError(f"data must be 'gaussian' or 'clustered', got {data!r}")
    rng = np.random.default_rng(seed)
    if data == "gaussian":
        cb = rng.standard_normal((K, D)).astype(np.float32)
    else:
        cb = clustered_codebook(K, D, S, 0.05, rng)
    t0 = time.perf_counter()
    res = kmeans_codebook(cb, S, seed=seed, max_iter=max_iter, init=init)
    dt = time.perf_counter() - t0
    return {
        "K": K, "D": D, "S": S, "data": data, "init": init, "threads": torch.get_num_threads(),
        "seconds": dt, "iterations": res.iterations, "converged": res.converged,
        "inertia": res.inertia, "seconds_per_iteration": dt / max(res.iterations, 1),
        "n_reseeded": res.n_reseeded,
    }

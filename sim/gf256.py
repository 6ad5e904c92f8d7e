"""Vectorized arithmetic over GF(2^8) (numpy only).

The field is GF(2)[x] / p(x) with the primitive polynomial
p(x) = x^8 + x^4 + x^3 + x^2 + 1 (0x11d) and generator α = 2 — the same
field ``reedsolo`` uses by default, so codewords built here are byte-for-byte
compatible with ``reedsolo.RSCodec``.

Addition is XOR.  Multiplication uses log / antilog tables:
a·b = EXP[LOG[a] + LOG[b]] for a, b ≠ 0 (0 otherwise).  For bulk work the full
256×256 product table ``MUL`` (64 KiB, uint8) turns a scalar-times-vector
product into one fancy-index gather: ``MUL[c][v]`` or ``MUL[c_col, v_row]``.

Everything here works on ``uint8`` arrays; nothing loops over bytes in Python.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from codec.errors import ParameterError

PRIMITIVE_POLY = 0x11D
GENERATOR = 2


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.int64)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):  # 255 steps, once at import
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= PRIMITIVE_POLY
    exp[255:510] = exp[:255]
    mul = exp[(log[:, None] + log[None, :])]
    mul[0, :] = 0
    mul[:, 0] = 0
    inv = np.zeros(256, dtype=np.int64)
    inv[1:] = exp[(255 - log[1:]) % 255]
    return exp, log, mul.astype(np.uint8), inv.astype(np.uint8)


EXP, LOG, MUL, INV = _build_tables()
"""EXP[i] = α^i (i < 510), LOG[a] = log_α a (a ≠ 0), MUL[a, b] = a·b, INV[a] = a^-1 (a ≠ 0)."""


def gf_mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Element-wise product (broadcasting), uint8."""
    return MUL[np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8)]


def gf_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product over GF(256): (m, k) @ (k, L) -> (m, L), uint8.

    Loops over the k inner terms (k ≤ 255) and gathers a whole (m, L) slab of
    products per term from ``MUL``, so the cost is k vectorized gathers.
    """
    a = np.asarray(a, dtype=np.uint8)
    b = np.asarray(b, dtype=np.uint8)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ParameterError(f"gf_matmul: incompatible shapes {a.shape} and {b.shape}")
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    for j in range(a.shape[1]):
        col = a[:, j]
        if not col.any():
            continue
        out ^= MUL[col[:, None], b[j][None, :]]
    return out


def gf_inv_matrix(a: np.ndarray) -> np.ndarray:
    """Inverse of a square matrix over GF(256) by Gauss–Jordan elimination.

    Raises ``np.linalg.LinAlgError`` if the matrix is singular.  Each pivot step
    is a vectorized row operation on the augmented (k, 2k) matrix.
    """
    a = np.asarray(a, dtype=np.uint8)
    k = a.shape[0]
    if a.shape != (k, k):
        raise ParameterError(f"gf_inv_matrix: need a square matrix, got {a.shape}")
    m = np.concatenate([a, np.eye(k, dtype=np.uint8)], axis=1)
    for c in range(k):
        nz = np.nonzero(m[c:, c])[0]
        if nz.size == 0:
            raise np.linalg.LinAlgError("matrix is singular over GF(256)")
        p = c + int(nz[0])
        if p != c:
            m[[c, p]] = m[[p, c]]
        m[c] = MUL[INV[m[c, c]], m[c]]
        factors = m[:, c].copy()
        factors[c] = 0
        rows = np.nonzero(factors)[0]
        if rows.size:
            m[rows] ^= MUL[factors[rows][:, None], m[c][None, :]]
    parity: np.ndarray = m[:, k:].copy()
    return parity


@lru_cache(maxsize=64)
def cauchy_matrix(m: int, k: int) -> np.ndarray:
    """The (m, k) Cauchy matrix C[i, j] = 1 / (x_i + y_j), x_i = i, y_j = m + j.

    All x_i, y_j are distinct elements (m + k ≤ 256), so every square
    submatrix of C is non-singular; [I_k; C] is therefore the generator of a
    systematic MDS (Cauchy Reed–Solomon) code.  Read-only, cached.
    """
    if not (0 <= m and 1 <= k and m + k <= 256):
        raise ParameterError(f"cauchy_matrix: need m ≥ 0, k ≥ 1, m + k ≤ 256, got m={m}, k={k}")
    x = np.arange(m, dtype=np.uint8)[:, None]
    y = (m + np.arange(k)).astype(np.uint8)[None, :]
    c: np.ndarray = INV[x ^ y]
    c.setflags(write=False)
    return c


@lru_cache(maxsize=64)
def vandermonde_parity_matrix(m: int, k: int) -> np.ndarray:
    """Parity rows P = V_bot · V_top⁻¹ of the systematic Vandermonde code, (m, k) uint8.

    V is the (k + m)×k Vandermonde matrix V[r, c] = x_r^c at the evaluation
    points x_0 = 0, x_r = α^(r−1) (r ≥ 1; 0^0 = 1, so row 0 is e_0) — distinct
    for k + m ≤ 256, so every k×k submatrix of V is non-singular.  V_top (rows
    0 … k−1) is inverted; G = V · V_top⁻¹ = [I_k; P] is then systematic and
    still MDS (right-multiplying by an invertible matrix keeps every k rows
    independent).  This is the code zfec computes (same field, 0x11d).  Row i
    of P depends on k and i only, not on m.  Read-only, cached.
    """
    if not (0 <= m and 1 <= k and m + k <= 256):
        raise ParameterError(f"vandermonde_parity_matrix: need m ≥ 0, k ≥ 1, m + k ≤ 256, got m={m}, k={k}")
    r = np.arange(1, k + m)[:, None]
    c = np.arange(k)[None, :]
    v = np.zeros((k + m, k), dtype=np.uint8)
    v[0, 0] = 1
    v[1:] = EXP[((r - 1) * c) % 255]
    p = gf_matmul(v[k:], gf_inv_matrix(v[:k]))
    p.setflags(write=False)
    return p


@lru_cache(maxsize=64)
def rs_parity_rows(nsym: int) -> np.ndarray:
    """Rows R[p] = x^(nsym + p) mod g(x), p = 0 … 254 − nsym, as (255 − nsym, nsym) uint8.

    g(x) = ∏_{i<nsym} (x − α^i) is reedsolo's generator polynomial (fcr = 0).
    The systematic RS parity of a message m_0 … m_{c−1} (m_0 the highest
    power) is Σ_i m_i · R[c − 1 − i] (coefficients highest power first), so
    encoding is one gather + XOR reduction (see ``rs_encode_chunks``).
    """
    if not 1 <= nsym <= 254:
        raise ParameterError(f"nsym must be in [1, 254], got {nsym}")
    # generator polynomial, highest power first
    g = np.array([1], dtype=np.uint8)
    for i in range(nsym):
        root = EXP[i]
        ng = np.zeros(g.size + 1, dtype=np.uint8)
        ng[:-1] ^= g
        ng[1:] ^= MUL[root, g]
        g = ng
    rows = np.zeros((255 - nsym, nsym), dtype=np.uint8)
    # r = x^nsym mod g  (g monic): x^nsym ≡ g[1:] (characteristic 2)
    r = g[1:].copy()
    for p in range(255 - nsym):
        rows[p] = r
        # multiply by x: shift left, reduce the overflowing coefficient
        top = r[0]
        r = np.concatenate([r[1:], np.zeros(1, dtype=np.uint8)])
        if top:
            r ^= MUL[top, g[1:]]
    rows.setflags(write=False)
    return rows


@lru_cache(maxsize=16)
def _rs_word_table(nsym: int) -> np.ndarray:
    """T[i, v] = v · R[C−1−i] packed into uint64 words, C = 255 − nsym: (C, 256, ceil(nsym/8))."""
    rows = rs_parity_rows(nsym)
    C = rows.shape[0]
    W = -(-nsym // 8)
    prod = np.zeros((C, 256, W * 8), dtype=np.uint8)
    prod[:, :, :nsym] = MUL[np.arange(256)[None, :, None], rows[::-1][:, None, :]]
    t = prod.view(np.uint64).reshape(C, 256, W)
    t.setflags(write=False)
    return t


def rs_encode_chunks(chunks: np.ndarray, nsym: int) -> np.ndarray:
    """Systematic RS parity of many messages at once.

    Args:
        chunks: (n_chunks, c) uint8, c ≤ 255 − nsym, one message per row
            (shorter messages may be left-padded with zeros: leading zeros do
            not change the parity).
        nsym: parity bytes per codeword.

    Returns:
        (n_chunks, nsym) uint8 parity, identical to ``reedsolo.rs_encode_msg``.

    Implementation: the parity is linear in the message, Σ_i m_i · R[c−1−i];
    the per-position products are pre-tabulated for all 256 byte values and
    packed 8 parity bytes per uint64, so encoding is a single gather and an
    XOR reduction over the message axis.
    """
    chunks = np.asarray(chunks, dtype=np.uint8)
    if chunks.ndim != 2:
        raise ParameterError(f"chunks must be 2-D (n_chunks, length), got shape {chunks.shape}")
    table = _rs_word_table(nsym)
    C, _, W = table.shape
    c = chunks.shape[1]
    if c > C:
        raise ParameterError(f"message length {c} exceeds 255 - nsym = {C}")
    pos = np.arange(C - c, C)[None, :]
    out = np.empty((chunks.shape[0], W), dtype=np.uint64)
    step = max(1, (1 << 21) // max(1, c * W))  # bound the (batch, c, W) temporary to ~16 MB
    for s in range(0, chunks.shape[0], step):
        out[s:s + step] = np.bitwise_xor.reduce(table[pos, chunks[s:s + step]], axis=1)
    parity: np.ndarray = out.view(np.uint8).reshape(chunks.shape[0], W * 8)[:, :nsym].copy()
    return parity

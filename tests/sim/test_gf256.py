"""sim.gf256: field tables, matrix inverse and the vectorized RS parity, against reedsolo."""
import numpy as np
import pytest
import reedsolo

from sim import gf256


def test_field_tables_agree_with_reedsolo():
    reedsolo.init_tables(0x11D)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, 500), rng.integers(0, 256, 500)
    assert [reedsolo.gf_mul(int(x), int(y)) for x, y in zip(a, b, strict=True)] == gf256.gf_mul(a, b).tolist()
    nz = np.arange(1, 256)
    assert np.all(gf256.MUL[nz, gf256.INV[nz]] == 1)


def test_matrix_inverse():
    rng = np.random.default_rng(1)
    for k in (1, 2, 5, 17):
        a = gf256.cauchy_matrix(k, k)  # Cauchy: always invertible
        assert np.array_equal(gf256.gf_matmul(a, gf256.gf_inv_matrix(a)), np.eye(k, dtype=np.uint8))
    sing = rng.integers(0, 256, (4, 4)).astype(np.uint8)
    sing[3] = sing[0]
    with pytest.raises(np.linalg.LinAlgError):
        gf256.gf_inv_matrix(sing)


@pytest.mark.parametrize("nsym", [1, 2, 7, 16, 32])
def test_vectorized_rs_parity_equals_reedsolo(nsym):
    rng = np.random.default_rng(nsym)
    codec = reedsolo.RSCodec(nsym)
    for c in (1, 17, 255 - nsym):
        msgs = rng.integers(0, 256, (3, c), dtype=np.uint8)
        par = gf256.rs_encode_chunks(msgs, nsym)
        for m, p in zip(msgs, par, strict=True):
            assert bytes(codec.encode(m.tobytes())) == m.tobytes() + p.tobytes()

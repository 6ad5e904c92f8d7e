"""Shared fixtures: paths to ../shared data and small real inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
KODAK = SHARED / "data" / "kodak"
REFERENCE = SHARED / "reference"


def pytest_configure(config):
    try:
        import torch

        # one intra-op thread: small forwards spin badly when cores are shared (CI runs pytest alone, 2 cores)
        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def _torch_process_settings_restored():
    """Tests that run a torch CLI command in-process (``main([...])``) get its ``configure_cpu``: flushed
    denormals and a thread count. Restore both after each test, so no test sees another's settings
    (with denormals flushed, hypothesis' float strategies fail their own smallest-subnormal check)."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
        if threads is not None:
            torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not KODAK.exists():
        pytest.skip(f"Kodak images not found at {KODAK}")
    return KODAK


@pytest.fixture(scope="session")
def kodim01(kodak_dir) -> np.ndarray:
    from codec.image import load_image

    return load_image(kodak_dir / "kodim01.png")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.exists():
        pytest.skip(f"taming reference data not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, reference_dir):
    """The reference's small VQGAN (f = 2, K = 16) saved in the project's checkpoint format."""
    import torch

    from codec.checkpoint import save_vqgan
    from codec.vqgan import VQModel

    g = torch.load(reference_dir / "taming_golden.pt", weights_only=True)["vqgan"]
    m = VQModel(g["config"])
    m.load_state_dict(g["state_dict"])
    return save_vqgan(tmp_path_factory.mktemp("tiny") / "tiny.pt", m, half=False)


def _forge_bitstream(h: int, w: int, H: int, W: int, K: int = 8, coder: str = "arith", payload: bytes = bytes(16),
                     codebook_id: str | None = None) -> bytes:
    """A CRC-valid bitstream with arbitrary header fields (what an attacker can send)."""
    import zlib

    from codec.bitstream import CODER_IDS, MAGIC, VERSION, put_varint

    flags = CODER_IDS[coder] | (0x20 if codebook_id is not None else 0)
    out = bytearray(MAGIC) + bytes([VERSION, flags])
    put_varint(out, K)
    if codebook_id is not None:
        b = codebook_id.encode()
        out += bytes([len(b)]) + b
    for v in (h, w, H, W, len(payload)):
        put_varint(out, v)
    out += payload
    return bytes(out + zlib.crc32(out).to_bytes(4, "big"))


@pytest.fixture(scope="session")
def forge():
    """``forge(h, w, H, W, K=8, coder="arith", payload=..., codebook_id=None)`` → CRC-valid bitstream bytes
    with arbitrary (hostile) header fields."""
    return _forge_bitstream

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

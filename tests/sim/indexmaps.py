"""Small real index maps shared by the packetizer tests (imported by name: pytest puts tests/sim on sys.path)."""
from __future__ import annotations

import numpy as np

from codec.types import IndexMap


def skewed_map(h=12, w=20, K=256, seed=0):
    """A map with a skewed index distribution (as real images give) so the entropy coders compress."""
    rng = np.random.default_rng(seed)
    idx = np.minimum(rng.geometric(0.05, size=(h, w)) - 1, K - 1)
    return IndexMap(idx, K, (16 * h, 16 * w), codebook_id="test/256")


def session(m):
    """The receiver's session parameters of map ``m`` (what depacketize needs besides the packets)."""
    return dict(codebook_size=m.codebook_size, shape=m.shape, image_size=m.image_size, codebook_id=m.codebook_id)

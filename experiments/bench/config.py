"""What ``vqsim bench`` measures and how big.

``BenchConfig`` (full / quick sizes), the device, the bench's error type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codec.errors import VQSimError

PACKET_BYTES = 1240
"""Packet size of the FEC and SimPy sections (bytes)."""


class BenchError(VQSimError, ValueError):
    """Invalid benchmark configuration (bad section name, unavailable device, bad size)."""


@dataclass
class BenchConfig:
    """What to measure and how big.

    Attributes:
        quick: small sizes, one repetition (see the module docstring).
        device: torch device of the codec-on-GPU, concealment and trial
            measurements ("cpu" or "cuda"); the codec is always also timed on CPU.
        repeats: timed runs per measurement after one warm-up (median reported).
        image_size: (H, W) of the benchmark image in pixels.
        n_draws: channel loss-mask length (packets).
        n_sim_packets: packets pushed through the SimPy network model.
        fractions: loss fractions of the concealment benchmark.
        ar_shape: (h, w) index map of the AR benchmark.
        ar_model: "shipped" (the default AR concealer on the bench image's real map) or
            "random" (``benchmark_ar``'s random GPT on a random map, sized by ``ar_model_kwargs``).
        ar_model_kwargs: overrides of ``benchmark_ar``'s random GPT (:mod:`.ar`)
            (None = its default, n_layer 8, n_embd 256, the paper-size window model).
        ar_repeats: runs of each AR implementation (interleaved; medians, see ``benchmark_ar``).
        fec_bytes: data bytes pushed through each erasure code.
        rs_packets: packets through in-packet RS (decoding is pure Python when
            creedsolo is absent, hence few).
        train_batch: crops per decoder-training step of the ``train`` section.
        train_crop: side of those crops in pixels (a multiple of 16).
        seed: seed of every random draw.
        image: path of the benchmark image (None = Kodak kodim01 if present,
            else scikit-image's astronaut photo), resized to ``image_size``.
    """

    quick: bool = False
    device: str = "cpu"
    repeats: int = 5
    image_size: tuple[int, int] = (512, 768)
    n_draws: int = 10**7
    n_sim_packets: int = 10**5
    fractions: tuple[float, ...] = (0.1, 0.2, 0.4)
    ar_shape: tuple[int, int] = (32, 48)
    ar_model: str = "shipped"
    ar_model_kwargs: dict[str, Any] | None = None
    ar_repeats: int = 3
    fec_bytes: int = 8 * 10**6
    rs_packets: int = 100
    train_batch: int = 8
    train_crop: int = 256
    seed: int = 0
    image: str | None = None

    @classmethod
    def make(
        cls,
        quick: bool = False,
        device: str | None = None,
        repeats: int | None = None,
        image: str | None = None,
        seed: int = 0,
    ) -> "BenchConfig":
        """The full or quick configuration; ``device=None`` → CUDA when present, else CPU."""
        dev = resolve_device(device)
        if quick:
            cfg = cls(
                quick=True,
                device=dev,
                repeats=1,
                image_size=(256, 384),
                n_draws=10**6,
                n_sim_packets=10**4,
                fractions=(0.2,),
                ar_shape=(16, 24),
                ar_model="random",
                ar_model_kwargs=dict(n_layer=2, n_head=4, n_embd=128),
                ar_repeats=1,
                fec_bytes=10**6,
                rs_packets=10,
                train_batch=2,
                train_crop=64,
                seed=seed,
                image=image,
            )
        else:
            cfg = cls(device=dev, seed=seed, image=image)
        if repeats is not None:
            if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
                raise BenchError(f"repeats must be an int ≥ 1, got {repeats!r}")
            cfg.repeats = repeats
        return cfg


def resolve_device(device: str | None) -> str:
    """ "cpu" / "cuda" (checked available); None → "cuda" when available, else "cpu"."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise BenchError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device 'cuda' requested but torch.cuda.is_available() is False")
    return device

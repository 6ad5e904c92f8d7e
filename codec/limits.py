"""Resource limits on what a decoder accepts from untrusted bytes (numpy-free, no torch).

A bitstream or packet header states the sizes the receiver will allocate for:
``h × w`` indices and an ``H × W`` image. A few hundred CRC-valid bytes can
claim a 32768×32768 image, so every receive path checks the claim against
:class:`DecodeLimits` *before* anything is allocated, as Pillow does with
``Image.MAX_IMAGE_PIXELS``, and refuses with :class:`LimitExceededError`.

Defaults (overridable per call with ``limits=``, per process with the
environment variables ``VQSIM_MAX_PIXELS`` / ``VQSIM_MAX_INDICES``, per
command with ``vqsim decode --max-pixels``):

* ``max_pixels = 2^21`` (2,097,152: a 1920×1080 frame fits, 5× a Kodak
  image). Decoding with the default model on CPU needs 0.7–1.7 kB of RAM per
  pixel above the loaded model (measured, one thread: +0.74 GB and 3.5 s for
  a 1024×1024 image, +6.7 GB and 39 s for 2048×2048), so the default bounds
  one decode to ≈ 3.5 GB;
* ``max_indices = 2^15`` (32,768: the index map of a ``max_pixels`` image at
  a downsampling factor f = 8; f = 16 models need a quarter of it).

The limits bound memory, and with it time: the entropy decoders run once per
index (≈ 2–8 µs each), and the VQGAN decoder's cost is linear in pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import BitstreamError, ParameterError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_INDICES", "DecodeLimits", "LimitExceededError", "resolve_limits"]

DEFAULT_MAX_PIXELS = 1 << 21
DEFAULT_MAX_INDICES = 1 << 15
_HARD_MAX_INDICES = 1 << 24  # what the containers can express at all (codec.entropy.MAX_SYMBOLS)
_HARD_MAX_PIXELS = 1 << 40
ENV_MAX_PIXELS = "VQSIM_MAX_PIXELS"
ENV_MAX_INDICES = "VQSIM_MAX_INDICES"


class LimitExceededError(BitstreamError):
    """A header claims more pixels or indices than the decoder's :class:`DecodeLimits` allow.

    A subclass of :class:`~codec.errors.BitstreamError`, so code that already
    refuses corrupt input refuses these too.
    """


def _positive_int(name: str, value: object, hard_max: int) -> int:
    if isinstance(value, str) and value.strip().isdecimal():  # isdigit() would admit '²', which int() refuses
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    if not 1 <= value <= hard_max:
        raise ParameterError(f"{name} must be in [1, {hard_max}], got {value}")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """Largest image and index map a decoder allocates for.

    Attributes:
        max_pixels: largest ``H · W`` (pixels) a header may claim.
        max_indices: largest ``h · w`` (indices) a header may claim.

    Raises:
        ParameterError: a limit is not a positive integer (at construction).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_indices: int = DEFAULT_MAX_INDICES

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_pixels", _positive_int("max_pixels", self.max_pixels, _HARD_MAX_PIXELS))
        object.__setattr__(self, "max_indices", _positive_int("max_indices", self.max_indices, _HARD_MAX_INDICES))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DecodeLimits":
        """The defaults, overridden by ``VQSIM_MAX_PIXELS`` / ``VQSIM_MAX_INDICES`` when set."""
        env = os.environ if environ is None else environ
        kw: dict[str, int] = {}
        for key, field_name in ((ENV_MAX_PIXELS, "max_pixels"), (ENV_MAX_INDICES, "max_indices")):
            if env.get(key, "").strip():
                hard_max = _HARD_MAX_PIXELS if field_name == "max_pixels" else _HARD_MAX_INDICES
                kw[field_name] = _positive_int(f"environment variable {key}", env[key], hard_max)
        return cls(**kw)

    @classmethod
    def unlimited(cls) -> "DecodeLimits":
        """Only the containers' own ceilings (for trusted input)."""
        return cls(_HARD_MAX_PIXELS, _HARD_MAX_INDICES)

    def check(self, h: int, w: int, H: int | None = None, W: int | None = None, *, what: str = "header") -> None:
        """Raise :class:`LimitExceededError` if ``h·w`` indices or ``H·W`` pixels exceed the limits."""
        if h * w > self.max_indices:
            raise LimitExceededError(
                f"{what} claims {h}x{w} = {h * w} indices, more than max_indices = {self.max_indices} "
                f"(raise it with {ENV_MAX_INDICES} or limits=DecodeLimits(max_indices=...) if the input is trusted)")
        if H is not None and W is not None and H * W > self.max_pixels:
            raise LimitExceededError(
                f"{what} claims a {H}x{W} = {H * W} pixel image, more than max_pixels = {self.max_pixels} "
                f"(raise it with {ENV_MAX_PIXELS} or limits=DecodeLimits(max_pixels=...) if the input is trusted)")


def resolve_limits(limits: DecodeLimits | None) -> DecodeLimits:
    """``limits`` itself, else :meth:`DecodeLimits.from_env`."""
    if limits is None:
        return DecodeLimits.from_env()
    if not isinstance(limits, DecodeLimits):
        raise ParameterError(f"limits must be a DecodeLimits, got {type(limits).__name__}")
    return limits

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
  image). Decoding with the default model on CPU needs at most
  ``DECODE_PEAK_FIXED + DECODE_PEAK_PER_PIXEL · H · W`` = 96 MB + 1.0 kB per
  pixel above the loaded model (measured, one thread, with the CLI's CPU
  settings: 0.66–1.07 kB/px from 0.4 to 1 Mpx; ``tests/codec/test_limits.py``
  measures it on every run), so a decode at the default limit stays below
  ≈ 2.2 GB above the model and ≈ 3.5 GB for the whole ``vqsim decode`` process
  (measured at 1448×1448, the largest square the limit admits: 2.26 GB for
  ``vqsim decode``, 2.34 GB for ``vqsim conceal --method bidir_mean``; before
  issue 27: 4.09 / 4.75 GB, from heap fragmentation and the swish's temporaries);
* ``max_indices = 2^15`` (32,768: the index map of a ``max_pixels`` image at
  a downsampling factor f = 8; f = 16 models need a quarter of it);
* ``max_codebook_size = 2^16`` (65,536: 4× the largest official taming
  codebook, 16,384): the largest K a *packet* stream may claim. Every packet
  restarts its entropy coder, so an arithmetic-coded packet builds a model of
  K counts whatever its payload holds; with K capped a packet's model costs
  at most ≈ 0.5 ms (a copy of a cached template), so the worst stream of
  ``max_indices`` one-index packets costs seconds, not the ≈ 15 CPU-minutes a
  claimed K = 2^20 did. (A ``.vqb`` bitstream builds one model, so its K is
  bounded only by the container's 2^20.) Override: ``VQSIM_MAX_CODEBOOK_SIZE``.

The limits bound memory, and with it time: the entropy decoders run once per
index (≈ 2–8 µs each), and the VQGAN decoder's cost is linear in pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import BitstreamError, ParameterError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_INDICES",
    "DEFAULT_MAX_CODEBOOK_SIZE",
    "DecodeLimits",
    "LimitExceededError",
    "resolve_limits",
]

DEFAULT_MAX_PIXELS = 1 << 21
DECODE_PEAK_FIXED = 96 << 20
DECODE_PEAK_PER_PIXEL = 1000
"""Upper bound of one CPU decode's peak memory above the loaded model, in bytes: fixed + per pixel (docstring)."""
DEFAULT_MAX_INDICES = 1 << 15
DEFAULT_MAX_CODEBOOK_SIZE = 1 << 16
_HARD_MAX_CODEBOOK_SIZE = 1 << 20  # codec.types.MAX_CODEBOOK_SIZE: 20-bit indices
_HARD_MAX_INDICES = 1 << 24  # what the containers can express at all (codec.entropy.MAX_SYMBOLS)
_HARD_MAX_PIXELS = 1 << 40
ENV_MAX_PIXELS = "VQSIM_MAX_PIXELS"
ENV_MAX_INDICES = "VQSIM_MAX_INDICES"
ENV_MAX_CODEBOOK_SIZE = "VQSIM_MAX_CODEBOOK_SIZE"
_FIELDS = (
    ("max_pixels", ENV_MAX_PIXELS, _HARD_MAX_PIXELS),
    ("max_indices", ENV_MAX_INDICES, _HARD_MAX_INDICES),
    ("max_codebook_size", ENV_MAX_CODEBOOK_SIZE, _HARD_MAX_CODEBOOK_SIZE),
)


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
        max_codebook_size: largest codebook size K a packet header or compact
            session may claim (the per-packet entropy model has K counts).

    Raises:
        ParameterError: a limit is not a positive integer (at construction).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_indices: int = DEFAULT_MAX_INDICES
    max_codebook_size: int = DEFAULT_MAX_CODEBOOK_SIZE

    def __post_init__(self) -> None:
        for field_name, _, hard_max in _FIELDS:
            object.__setattr__(self, field_name, _positive_int(field_name, getattr(self, field_name), hard_max))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DecodeLimits":
        """The defaults, overridden by ``VQSIM_MAX_PIXELS`` / ``VQSIM_MAX_INDICES`` /
        ``VQSIM_MAX_CODEBOOK_SIZE`` when set."""
        env = os.environ if environ is None else environ
        kw: dict[str, int] = {}
        for field_name, key, hard_max in _FIELDS:
            if env.get(key, "").strip():
                kw[field_name] = _positive_int(f"environment variable {key}", env[key], hard_max)
        return cls(**kw)

    @classmethod
    def unlimited(cls) -> "DecodeLimits":
        """Only the containers' own ceilings (for trusted input)."""
        return cls(_HARD_MAX_PIXELS, _HARD_MAX_INDICES, _HARD_MAX_CODEBOOK_SIZE)

    def check(
        self,
        h: int,
        w: int,
        H: int | None = None,
        W: int | None = None,
        *,
        what: str = "header",
        codebook_size: int | None = None,
    ) -> None:
        """Raise :class:`LimitExceededError` if ``h·w`` indices, ``H·W`` pixels or (when given)
        ``codebook_size`` exceed the limits."""
        if codebook_size is not None and codebook_size > self.max_codebook_size:
            raise LimitExceededError(
                f"{what} claims codebook size {codebook_size}, more than max_codebook_size = "
                f"{self.max_codebook_size} (raise it with {ENV_MAX_CODEBOOK_SIZE} or "
                f"limits=DecodeLimits(max_codebook_size=...) if the input is trusted)"
            )
        if h * w > self.max_indices:
            raise LimitExceededError(
                f"{what} claims {h}x{w} = {h * w} indices, more than max_indices = {self.max_indices} "
                f"(raise it with {ENV_MAX_INDICES} or limits=DecodeLimits(max_indices=...) if the input is trusted)"
            )
        if H is not None and W is not None and H * W > self.max_pixels:
            raise LimitExceededError(
                f"{what} claims a {H}x{W} = {H * W} pixel image, more than max_pixels = {self.max_pixels} "
                f"(raise it with {ENV_MAX_PIXELS} or limits=DecodeLimits(max_pixels=...) if the input is trusted)"
            )

    def check_image(self, H: int, W: int, *, what: str = "image") -> None:
        """Raise :class:`LimitExceededError` if an ``H × W`` image exceeds ``max_pixels``.

        The encode side uses the same limit as the decode side (``codec.image.load_image`` checks
        a file's header before decoding it, ``VQGANCodec.encode_*`` the array): the encoder needs
        ≈ 130 bytes per pixel (a 10000² image: 12.8 GB), so the default bounds one encode to ≈ 0.3 GB.
        """
        if H * W > self.max_pixels:
            raise LimitExceededError(
                f"{what} is {W}x{H} = {H * W} pixels, more than max_pixels = {self.max_pixels} "
                f"(raise it with {ENV_MAX_PIXELS}, --max-pixels or limits=DecodeLimits(max_pixels=...) "
                f"if the input is trusted)"
            )


def resolve_limits(limits: DecodeLimits | None) -> DecodeLimits:
    """``limits`` itself, else :meth:`DecodeLimits.from_env`."""
    if limits is None:
        return DecodeLimits.from_env()
    if not isinstance(limits, DecodeLimits):
        raise ParameterError(f"limits must be a DecodeLimits, got {type(limits).__name__}")
    return limits

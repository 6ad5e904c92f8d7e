"""The image codec: image ⇄ IndexMap ⇄ bytes (CompressAI-like API).

>>> codec = load_codec("default", codebook_size=256)      # codec.zoo
>>> data = codec.compress(image)                            # bytes (header + payload + CRC)
>>> rec = codec.decompress(data)                            # uint8 (H, W, 3)
>>> imap = codec.encode_indices(image)                      # what the simulator carries
>>> rec = codec.decode_indices(imap)

Images are uint8 RGB arrays (H, W, 3) (see ``codec.image``); any size works:
the image is padded to a multiple of the downsampling factor f by reflection
(replication when the image is smaller than the pad) and the reconstruction is
cropped back.  The batch methods take float tensors (N, 3, H, W) in [0, 1].
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .bitstream import decode_bitstream, encode_bitstream, parse_header
from .errors import BitstreamError, ParameterError
from .image import as_uint8_image, to_tensor
from .limits import DecodeLimits, resolve_limits
from .runtime import cpu_fast_path
from .types import IndexMap
from .vqgan import VQModel


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when present, else CPU.

    Raises ParameterError for a name torch does not know (``"bogus"``, ``"cuda:abc"``) and for a
    CUDA device this machine does not have (no GPU, or an index beyond the GPUs present).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ParameterError(f"unknown device {device!r} (use cpu, cuda or cuda:N): {' '.join(str(e).split())[:120]}") \
            from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ParameterError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= n:
            raise ParameterError(f"device {device!r}: this machine has {n} CUDA device(s) (cuda:0 … cuda:{n - 1})")
    elif dev.type not in ("cpu", "mps", "xpu", "meta"):
        raise ParameterError(f"device {device!r}: vqsim runs on cpu or cuda")
    return dev


class VQGANCodec:
    """A VQGAN (encoder, codebook, decoder) used as a lossless-index image codec.

    Args:
        model: the VQGAN; its quantizer's codebook (K, D) defines the indices.
        name: model name; ``codebook_id`` = ``"{name}/{K}"`` goes into every
            IndexMap and bitstream so a receiver can check it has the same codebook.
        device: torch device (default: CUDA when present, else CPU).
        coder: default entropy coder of ``compress``: "arith_rep" (the smallest at every
            codebook size of the default model, see README), "arith", "deflate", "raw", or "tf_ar"
            (the shipped AR transformer as the entropy model, ``codec.entropy.tf_ar``).
        prior: optional (K,) codeword counts shipped with the model; the
            arithmetic coder starts from them (both ends need the same prior).
        autocast: None, "bf16" (CUDA or CPU) or "fp16" (CUDA only): mixed precision. Indices
            may then differ slightly from float32; off by default.
    """

    def __init__(self, model: VQModel, *, name: str = "custom", device: str | torch.device | None = None,
                 coder: str = "arith_rep", prior: np.ndarray | None = None, autocast: str | None = None):
        from .bitstream import BITSTREAM_CODERS

        if coder not in BITSTREAM_CODERS:
            raise ParameterError(f"coder must be one of {BITSTREAM_CODERS}, got {coder!r}")
        if autocast not in (None, "bf16", "fp16"):
            raise ParameterError(f"autocast must be None, 'bf16' or 'fp16', got {autocast!r}")
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.coder = coder
        self.autocast = autocast
        K = model.codebook_size
        if prior is not None:
            prior = np.asarray(prior, dtype=np.int64)
            if prior.shape != (K,):
                raise ParameterError(f"prior must have shape ({K},), got {prior.shape}")
        self.prior = prior
        #: "trained" (the model's own codebook), "kmeans" (K-means reduction, w/o fine-tune),
        #: "finetuned" (reduction with a fine-tuned decoder side) or "custom"; set by ``codec.zoo``.
        self.variant = "custom"

    # ------------------------------------------------------------------ properties
    @property
    def codebook_size(self) -> int:
        return self.model.codebook_size

    @property
    def codebook_id(self) -> str:
        return f"{self.name}/{self.codebook_size}"

    @property
    def downsample_factor(self) -> int:
        return self.model.downsample_factor

    @property
    def codebook(self) -> np.ndarray:
        """The codewords, float32 (K, D)."""
        return self.model.quantize.codewords().detach().float().cpu().numpy()

    def latent_shape(self, image_size: tuple[int, int]) -> tuple[int, int]:
        f = self.downsample_factor
        H, W = image_size
        return (-(-H // f), -(-W // f))

    def __repr__(self) -> str:
        return (f"VQGANCodec({self.codebook_id!r}, variant={self.variant!r}, f={self.downsample_factor}, "
                f"device={self.device}, coder={self.coder!r})")

    def _autocast(self):
        if self.autocast and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if self.autocast == "bf16" else torch.float16)
        if self.autocast == "bf16" and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ batch level
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        f = self.downsample_factor
        H, W = x.shape[-2:]
        ph, pw = (-H) % f, (-W) % f
        if ph == 0 and pw == 0:
            return x
        mode = "reflect" if (ph < H and pw < W) else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor, *, limits: DecodeLimits | None = None) -> torch.Tensor:
        """Float (N, 3, H, W) in [0, 1] → pre-quantization latents float32 (N, D, ceil(H/f), ceil(W/f)).

        ``model.quantize.indices`` of them gives the index map; codecs that share
        the encoder (the reduced sizes of one model) can quantize the same latents.
        Each image's H·W must be within ``limits.max_pixels`` (default
        ``DecodeLimits.from_env()``, 2^21; ``LimitExceededError``): the encoder
        needs ≈ 130 bytes per pixel.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ParameterError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        resolve_limits(limits).check_image(int(images.shape[-2]), int(images.shape[-1]), what="image to encode")
        x = self._pad(images.to(self.device, torch.float32)) * 2.0 - 1.0
        with self._autocast(), cpu_fast_path(self.device):  # the CLI's fast path, restored afterwards
            h = self.model.encode_pre_quant(x)
        return h.float()

    @torch.no_grad()
    def encode_batch(self, images: torch.Tensor, *, limits: DecodeLimits | None = None) -> torch.Tensor:
        """Float (N, 3, H, W) in [0, 1] → indices int64 (N, ceil(H/f), ceil(W/f)).

        ``limits``: see ``encode_latents``.
        """
        return self.model.quantize.indices(self.encode_latents(images, limits=limits))

    @torch.no_grad()
    def decode_batch(self, indices: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Indices (N, h, w) → float (N, 3, H, W) in [0, 1], cropped to ``image_size`` if given."""
        idx = torch.as_tensor(indices, device=self.device).long()
        if idx.ndim != 3:
            raise ParameterError(f"expected indices of shape (N, h, w), got {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.codebook_size):
            raise ParameterError(f"indices out of range for codebook size {self.codebook_size}")
        with self._autocast(), cpu_fast_path(self.device):  # the CLI's fast path, restored afterwards
            x = self.model.decode_indices(idx)
        x = ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)
        if image_size is not None:
            H, W = image_size
            x = x[..., :H, :W]
        return x

    # ------------------------------------------------------------------ index level
    def encode_indices(self, image, *, limits: DecodeLimits | None = None) -> IndexMap:
        """uint8 (H, W, 3) image (or a (1,3,H,W) tensor in [0,1]) → IndexMap.

        Raises LimitExceededError for an image of more than ``limits.max_pixels`` pixels (see ``encode_latents``).
        """
        shape = tuple(image.shape) if hasattr(image, "shape") else np.shape(image)
        if len(shape) >= 2:  # before the float copy (12 bytes per pixel) is made
            H, W = shape[-2:] if hasattr(image, "detach") else shape[:2]
            resolve_limits(limits).check_image(int(H), int(W), what="image to encode")
        x = to_tensor(as_uint8_image(image) if not hasattr(image, "detach") else image)
        if x.shape[0] != 1:
            raise ParameterError("encode_indices takes one image; use encode_batch for batches")
        idx = self.encode_batch(x, limits=limits)[0].cpu().numpy()
        return IndexMap(idx, self.codebook_size, tuple(x.shape[-2:]), self.codebook_id)

    def encode_many(self, images: Sequence[np.ndarray]) -> list[IndexMap]:
        """Encode images of possibly different sizes; same-size images go through one batch."""
        out: list[IndexMap | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(tuple(np.asarray(im).shape[:2]), []).append(i)
        for size, ids in groups.items():
            idx = self.encode_batch(to_tensor([images[i] for i in ids])).cpu().numpy()
            for j, i in enumerate(ids):
                out[i] = IndexMap(idx[j], self.codebook_size, size, self.codebook_id)
        return out  # type: ignore[return-value]

    def _check_map(self, imap: IndexMap) -> None:
        if imap.codebook_size != self.codebook_size:
            raise BitstreamError(
                f"index map uses codebook size {imap.codebook_size}, this codec has {self.codebook_size}"
            )
        if imap.codebook_id and imap.codebook_id != self.codebook_id:
            raise BitstreamError(
                f"index map was made with codebook {imap.codebook_id!r}, this codec is {self.codebook_id!r}"
            )
        if imap.shape != self.latent_shape(imap.image_size):
            raise BitstreamError(
                f"index map shape {imap.shape} does not fit image size {imap.image_size} at f={self.downsample_factor}"
            )

    def decode_indices_tensor(self, imap: IndexMap) -> torch.Tensor:
        """IndexMap → float (1, 3, H, W) in [0, 1] on the codec's device."""
        self._check_map(imap)
        return self.decode_batch(torch.from_numpy(imap.indices.astype(np.int64))[None], imap.image_size)

    def decode_indices(self, imap: IndexMap) -> np.ndarray:
        """IndexMap → uint8 image (H, W, 3)."""
        return as_uint8_image(self.decode_indices_tensor(imap))

    # ------------------------------------------------------------------ bytes level
    def compress(self, image, coder: str | None = None, *, limits: DecodeLimits | None = None) -> bytes:
        """Image → bitstream bytes (see ``codec.bitstream`` for the format; ``limits``: see ``encode_latents``)."""
        return self.compress_indices(self.encode_indices(image, limits=limits), coder)

    def compress_indices(self, imap: IndexMap, coder: str | None = None) -> bytes:
        coder = coder or self.coder
        prior = self.prior if coder.startswith("arith") else None
        return encode_bitstream(imap, coder=coder, prior=prior)

    def decompress_indices(self, data: bytes, *, limits: DecodeLimits | None = None) -> IndexMap:
        """Bitstream → IndexMap, checking it belongs to this codec before decoding the payload.

        Args:
            data: the bitstream.
            limits: largest image / index map to accept (default ``DecodeLimits.from_env()``).

        Raises:
            BitstreamError: corrupt or foreign bitstream (codebook size or id of another
                codec, latent size not fitting the image size at this codec's factor).
            LimitExceededError: the header claims more than ``limits`` allow.
        """
        head = parse_header(data)
        if head.codebook_size != self.codebook_size:
            raise BitstreamError(
                f"bitstream uses codebook size {head.codebook_size}, this codec has {self.codebook_size}"
            )
        if head.codebook_id and head.codebook_id != self.codebook_id:
            raise BitstreamError(
                f"bitstream was made with codebook {head.codebook_id!r}, this codec is {self.codebook_id!r}"
            )
        imap = decode_bitstream(data, prior=self.prior, limits=limits, downsample_factor=self.downsample_factor)
        self._check_map(imap)
        return imap

    def decompress(self, data: bytes, *, limits: DecodeLimits | None = None) -> np.ndarray:
        """Bitstream bytes → uint8 image (H, W, 3). Raises BitstreamError on bad input (see ``decompress_indices``)."""
        return self.decode_indices(self.decompress_indices(data, limits=limits))

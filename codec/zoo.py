"""Model registry ("zoo"): pretrained codecs and concealment models by name, each with its model card.

All shipped weights live in one place, ``codec/weights/`` (weights-only
``torch.save`` files, fp16 storage, read with ``weights_only=True``):

* ``{name}.pt``: a VQGAN in the project format (``codec.checkpoint``) with its
  K-means codebooks for every reduced size and index priors for the arithmetic
  coder;
* ``{name}_{kind}_{size}.pt``: a concealment transformer (``kind`` = "ar" or
  "bidir") for that codec at that codebook size (``codec.conceal``);
* ``{name}.json``: the model card, kept as data next to the weights it
  describes (as CompressAI keeps architecture, training data, measured
  rate/quality and the file hash with each pretrained model): architecture,
  codebook sizes (trained K, K-means reductions, fine-tuned decoders),
  concealers shipped, training data, Kodak bpp and LPIPS-Alex as measured
  (with date and source), and the SHA-256 of every file. Reading it needs
  neither torch nor unpickling, so ``vqsim models`` is fast, and
  ``tests/codec/test_zoo.py`` checks it against the files.

Registered weights are checked against their card's SHA-256 before they are
read (``CheckpointError`` naming the file and both hashes on a mismatch); the
hash of a file is computed once per (path, size, mtime).

``load_codec`` also accepts a path to a checkpoint: the project's format or an
official taming-transformers ``.ckpt`` (optionally with its config yaml).

Every ``load_codec`` call returns an independent model: files are read once
and cached, but each codec gets its own copy of the modules, so moving one to
another device, training or fine-tuning it leaves every other codec as it was.

A bitstream names its codebook (``"default/256"``); the receiver decides what
that name may load: ``model_for_bitstream`` accepts only registered names, so
a bitstream can never make the receiver open a file of the sender's choosing.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import BitstreamError, CheckpointError, ModelNotFoundError, ParameterError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: The registered names (each has ``WEIGHTS_DIR/{name}.json``): the only models a bitstream may name.
REGISTERED_NAMES: tuple[str, ...] = ("default",)


@dataclass(frozen=True)
class ConcealerInfo:
    """A shipped concealment transformer of a codec, for one (kind, codebook size)."""

    kind: str                       # "ar" (causal) or "bidir" (masked)
    codebook_size: int
    file: str                       # name inside the model's weights folder
    sha256: str
    architecture: str
    steps: int                      # training steps
    heldout_nats: float | None = None   # held-out cross-entropy (AR: full context; bidir: 50 % masked)
    heldout_exact: float | None = None  # held-out fraction of exactly predicted indices


@dataclass(frozen=True)
class DecoderVariantInfo:
    """A shipped decoder variant of a codec (``codec.conceal.decoder_variant``) for one codebook size: a
    decoder side fine-tuned on concealed maps; encoder and codebook are the codec's."""

    kind: str                       # "robust"
    codebook_size: int
    file: str                       # name inside the model's weights folder
    sha256: str
    steps: int                      # fine-tuning steps
    filler: str                     # the concealment method whose output it was trained on
    description: str = ""           # training recipe and what was measured, one paragraph


@dataclass(frozen=True)
class KodakRow:
    """One codebook size measured on the Kodak images (means over the images)."""

    codebook_size: int
    bpp: float                              # the default coder's bitstream, header and CRC included
    lpips_alex: float                       # the default variant: trained at K, fine-tuned decoder below K
    lpips_alex_kmeans: float | None = None  # the plain K-means decoder ("w/o fine-tune"); None at K
    lpips_vgg: float | None = None          # the default variant on the metrics the codec's loss does not use
    dists: float | None = None


@dataclass(frozen=True)
class KodakCard:
    """Measured Kodak results of a model: where, when and how they were measured."""

    images: int
    coder: str
    measured: str                   # date of the measurement (ISO)
    source: str                     # the command / document the numbers come from
    rows: tuple[KodakRow, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """A registered codec: its weights file and model card (read from ``{name}.json``)."""

    name: str
    file: str                       # the VQGAN file, inside ``weights_dir``
    sha256: str                     # of that file, hex
    architecture: str               # one line
    description: str                # the full architecture
    codebook_size: int              # K, the trained size
    reduced_sizes: tuple[int, ...]  # K-means reductions stored in the file (descending)
    kmeans_seed: int
    finetuned_sizes: tuple[int, ...]  # reduced sizes with a fine-tuned decoder side in the file
    concealers: tuple[ConcealerInfo, ...]
    training: Mapping[str, Any]
    kodak: KodakCard | None
    decoder_variants: tuple[DecoderVariantInfo, ...] = ()
    weights_dir: Path = field(default=WEIGHTS_DIR, compare=False)

    @property
    def path(self) -> Path:
        return self.weights_dir / self.file

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Every size the file serves without computing: K, then the K-means reductions."""
        return (self.codebook_size, *self.reduced_sizes)

    def concealer(self, kind: str, codebook_size: int) -> ConcealerInfo | None:
        return next((c for c in self.concealers if c.kind == kind and c.codebook_size == int(codebook_size)), None)

    def decoder_variant(self, kind: str, codebook_size: int) -> DecoderVariantInfo | None:
        return next((d for d in self.decoder_variants if d.kind == kind and d.codebook_size == int(codebook_size)),
                    None)

    def weights_status(self) -> str:
        """"ok", "missing" or "sha256 mismatch" for the VQGAN file (hashes it, once per file version)."""
        return file_status(self.path, self.sha256)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able card plus ``path`` and ``present``."""
        d = asdict(replace(self, training=dict(self.training)))  # (asdict cannot deep-copy a mappingproxy)
        d.pop("weights_dir")
        d = json.loads(json.dumps(d))  # tuples → lists: exactly what the JSON card holds
        return {**d, "path": str(self.path), "present": self.path.exists()}


def read_model_card(path: str | Path, weights_dir: str | Path | None = None) -> ModelInfo:
    """A ``ModelInfo`` from a model card JSON file (weights looked up beside it unless ``weights_dir``)."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
        kodak = d.get("kodak")
        return ModelInfo(
            name=str(d["name"]),
            file=str(d["file"]),
            sha256=str(d["sha256"]).lower(),
            architecture=str(d["architecture"]),
            description=str(d.get("description", "")),
            codebook_size=int(d["codebook_size"]),
            reduced_sizes=tuple(int(s) for s in d["reduced_sizes"]),
            kmeans_seed=int(d.get("kmeans_seed", 0)),
            finetuned_sizes=tuple(int(s) for s in d["finetuned_sizes"]),
            concealers=tuple(
                ConcealerInfo(**{**c, "sha256": str(c["sha256"]).lower()}) for c in d.get("concealers", [])
            ),
            training=MappingProxyType(dict(d.get("training", {}))),
            kodak=None
            if kodak is None
            else KodakCard(
                images=int(kodak["images"]),
                coder=str(kodak["coder"]),
                measured=str(kodak["measured"]),
                source=str(kodak["source"]),
                rows=tuple(KodakRow(**r) for r in kodak["rows"]),
            ),
            decoder_variants=tuple(
                DecoderVariantInfo(**{**v, "sha256": str(v["sha256"]).lower()}) for v in d.get("decoder_variants", [])
            ),
            weights_dir=Path(weights_dir) if weights_dir is not None else p.parent,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"model card {p} is unreadable or incomplete ({type(e).__name__}: {e})") from None


REGISTRY: Mapping[str, ModelInfo] = MappingProxyType(
    {n: read_model_card(WEIGHTS_DIR / f"{n}.json") for n in REGISTERED_NAMES}
)
"""name → model card of every registered model (read-only; read at import from ``codec/weights/*.json``)."""


# --------------------------------------------------------------------------- file integrity
@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, computed once per (resolved path, size, mtime) and cached."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_of(str(p), st.st_size, st.st_mtime_ns)


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise ``CheckpointError`` naming the file and both hashes unless its SHA-256 is ``expected``."""
    got = file_sha256(path)
    if got != expected.lower():
        raise CheckpointError(
            f"{path} is corrupted or was replaced: its SHA-256 is {got}, the registry lists "
            f"{expected.lower()} (restore the file, e.g. reinstall the package)"
        )


def file_status(path: str | Path, sha256: str) -> str:
    """ "ok", "missing" or "sha256 mismatch": does the file exist and match ``sha256``."""
    path = Path(path)
    if not path.exists():
        return "missing"
    return "ok" if file_sha256(path) == sha256 else "sha256 mismatch"


# --------------------------------------------------------------------------- lookup
def list_models() -> list[dict[str, Any]]:
    """The model card of every registered model (``ModelInfo.to_dict``: metadata, ``path``, ``present``)."""
    return [m.to_dict() for m in REGISTRY.values()]


def model_info(name: str) -> ModelInfo:
    """The registered model ``name``, or ``ModelNotFoundError`` naming the registered ones."""
    if name not in REGISTRY:
        raise ModelNotFoundError(f"unknown model {name!r}; registered models: {', '.join(REGISTRY) or 'none'}")
    return REGISTRY[name]


def resolve_model_path(name_or_path: str | Path) -> tuple[str, Path]:
    """(model name, checkpoint path) for a registry name or a file path.

    A registered model's file (by name, or by a path to that file) is checked
    against the SHA-256 of its card first (``CheckpointError`` on a mismatch).
    """
    key = str(name_or_path)
    if key in REGISTRY:
        info = REGISTRY[key]
        p = info.path
        if not p.exists():
            raise ModelNotFoundError(
                f"weights of model {key!r} are missing: {p} "
                "(reinstall the package or train one with 'vqsim train-codec')"
            )
        verify_sha256(p, info.sha256)
        return key, p
    p = Path(key)
    if p.exists():
        for info in REGISTRY.values():
            if p.is_file() and info.path.exists() and p.resolve() == info.path.resolve():
                verify_sha256(p, info.sha256)
        return p.stem, p
    raise ModelNotFoundError(
        f"unknown model {key!r}: not a registered name ({', '.join(REGISTRY)}) nor an existing file"
    )


def model_for_bitstream(codebook_id: str | None, model: str | Path | None = None) -> str | Path:
    """The model that decodes a bitstream whose header names ``codebook_id``.

    ``model`` (the receiver's own choice: a registered name or a checkpoint
    path) wins when given. Otherwise the model part of ``codebook_id``
    (``"default"`` of ``"default/256"``) must be a registered name: the id comes
    from the sender, and a path in it is refused, never opened.

    Raises:
        BitstreamError: no ``model`` and the bitstream names no codebook, or
            names one that is not registered.
    """
    if model is not None:
        return model
    name = (codebook_id or "").rsplit("/", 1)[0]
    if not name:
        raise BitstreamError("bitstream names no codebook; pass --model NAME_OR_CHECKPOINT")
    if name not in REGISTRY:
        shown = name if len(name) <= 60 and name.isprintable() else repr(name[:60]) + "…"
        raise BitstreamError(
            f"bitstream names codebook model {shown!r}, which is not a registered model "
            f"({', '.join(REGISTRY)}); pass --model NAME_OR_CHECKPOINT to choose the decoder"
        )
    return name


def _file_stamp(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file: part of every cache key below, so a rewritten file is read again."""
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _load_base_model(path: str, config: str | None, stamp: tuple[int, int]) -> tuple[Any, dict[str, Any]]:
    from .checkpoint import load_vqgan

    return load_vqgan(path, config=config)


def load_base_model(path: str, config: str | None) -> tuple[Any, dict[str, Any]]:
    """The full-codebook ``VQModel`` of a checkpoint file and its extras (``meta``, ``priors``, …), cached per
    (path, size, modification time): a file rewritten in place (``finetune-codec``, ``export-codec``) is read anew.

    Shared, not copied: callers must not modify the model (``load_codec`` builds its
    reduced-codebook codecs from it).  ``path`` is not hash-checked here; resolve
    names with ``resolve_model_path`` (which checks a registered file's SHA-256).
    """
    return _load_base_model(path, config, _file_stamp(path))



def checkpoint_meta(name_or_path: str | Path = "default", config: str | None = None) -> dict[str, Any]:
    """The ``meta`` dict a codec checkpoint stores (training steps, data, ...); {} when it has none.

    Reads the file through the same cache as ``load_codec`` (a registered
    file's SHA-256 is checked first).
    """
    _, path = resolve_model_path(name_or_path)
    return dict(load_base_model(str(path), None if config is None else str(config))[1].get("meta", {}))


@functools.lru_cache(maxsize=32)
def _kmeans_codebook(path: str, config: str | None, size: int, seed: int, stamp: tuple[int, int]) -> np.ndarray:
    from .kmeans import kmeans_codebook

    model, _ = load_base_model(path, config)
    return kmeans_codebook(model.quantize.codewords().detach().float().cpu().numpy(), size, seed=seed).centroids


def load_codec(
    name_or_path: str | Path = "default",
    codebook_size: int | None = None,
    *,
    device=None,
    coder: str = "arith_rep",
    config: str | None = None,
    kmeans_seed: int = 0,
    autocast: str | None = None,
    finetuned: bool | None = None,
):
    """A ``VQGANCodec`` by registry name or checkpoint path.

    Args:
        name_or_path: "default" (see ``list_models()``) or a checkpoint file.
        codebook_size: S ≤ K. Below K the codebook is the K-means reduction
            of the model's codebook: shipped with the model when present,
            else computed (seeded, deterministic).
        finetuned: for S < K, decode with the shipped fine-tuned decoder side
            of that size (``codec.train.finetune``; same indices and bitstreams as
            without). None (default): fine-tuned when the model ships it,
            else the plain K-means model ("w/o fine-tune" in the paper);
            True: require it (ModelNotFoundError if absent); False: never.
        device: torch device (default CUDA when present, else CPU).
        coder: default entropy coder for ``compress``.
        config: taming config yaml for official checkpoints (else inferred).
    """
    name, path = resolve_model_path(name_or_path)  # (a registered file's hash is checked before torch reads it)
    import torch

    from .api import VQGANCodec

    cached, extras = load_base_model(str(path), None if config is None else str(config))
    base = copy.deepcopy(cached)  # every codec owns its modules (see the module docstring)
    K = base.codebook_size
    S = K if codebook_size is None else int(codebook_size)
    if not 2 <= S <= K:
        raise ParameterError(f"codebook_size must be in [2, {K}] for model {name!r}, got {codebook_size}")
    model, prior, variant = base, extras["priors"].get(K), "trained"
    if S < K:
        cb = extras["codebooks"].get(S)
        shipped_cb = cb is not None and kmeans_seed == int(extras["meta"].get("kmeans_seed", 0))
        cb = (
            cb.float()
            if shipped_cb
            else torch.from_numpy(_kmeans_codebook(str(path), None if config is None else str(config), S, kmeans_seed,
                                                     _file_stamp(str(path))))
        )
        ft = extras["decoders"].get(S) if shipped_cb else None
        if finetuned and ft is None:
            have = sorted(int(k) for k in extras["decoders"])
            raise ModelNotFoundError(
                f"model {name!r} ships no fine-tuned decoder for codebook size {S} "
                f"(fine-tuned sizes: {have or 'none'}; K-means seed {kmeans_seed})"
            )
        use_ft = ft is not None and finetuned is not False
        model = base.with_codebook(cb, finetuned={k: v.float() for k, v in ft.items()} if ft is not None and use_ft
                                   else None)
        variant = "finetuned" if use_ft else "kmeans"
        prior = extras["priors"].get(S)
    elif finetuned:
        raise ParameterError(f"codebook size {S} is the model's trained size; fine-tuned variants exist only below {K}")
    codec = VQGANCodec(
        model,
        name=name,
        device=device,
        coder=coder,
        prior=None if prior is None else _own_copy(prior),
        autocast=autocast,
    )
    codec.variant = variant
    return codec


def _own_copy(a) -> np.ndarray:
    """A numpy copy of a cached tensor or array (so no codec shares it with the cache)."""
    import torch

    return a.detach().cpu().numpy().copy() if isinstance(a, torch.Tensor) else np.array(a, copy=True)


def concealer_path(codec_name: str, codebook_size: int, kind: str = "ar") -> Path:
    """Where the concealer (codec, size, kind) lives: its card's file for a registered codec, else the naming rule."""
    info = REGISTRY.get(codec_name)
    c = info.concealer(kind, codebook_size) if info is not None else None
    if info is not None and c is not None:
        return info.weights_dir / c.file
    return WEIGHTS_DIR / f"{codec_name}_{kind}_{int(codebook_size)}.pt"


def load_concealer(codec_name: str, codebook_size: int, kind: str = "ar", device=None):
    """The shipped concealment transformer for (codec, codebook size, kind), or ModelNotFoundError.

    A concealer listed in the codec's card is checked against its SHA-256 before it is read.
    """
    p = concealer_path(codec_name, codebook_size, kind)
    if not p.exists():
        have = sorted(q.name for q in p.parent.glob(f"{codec_name}_{kind}_*.pt"))
        raise ModelNotFoundError(
            f"no {kind!r} concealment model for {codec_name}/{codebook_size} ({p.name}); shipped: {have or 'none'}"
        )
    info = REGISTRY.get(codec_name)
    c = info.concealer(kind, codebook_size) if info is not None else None
    if c is not None:
        verify_sha256(p, c.sha256)
    from .conceal import load_transformer

    return load_transformer(p, device=device if device is not None else "cpu")

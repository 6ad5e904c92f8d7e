"""Reading and writing VQGAN checkpoints, weights only.

Formats read by ``load_vqgan``:

* the project's own file (``save_vqgan``): a dict with ``format="vqsim-vqgan"``,
  ``config`` (``VQGANConfig`` fields), ``state_dict`` (fp16 or fp32 tensors),
  optional ``codebooks`` {size: (S, D) tensor} (K-means / fine-tuned reduced
  codebooks), ``priors`` {size: (S,) index counts for the arithmetic coder},
  ``decoders`` {size: partial state_dict of fine-tuned decoder weights} and ``meta``;
* an official taming-transformers PyTorch Lightning ``.ckpt``: ``["state_dict"]``
  with ``encoder.*``, ``decoder.*``, ``quantize.*``, ``quant_conv.*``,
  ``post_quant_conv.*`` (``loss.*`` — LPIPS and discriminator — ignored); a
  Net2NetTransformer checkpoint's ``first_stage_model.*`` is accepted too;
* a bare state_dict with those keys.

Every file is read with ``torch.load(..., weights_only=True)``: no code from a
checkpoint is ever run.  A wrong or truncated file raises ``CheckpointError``
naming the problem (unreadable file, missing / unexpected / mismatched keys).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .vqgan import VQGANConfig, VQModel, infer_config_from_state_dict

FORMAT = "vqsim-vqgan"
_AE_PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True; turn every failure into a clear error."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"checkpoint path is a directory: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, disallowed global, ...
        with open(p, "rb") as fh:
            head = fh.read(1 << 20)
        why = _load_failure(e, head[:4] == b"PK\x03\x04", head)
        raise CheckpointError(f"cannot read checkpoint {p}: {why}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, expected a dict")
    return obj


def _builds_objects(head: bytes) -> bool:
    """Whether ``head`` is a whole pickle stream that imports or calls something (read with ``pickletools``,
    which only parses: nothing is imported or run). Random bytes fail to parse."""
    import pickletools

    try:
        ops = {op.name for op, _, _ in pickletools.genops(head)}
    except Exception:  # noqa: BLE001 — not a (complete) pickle
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def _load_failure(e: Exception, is_zip: bool, head: bytes = b"") -> str:
    """Why ``torch.load(weights_only=True)`` failed, in vqsim's words (never torch's advice to
    load with ``weights_only=False``, which would run code from the file)."""
    import pickle

    text = str(e)
    low = text.lower()
    objects = ("unsupported global" in low or "unsupported class" in low or _builds_objects(head))
    if isinstance(e, pickle.UnpicklingError) and "weights only" in low and not objects:
        # the weights-only unpickler met an opcode or byte it cannot read: garbage, not objects
        return "not a PyTorch checkpoint (unreadable pickle data: corrupt, truncated or random bytes)"
    if isinstance(e, pickle.UnpicklingError) and "weights only" in low:
        return ("it holds Python objects other than tensors and plain containers; vqsim reads weights only "
                "and never runs code from a checkpoint (re-export it as a plain state_dict)")
    if "zip archive" in text or "central directory" in text or isinstance(e, EOFError) or is_zip:
        return "not a complete PyTorch file (truncated, or not a torch.save archive)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "weights_only" in first or "weights only" in first.lower():
        first = ""
    return f"not a PyTorch checkpoint ({type(e).__name__}{': ' + first[:120] if first else ''})"


def _fmt_keys(keys: list[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str = "model") -> None:
    """Raise CheckpointError unless ``sd`` has exactly ``module``'s keys and shapes."""
    check_state_dict_keys(module.state_dict(), sd, what)


def check_state_dict_keys(own: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], what: str = "model") -> None:
    """Raise CheckpointError unless ``sd`` has exactly the keys and shapes of ``own``."""
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_fmt_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_fmt_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (checkpoint vs model): {_fmt_keys(mismatched)}")
    if problems:
        raise CheckpointError(f"{what} checkpoint does not match the model — " + "; ".join(problems))


MAX_MODEL_ELEMENTS = 1 << 30
"""Largest model (parameters + persistent buffers, in elements: 4 GB as float32) a checkpoint may describe;
the shipped codec has 3.4 M, taming's largest f16 VQGAN ≈ 90 M, a 24-layer GPT-2-medium-sized transformer
≈ 350 M."""


class _SkipMetaInit(torch.overrides.TorchFunctionMode):
    """Skip weight initialisation of meta tensors (they hold no data). Random init on the meta device goes
    through torch's Python reference kernels, whose first call imports ``torch._dynamo``: 4.6 s of the
    ~5 s a ``vqsim decode`` / ``conceal`` spent building its shape probe (measured 2026-12-07)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t = args[0] if args else kwargs.get("tensor")
        is_init = getattr(func, "__module__", "") == "torch.nn.init" or getattr(func, "__name__", "") in (
            "normal_", "uniform_")
        if is_init and isinstance(t, torch.Tensor) and t.is_meta:
            return t
        return func(*args, **kwargs)


def build_checked(factory, sd: Any, what: str = "model", *, max_elements: int = MAX_MODEL_ELEMENTS):
    """``factory()`` — a module built from a file's own config — but only once ``sd`` is known to fit it.

    The module is first built on PyTorch's ``meta`` device (shapes only, no memory, no data), and
    ``sd`` is checked against it (:func:`check_state_dict`: keys and shapes) and against
    ``max_elements``; only then is the real module allocated. A file whose config claims a huge model
    (``ch`` 4096 with an empty state_dict: 4–24 GB) is refused in well under a second with a
    :class:`CheckpointError` instead of allocating it.
    """
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise CheckpointError(f"{what} checkpoint's state_dict is not a dict of named tensors")
    try:
        with torch.device("meta"), _SkipMetaInit():
            probe = factory()
    except (ValueError, TypeError) as e:  # the config's own checks
        raise CheckpointError(f"{what} checkpoint has an invalid config: {e}") from None
    shapes = probe.state_dict()
    n = sum(v.numel() for v in shapes.values())
    if n > max_elements:
        raise CheckpointError(f"{what} checkpoint's config describes a model of {n:,} elements, more than the "
                              f"{max_elements:,} vqsim loads")
    check_state_dict(probe, sd, what)
    del probe, shapes
    return factory()


def load_state_dict_checked(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str = "model") -> None:
    check_state_dict(module, sd, what)
    ref = module.state_dict()
    module.load_state_dict({k: v.to(ref[k].dtype) for k, v in sd.items()}, strict=True)


def extract_autoencoder_state_dict(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The autoencoder's keys from a Lightning / transformer / bare checkpoint dict."""
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, dict):
        raise CheckpointError("checkpoint has no state_dict")
    if any(k.startswith("first_stage_model.") for k in sd):
        sd = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    out = {k: v for k, v in sd.items() if isinstance(k, str) and k.startswith(_AE_PREFIXES)}
    if not out:
        sample = _fmt_keys([str(k) for k in sd][:8])
        raise CheckpointError("no VQGAN autoencoder keys (encoder.*, decoder.*, quantize.*) in checkpoint; "
                              f"found: {sample}")
    return out


def config_from_taming_yaml(path: str | Path) -> VQGANConfig:
    """Read a taming-transformers config yaml (``model.params.ddconfig``, ``n_embed``, ``embed_dim``)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            y = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as e:  # bad YAML, a !!python tag, binary bytes
        first = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{path} is not a readable taming config yaml ({type(e).__name__}: {first})") from None
    try:
        params = y["model"]["params"]
        if "first_stage_config" in params:  # a transformer config: take its first stage
            params = params["first_stage_config"]["params"]
        dd = dict(params["ddconfig"])
        dd.update(n_embed=params["n_embed"], embed_dim=params["embed_dim"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path} is not a taming VQGAN config (missing {e})") from None
    return VQGANConfig.from_dict(dd)


def load_vqgan(
    path: str | Path, config: VQGANConfig | dict | str | Path | None = None
) -> tuple[VQModel, dict[str, Any]]:
    """Load a VQGAN from the project's format or an official taming checkpoint.

    Args:
        path: checkpoint file.
        config: for taming checkpoints, a VQGANConfig / dict / path to the
            taming yaml; if None it is inferred from the state_dict shapes
            (assuming taming's resolution 256 for ``attn_resolutions``).

    Returns:
        (model in eval mode, extras) where extras has ``codebooks``,
        ``priors``, ``decoders`` and ``meta`` (empty for taming checkpoints).
    """
    obj = read_checkpoint(path)
    extras: dict[str, Any] = {"codebooks": {}, "priors": {}, "decoders": {}, "meta": {}}
    if obj.get("format") == FORMAT:
        try:
            cfg = VQGANConfig.from_dict(obj["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} has no valid VQGAN config ({type(e).__name__}: {e})") from None
        sd: Any = obj.get("state_dict")  # checked by build_checked below
        for key in ("codebooks", "priors", "decoders", "meta"):
            if key in obj:
                extras[key] = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in obj[key].items()}
    else:
        sd = extract_autoencoder_state_dict(obj)
        if config is None:
            cfg = infer_config_from_state_dict(sd)
        elif isinstance(config, (str, Path)):
            cfg = config_from_taming_yaml(config)
        elif isinstance(config, dict):
            cfg = VQGANConfig.from_dict(config)
        else:
            cfg = config
        extras["meta"] = {"source": "taming-transformers checkpoint", "path": str(path)}
    what = f"VQGAN ({Path(path).name})"
    model = build_checked(lambda: VQModel(cfg), sd, what)  # shapes checked before anything is allocated
    load_state_dict_checked(model, sd, what=what)
    return model.eval(), extras


def save_vqgan(
    path: str | Path,
    model: VQModel,
    *,
    codebooks: dict[int, torch.Tensor] | None = None,
    priors: dict[int, torch.Tensor] | None = None,
    decoders: dict[int, dict[str, torch.Tensor]] | None = None,
    meta: dict[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write the project's weights-only format (fp16 storage when ``half``)."""

    def conv(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if half and t.is_floating_point() else t.clone()

    obj = {
        "format": FORMAT,
        "version": 1,
        "config": model.config.to_dict(),
        "state_dict": {k: conv(v) for k, v in model.state_dict().items()},
        "codebooks": {str(k): conv(v) for k, v in (codebooks or {}).items()},
        "priors": {str(k): torch.as_tensor(v).to(torch.int64).cpu() for k, v in (priors or {}).items()},
        "decoders": {str(k): {n: conv(t) for n, t in d.items()} for k, d in (decoders or {}).items()},
        "meta": dict(meta or {}),
    }
    return save_atomic(obj, path)


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename: the file is either complete or absent
    (an interrupted save never leaves half a checkpoint); the parent folder is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(p)
    return p

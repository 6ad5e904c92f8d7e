"""Sweep configuration: schema, defaults, validation and expansion.

A sweep config is a YAML mapping.  Every key is optional except ``channels``;
unknown keys are errors (typos must not silently fall back to defaults).
Numbers in exponent notation such as ``1.0e7`` or ``1e-4``, which PyYAML
(YAML 1.1) reads as strings, are numbers in the float fields and channel
parameters; any other string there is an error.

.. code-block:: yaml

    name: my_sweep                 # results go to results/<name> unless --out is given
    description: free text
    images:
      source: skimage              # "skimage" (bundled sample photos), a folder, a glob, a file, or a list of those
      names: [astronaut, coffee, chelsea, rocket]   # skimage photos (source: skimage only)
      limit: null                  # keep the first N images
      resize: 256                  # null | short side in px (int) | [H, W]
      crop: [256, 256]             # null | centre crop [H, W] after the resize
    codec:
      model: default               # registry name or checkpoint path
      codebook_sizes: [256]        # S values (K-means reductions below the model's K)
      coder: arith                 # bitstream coder for the source rate (bpp)
      kmeans_seed: 0
      finetuned: auto              # reduced sizes: auto (the shipped fine-tuned decoder when there is one) | true | false (w/o fine-tune)
      device: auto                 # auto | cpu | cuda | cuda:N
    channels:                      # each entry expands to the product of its list-valued parameters
      - {model: index_loss, rate: [0.0, 0.1, 0.2]}       # drops exactly round(rate·h·w) indices
      - {model: bernoulli, p: [0.01, 0.05]}
      - {model: gilbert_elliott, loss_rate: [0.05], mean_burst: [1.5, 4]}
      - internet                   # a preset name, or a netem string such as "loss gemodel 1% 30%"
    fec:                           # product with codebook_sizes (or use `pairs`)
      - none
      - {n: 12, k: 8}              # packet-level erasure code RS(n, k)
      - {nsym: 8}                  # in-packet RS parity bytes (against bit errors)
    pairs: null                    # alternative to codebook_sizes × fec: [{codebook_size: S, fec: ...}, ...]
    packetization: {mtu: [200], interleave: [random], coder: [arith]}
    link: {bandwidth_bps: 1.0e7, propagation_s: 0.02, jitter: none, jitter_s: 0.0,
           queue_packets: null, queue_bytes: null, overhead_bytes: 0}
    pacing_bps: null
    deadline_s: null
    concealment:
      methods: [ar, bidir, latent_avg, neighbor, mean, none]
      options: {bidir: {steps: 6}}  # per-method options of codec.conceal.conceal
      models: {}                   # {ar|bidir: path template with {size}}; default: the model zoo
      on_missing_model: error      # error | skip (drop ar/bidir when their model is not shipped)
    seeds: [0, 1, 2]
    metrics: {nets: [alex], device: auto, structural: true}   # LPIPS backbones: alex and/or vgg (vgg is ~20× slower
                                                              # on CPU); structural: SSIM/MS-SSIM per trial (~2 s at 768x512 on CPU)
    examples: {enabled: true, max_side: 256}
    execution: {flush_every_s: 5.0, consolidate_every_s: 30.0, torch_threads: 1}
                                   # torch CPU threads per worker: CPU results depend on it in the last
                                   # digits, so it is part of the sweep's identity (config hash)

``validate_config(raw)`` checks everything that can be checked without
loading any model (schema, value ranges, channel / FEC construction) and
returns the *resolved* config: a plain dict with every default filled in,
which is what ``config.yaml`` in a results folder holds.
``check_resources(resolved)`` then checks the files (codec checkpoint,
codebook sizes against the model's K, concealment models) and adds the codec
checkpoint's SHA-256.  Both raise :class:`ConfigError` naming the bad key and
the allowed values, before any trial runs.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from codec.entropy import CODERS
from codec.errors import VQSimError

__all__ = [
    "ConfigError", "SKIMAGE_IMAGES", "INDEX_LOSS", "load_config", "validate_config",
    "check_resources", "expand_channels", "fec_label", "ChannelPoint", "config_hash", "bundled_config",
    "BUNDLED_CONFIG_DIR",
]

BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent / "configs"

SKIMAGE_IMAGES = ("astronaut", "coffee", "chelsea", "cat", "rocket", "immunohistochemistry")
"""Colour photos shipped inside the scikit-image wheel (no download)."""

INDEX_LOSS = "index_loss"
"""The pseudo-channel of the paper's restoration experiment: drops indices directly, no packets."""

INDEX_LOSS_MODES = ("exact", "iid")
MISSING_MODEL_POLICIES = ("error", "skip")
# The other enumerations come from the layer that owns them: coders codec.entropy.CODERS, interleavers
# sim.interleave.SCHEMES, jitter laws sim.network.JITTERS, LPIPS nets codec.metrics.LPIPS_NETS, concealment
# methods / options / model kinds codec.conceal. All but the coders are imported where they are checked,
# so importing this module stays cheap (sim and codec.conceal cost ~0.2 s, codec.metrics loads torch).

TOP_KEYS = ("name", "description", "images", "codec", "channels", "fec", "pairs", "packetization", "link",
            "pacing_bps", "deadline_s", "concealment", "seeds", "metrics", "examples", "execution")
IMAGE_KEYS = ("source", "names", "limit", "resize", "crop")
CODEC_KEYS = ("model", "codebook_sizes", "codebook_size", "coder", "kmeans_seed", "finetuned", "device")
PACKET_KEYS = ("mtu", "interleave", "coder")
LINK_DEFAULTS: dict[str, Any] = {"bandwidth_bps": 1e7, "propagation_s": 0.02, "jitter": "none", "jitter_s": 0.0,
                                 "queue_packets": None, "queue_bytes": None, "overhead_bytes": 0}
CONCEAL_KEYS = ("methods", "options", "models", "on_missing_model")
METRIC_KEYS = ("nets", "device", "structural")
EXAMPLE_KEYS = ("enabled", "max_side")
EXECUTION_DEFAULTS: dict[str, Any] = {"flush_every_s": 5.0, "consolidate_every_s": 30.0, "torch_threads": 1}
FEC_KEYS = ("n", "k", "nsym")
PAIR_KEYS = ("codebook_size", "fec")
# the parameter that sets the loss rate of a channel model (x axis of the loss curves)
LOSS_PARAMS = {"index_loss": "rate", "bernoulli": "p", "gilbert_elliott": "loss_rate", "bsc": "ber"}


class ConfigError(VQSimError, ValueError):
    """A sweep config is invalid; the message names the key and the allowed values."""


# --------------------------------------------------------------------------- helpers
def _err(path: str, msg: str) -> ConfigError:
    return ConfigError(f"config: {path}: {msg}" if path else f"config: {msg}")


def _check_keys(obj: Any, allowed: tuple[str, ...], path: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise _err(path, f"must be a mapping with keys {', '.join(allowed)}; got {type(obj).__name__}")
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        where = f"'{path}'" if path else "the top level"
        raise _err(path, f"unknown key(s) {', '.join(repr(str(k)) for k in unknown)} in {where}; "
                         f"allowed: {', '.join(allowed)}")
    return dict(obj)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


# A decimal number in exponent notation: YAML 1.2 reads it as a float, PyYAML (YAML 1.1) as a string unless
# the mantissa has a dot and the exponent a sign ("1.0e7", "1e-4", "5E6" are strings, "1.0e+7" a float).
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _yaml_float(v: Any) -> Any:
    """``v`` as a float if it is a string in exponent notation (YAML 1.1's unread floats), else ``v`` unchanged."""
    return float(v) if isinstance(v, str) and _EXPONENT_FLOAT.fullmatch(v) else v


def _int(v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
    if not _is_int(v):
        raise _err(path, f"must be an integer, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise _err(path, f"must be in {rng}, got {v}")
    return int(v)


def _num(v: Any, path: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
         none_ok: bool = False) -> float | None:
    if v is None and none_ok:
        return None
    v = _yaml_float(v)
    if not _is_num(v):
        raise _err(path, f"must be a finite number{' or null' if none_ok else ''}, got {v!r}")
    x = float(v)
    if lo is not None and (x < lo or (open_lo and x == lo)):
        raise _err(path, f"must be {'>' if open_lo else '≥'} {lo}, got {v}")
    if hi is not None and x > hi:
        raise _err(path, f"must be ≤ {hi}, got {v}")
    return x


def _choice(v: Any, allowed: tuple[str, ...], path: str) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise _err(path, f"unknown value {v!r}; allowed: {', '.join(allowed)}")
    return v


def _as_list(v: Any, path: str) -> list:
    if isinstance(v, (list, tuple)):
        if not v:
            raise _err(path, "must not be an empty list")
        return list(v)
    return [v]


def _size_pair(v: Any, path: str, allow_int: bool) -> list[int] | int | None:
    if v is None:
        return None
    if allow_int and _is_int(v):
        return _int(v, path, 8, 16384)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return [_int(v[0], f"{path}[0]", 8, 16384), _int(v[1], f"{path}[1]", 8, 16384)]
    raise _err(path, f"must be {'an int (short side in px) or ' if allow_int else ''}[H, W] with sides in [8, 16384]; "
                     f"got {v!r}")


def fec_label(fec: Mapping[str, int]) -> str:
    """'none', 'RS(12,8)', 'inpkt8' or 'RS(12,8)+inpkt8'."""
    parts = []
    if fec.get("n"):
        parts.append(f"RS({fec['n']},{fec['k']})")
    if fec.get("nsym"):
        parts.append(f"inpkt{fec['nsym']}")
    return "+".join(parts) or "none"


# --------------------------------------------------------------------------- sections
def _images(v: Any) -> dict:
    d = _check_keys(v, IMAGE_KEYS, "images")
    src = d.get("source", "skimage")
    if isinstance(src, (list, tuple)):
        if not src or not all(isinstance(s, str) and s for s in src):
            raise _err("images.source", f"a list of sources must hold non-empty paths/globs, got {src!r}")
        src = [str(s) for s in src]
    elif not isinstance(src, str) or not src:
        raise _err("images.source", f"must be 'skimage', a folder, a glob, a file or a list of those; got {src!r}")
    names = d.get("names")
    if names is not None and not isinstance(names, (list, tuple)):
        raise _err("images.names", f"must be a list of photo names, got {names!r}; allowed: {', '.join(SKIMAGE_IMAGES)}")
    if src == "skimage":
        names = list(names) if names is not None else ["astronaut", "coffee", "chelsea", "rocket"]
        if not names:
            raise _err("images.names", "must not be empty")
        for i, n in enumerate(names):
            _choice(n, SKIMAGE_IMAGES, f"images.names[{i}]")
        if len(set(names)) != len(names):
            raise _err("images.names", f"duplicate names in {names}")
    elif names is not None:
        raise _err("images.names", "only applies to source: skimage (the photos bundled with scikit-image)")
    limit = d.get("limit")
    if limit is not None:
        limit = _int(limit, "images.limit", 1)
    return {"source": src, "names": names, "limit": limit,
            "resize": _size_pair(d.get("resize"), "images.resize", True),
            "crop": _size_pair(d.get("crop"), "images.crop", False)}


def _codec(v: Any) -> dict:
    d = _check_keys(v, CODEC_KEYS, "codec")
    model = d.get("model", "default")
    if not isinstance(model, str) or not model:
        raise _err("codec.model", f"must be a model name or a checkpoint path, got {model!r}")
    if "codebook_sizes" in d and "codebook_size" in d:
        raise _err("codec", "give codebook_sizes (a list) or codebook_size, not both")
    sizes = d.get("codebook_sizes", d.get("codebook_size"))
    if sizes is None:
        sizes_l: list[int | None] = [None]  # the model's full codebook
    else:
        sizes_l = [_int(s, f"codec.codebook_sizes[{i}]", 2, 1 << 20) for i, s in enumerate(_as_list(sizes, "codec.codebook_sizes"))]
        if len(set(sizes_l)) != len(sizes_l):
            raise _err("codec.codebook_sizes", f"duplicate sizes in {sizes_l}")
    device = d.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise _err("codec.device", f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    ft = d.get("finetuned", "auto")
    ft = {True: "true", False: "false", None: "auto"}.get(ft, ft) if isinstance(ft, (bool, type(None))) else ft
    if ft not in ("auto", "true", "false"):
        raise _err("codec.finetuned", f"must be auto, true or false, got {d.get('finetuned')!r}")
    return {"model": model, "codebook_sizes": sizes_l, "coder": _choice(d.get("coder", "arith"), CODERS, "codec.coder"),
            "kmeans_seed": _int(d.get("kmeans_seed", 0), "codec.kmeans_seed", 0), "finetuned": ft, "device": device}


def _fec_item(v: Any, path: str) -> dict:
    if v is None or v == "none" or v == {}:
        return {"n": 0, "k": 0, "nsym": 0}
    if isinstance(v, str):
        try:
            n, k = (int(x) for x in v.split(","))
        except ValueError:
            raise _err(path, f"a string FEC setting must be 'none' or 'N,K' (e.g. '12,8'), got {v!r}") from None
        v = {"n": n, "k": k}
    d = _check_keys(v, FEC_KEYS, path)
    if ("n" in d) != ("k" in d):
        raise _err(path, f"an erasure code needs both n and k (RS(n, k): 1 ≤ k < n ≤ 255), got {d}")
    n, k = d.get("n", 0), d.get("k", 0)
    if n or k:
        n, k = _int(n, f"{path}.n"), _int(k, f"{path}.k")
        if not 1 <= k < n <= 255:
            raise _err(path, f"bad FEC (n, k) = ({n}, {k}): needs 1 ≤ k < n ≤ 255")
    nsym = _int(d.get("nsym", 0), f"{path}.nsym", 0, 254)
    return {"n": n, "k": k, "nsym": nsym}


def _fecs(v: Any) -> list[dict]:
    items = [_fec_item(x, f"fec[{i}]") for i, x in enumerate(_as_list(v if v is not None else ["none"], "fec"))]
    labels = [fec_label(f) for f in items]
    if len(set(labels)) != len(labels):
        raise _err("fec", f"duplicate settings {labels}")
    return items


def _pairs(v: Any) -> list[dict] | None:
    if v is None:
        return None
    out = []
    for i, item in enumerate(_as_list(v, "pairs")):
        d = _check_keys(item, PAIR_KEYS, f"pairs[{i}]")
        if "codebook_size" not in d:
            raise _err(f"pairs[{i}]", "needs codebook_size (and optionally fec)")
        out.append({"codebook_size": _int(d["codebook_size"], f"pairs[{i}].codebook_size", 2, 1 << 20),
                    "fec": _fec_item(d.get("fec", "none"), f"pairs[{i}].fec")})
    keys = [(p["codebook_size"], fec_label(p["fec"])) for p in out]
    if len(set(keys)) != len(keys):
        raise _err("pairs", f"duplicate (codebook_size, fec) pairs {keys}")
    return out


def _packetization(v: Any) -> dict:
    from sim.interleave import SCHEMES

    d = _check_keys(v, PACKET_KEYS, "packetization")
    mtus = [_int(m, f"packetization.mtu[{i}]", 8, 65000) for i, m in enumerate(_as_list(d.get("mtu", 1200), "packetization.mtu"))]
    ils = [_choice(m, SCHEMES, f"packetization.interleave[{i}]")
           for i, m in enumerate(_as_list(d.get("interleave", "raster"), "packetization.interleave"))]
    cds = [_choice(m, CODERS, f"packetization.coder[{i}]")
           for i, m in enumerate(_as_list(d.get("coder", "arith"), "packetization.coder"))]
    for name, vals in (("mtu", mtus), ("interleave", ils), ("coder", cds)):
        if len(set(vals)) != len(vals):
            raise _err(f"packetization.{name}", f"duplicate values {vals}")
    return {"mtu": mtus, "interleave": ils, "coder": cds}


def _link(v: Any) -> dict:
    from sim.network import JITTERS

    d = _check_keys(v, tuple(LINK_DEFAULTS), "link")
    out = dict(LINK_DEFAULTS)
    out.update(d)
    out["bandwidth_bps"] = _num(out["bandwidth_bps"], "link.bandwidth_bps", 0.0, open_lo=True)
    out["propagation_s"] = _num(out["propagation_s"], "link.propagation_s", 0.0)
    out["jitter"] = _choice(out["jitter"], JITTERS, "link.jitter")
    out["jitter_s"] = _num(out["jitter_s"], "link.jitter_s", 0.0)
    for k in ("queue_packets", "queue_bytes"):
        if out[k] is not None:
            out[k] = _int(out[k], f"link.{k}", 0)
    out["overhead_bytes"] = _int(out["overhead_bytes"], "link.overhead_bytes", 0, 1500)
    return out


def _concealment(v: Any) -> dict:
    from codec.conceal import CONCEAL_METHODS, CONCEAL_OPTIONS

    d = _check_keys(v, CONCEAL_KEYS, "concealment")
    methods = [_choice(m, tuple(CONCEAL_METHODS), f"concealment.methods[{i}]")
               for i, m in enumerate(_as_list(d.get("methods", ["latent_avg", "neighbor", "mean"]), "concealment.methods"))]
    if len(set(methods)) != len(methods):
        raise _err("concealment.methods", f"duplicate methods {methods}")
    opts_in = _check_keys(d.get("options"), tuple(CONCEAL_METHODS), "concealment.options")
    options: dict[str, dict] = {}
    for m, o in opts_in.items():
        if m not in methods:
            raise _err(f"concealment.options.{m}", f"options for a method not in concealment.methods {methods}")
        if o is None:
            continue
        if not isinstance(o, Mapping):
            raise _err(f"concealment.options.{m}", f"must be a mapping of option: value, got {o!r}")
        _check_keys(o, CONCEAL_OPTIONS[m], f"concealment.options.{m}")
        options[m] = {str(k): o[k] for k in sorted(o)}
    models = _check_keys(d.get("models"), ("ar", "bidir"), "concealment.models")
    for k, p in models.items():
        if not isinstance(p, str) or not p:
            raise _err(f"concealment.models.{k}", f"must be a path (template with {{size}}), got {p!r}")
    policy = _choice(d.get("on_missing_model", "error"), MISSING_MODEL_POLICIES, "concealment.on_missing_model")
    return {"methods": methods, "options": options, "models": {k: str(p) for k, p in models.items()},
            "on_missing_model": policy}


def _seeds(v: Any) -> list[int]:
    if v is None:
        return [0]
    if not isinstance(v, (list, tuple)):
        raise _err("seeds", f"must be a list of integers ≥ 0, e.g. [0, 1, 2]; got {v!r}")
    seeds = [_int(s, f"seeds[{i}]", 0, 2**63 - 1) for i, s in enumerate(_as_list(v, "seeds"))]
    if len(set(seeds)) != len(seeds):
        raise _err("seeds", f"duplicate seeds {seeds}")
    return seeds


def _metrics(v: Any) -> dict:
    from codec.metrics import LPIPS_NETS

    d = _check_keys(v, METRIC_KEYS, "metrics")
    nets = [_choice(n, LPIPS_NETS, f"metrics.nets[{i}]") for i, n in enumerate(_as_list(d.get("nets", ["alex"]), "metrics.nets"))]
    if len(set(nets)) != len(nets):
        raise _err("metrics.nets", f"duplicate nets {nets}")
    device = d.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise _err("metrics.device", f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    structural = d.get("structural", True)
    if not isinstance(structural, bool):
        raise _err("metrics.structural", f"must be true or false (SSIM / MS-SSIM per trial), got {structural!r}")
    return {"nets": nets, "device": device, "structural": structural}


def _examples(v: Any) -> dict:
    d = _check_keys(v, EXAMPLE_KEYS, "examples")
    en = d.get("enabled", True)
    if not isinstance(en, bool):
        raise _err("examples.enabled", f"must be true or false, got {en!r}")
    return {"enabled": en, "max_side": _int(d.get("max_side", 256), "examples.max_side", 16, 4096)}


def _execution(v: Any) -> dict:
    d = _check_keys(v, tuple(EXECUTION_DEFAULTS), "execution")
    out = dict(EXECUTION_DEFAULTS)
    out.update(d)
    out["flush_every_s"] = _num(out["flush_every_s"], "execution.flush_every_s", 0.0)
    out["consolidate_every_s"] = _num(out["consolidate_every_s"], "execution.consolidate_every_s", 0.0)
    out["torch_threads"] = _int(out["torch_threads"], "execution.torch_threads", 1, 1024)
    return out


# --------------------------------------------------------------------------- channels
class ChannelPoint(dict):
    """One channel setting of the grid: ``{"model": name, **params}`` plus bookkeeping.

    Keys (besides the spec): ``entry`` (index of the config entry it came
    from), ``kind`` ("index", "loss" or "bit"), ``label``, ``family`` (label
    without the loss-rate parameter), ``loss_rate`` (stationary packet /
    index loss rate, NaN for bit channels), ``burst`` (mean burst length in
    packets, NaN where undefined), ``ber`` (bit error rate, NaN for loss channels).
    """

    @property
    def spec(self) -> dict:
        return {"model": self["model"], **self["params"]}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _channel_entry(v: Any, i: int) -> tuple[str, dict[str, list]]:
    path = f"channels[{i}]"
    if isinstance(v, str):
        if not v.strip():
            raise _err(path, "empty channel name")
        return v.strip(), {}
    if not isinstance(v, Mapping):
        raise _err(path, f"must be a channel name / netem string or a mapping {{model: NAME, param: value|[values]}}, got {v!r}")
    keys = [k for k in ("model", "type", "name", "preset") if k in v]
    if len(keys) != 1:
        raise _err(path, f"needs exactly one of 'model' / 'preset' (got keys {sorted(map(str, v))})")
    name = v[keys[0]]
    params = {str(k): x for k, x in v.items() if k != keys[0]}
    if keys[0] == "preset" and isinstance(name, (list, tuple)):
        if params:
            raise _err(path, f"presets take no parameters, got {sorted(params)}")
        return "__presets__", {"names": list(name)}
    if not isinstance(name, str) or not name.strip():
        raise _err(f"{path}.{keys[0]}", f"must be a channel name, got {name!r}")
    grid = {k: [_yaml_float(y) for y in (x if isinstance(x, (list, tuple)) else [x])] for k, x in params.items()}
    for k, vals in grid.items():
        if not vals:
            raise _err(f"{path}.{k}", "empty list of values")
    return name.strip(), grid


def _channel_floats(entry: Any) -> Any:
    """A copy of a channel entry whose parameters in exponent notation are floats (``_yaml_float``)."""
    out = copy.deepcopy(entry)
    if isinstance(out, dict):
        for k, x in out.items():
            if k not in ("model", "type", "name", "preset"):
                out[k] = type(x)(map(_yaml_float, x)) if isinstance(x, (list, tuple)) else _yaml_float(x)
    return out


def _index_loss_point(params: dict, path: str) -> dict:
    _check_keys(params, ("rate", "mode"), path)
    if "rate" not in params:
        raise _err(path, "index_loss needs 'rate' (fraction of indices dropped, in [0, 1])")
    rate = _num(params["rate"], f"{path}.rate", 0.0, 1.0)
    mode = _choice(params.get("mode", "exact"), INDEX_LOSS_MODES, f"{path}.mode")
    return {"rate": rate, "mode": mode}


def expand_channels(entries: list) -> list[ChannelPoint]:
    """Expand the ``channels`` list into points, building (and so validating) every channel."""
    from channels.base import BitErrorModel
    from channels.factory import make_channel

    points: list[ChannelPoint] = []
    for i, entry in enumerate(entries):
        path = f"channels[{i}]"
        name, grid = _channel_entry(entry, i)
        if name == "__presets__":
            combos = [("preset", {"model": n}) for n in grid["names"]]
        else:
            keys = list(grid)
            combos = [("model", {"model": name, **dict(zip(keys, vals))}) for vals in itertools.product(*grid.values())]
        for _, spec in combos:
            model = spec["model"]
            params = {k: x for k, x in spec.items() if k != "model"}
            key = model.lower().replace("-", "_") if isinstance(model, str) else model
            if key == INDEX_LOSS:
                params = _index_loss_point(params, path)
                pt = ChannelPoint(model=INDEX_LOSS, params=params, entry=i, kind="index", loss_rate=params["rate"],
                                  burst=math.nan, ber=math.nan)
            else:
                for k, x in params.items():
                    if not (_is_num(x) or isinstance(x, (str, bool))):
                        raise _err(f"{path}.{k}", f"channel parameters must be numbers or strings, got {x!r}")
                try:
                    ch = make_channel(model, **params)
                except (ValueError, TypeError) as e:
                    raise _err(path, f"{e} (allowed models also include '{INDEX_LOSS}')") from None
                if isinstance(ch, BitErrorModel):
                    pt = ChannelPoint(model=model, params=params, entry=i, kind="bit", loss_rate=math.nan, burst=math.nan,
                                      ber=float(ch.stationary_bit_error_rate))
                else:
                    pt = ChannelPoint(model=model, params=params, entry=i, kind="loss",
                                      loss_rate=float(ch.stationary_loss_rate), burst=float(ch.mean_burst_length),
                                      ber=math.nan)
            label_params = ",".join(f"{k}={_fmt(x)}" for k, x in params.items() if not (pt["model"] == INDEX_LOSS and k == "mode" and x == "exact"))
            pt["label"] = f"{pt['model']}({label_params})" if label_params else str(pt["model"])
            lp = LOSS_PARAMS.get(str(pt["model"]).lower().replace("-", "_"))
            fam = ",".join(f"{k}={_fmt(x)}" for k, x in params.items()
                           if k != lp and not (pt["model"] == INDEX_LOSS and k == "mode" and x == "exact"))
            pt["family"] = f"{pt['model']}({fam})" if fam else str(pt["model"])
            if lp is None or lp not in params:  # presets, netem strings, full GE: the point is its own family
                pt["family"] = pt["label"]
            points.append(pt)
    labels = [p["label"] for p in points]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise _err("channels", f"duplicate channel settings {dup}")
    return points


# --------------------------------------------------------------------------- entry points
def load_config(path: str | Path) -> dict:
    """Read a YAML config file (or a bundled config by name, e.g. ``demo``) into a raw dict."""
    import yaml

    p = Path(path)
    if not p.exists():
        alt = bundled_config(str(path))
        if alt is None:
            raise FileNotFoundError(f"config not found: {p} (bundled configs: "
                                    f"{', '.join(sorted(q.stem for q in BUNDLED_CONFIG_DIR.glob('*.yaml')))})")
        p = alt
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config: {p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {p}: the top level must be a mapping, got {type(raw).__name__}")
    raw.setdefault("name", p.stem)
    return raw


def bundled_config(name: str) -> Path | None:
    """Path of a ready-made config shipped in ``experiments/configs`` (by stem), or None."""
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    p = BUNDLED_CONFIG_DIR / f"{stem}.yaml"
    return p if p.exists() and "/" not in name else None


def validate_config(raw: Mapping[str, Any]) -> dict:
    """Check a raw config (schema and values, no model loading) and return it resolved (defaults filled)."""
    d = _check_keys(raw, TOP_KEYS, "")
    name = d.get("name", "sweep")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        raise _err("name", f"must be a plain folder name, got {name!r}")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise _err("description", f"must be a string, got {desc!r}")
    if "channels" not in d:
        raise _err("channels", "missing: list at least one channel, e.g. [{model: bernoulli, p: [0.05, 0.1]}]")
    channels = [_channel_floats(c) for c in _as_list(d["channels"], "channels")]
    expand_channels(channels)  # raises on bad channels
    codec = _codec(d.get("codec"))
    pairs = _pairs(d.get("pairs"))
    if pairs is not None:
        if "fec" in d:
            raise _err("pairs", "pairs fix (codebook_size, fec) together; remove the top-level 'fec' list")
        if codec["codebook_sizes"] != [None]:
            raise _err("pairs", "pairs fix (codebook_size, fec) together; remove codec.codebook_sizes")
    out = {
        "name": name,
        "description": desc,
        "images": _images(d.get("images")),
        "codec": codec,
        "channels": channels,
        "fec": _fecs(d.get("fec")) if pairs is None else None,
        "pairs": pairs,
        "packetization": _packetization(d.get("packetization")),
        "link": _link(d.get("link")),
        "pacing_bps": _num(d.get("pacing_bps"), "pacing_bps", 0.0, open_lo=True, none_ok=True),
        "deadline_s": _num(d.get("deadline_s"), "deadline_s", 0.0, none_ok=True),
        "concealment": _concealment(d.get("concealment")),
        "seeds": _seeds(d.get("seeds")),
        "metrics": _metrics(d.get("metrics")),
        "examples": _examples(d.get("examples")),
        "execution": _execution(d.get("execution")),
    }
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def codec_sizes(cfg: Mapping[str, Any]) -> list[int]:
    """The codebook sizes a resolved, resource-checked config uses (from codec.codebook_sizes or pairs)."""
    if cfg.get("pairs"):
        return sorted({p["codebook_size"] for p in cfg["pairs"]}, reverse=True)
    return list(cfg["codec"]["codebook_sizes"])


def check_resources(cfg: dict) -> list[str]:
    """Check the files a resolved config needs; fills in the codec's path, SHA-256, K and name.

    Returns notes (e.g. concealment methods dropped under ``on_missing_model: skip``).
    Raises ConfigError for a missing codec model, a codebook size above K, or
    a missing concealment model (unless skipped).
    """
    from codec.conceal import MODEL_KIND
    from codec.errors import ModelNotFoundError
    from codec.zoo import _load_base, concealer_path, resolve_model_path

    notes: list[str] = []
    c = cfg["codec"]
    try:
        name, path = resolve_model_path(c["model"])
    except ModelNotFoundError as e:
        raise _err("codec.model", str(e)) from None
    try:
        base, _ = _load_base(str(path), None)
    except Exception as e:  # CheckpointError and friends: one line for the user
        raise _err("codec.model", f"cannot load {path}: {e}") from None
    K = int(base.codebook_size)
    c.update({"name": name, "path": str(Path(path).resolve()), "sha256": _sha256(Path(path)), "K": K,
              "downsample_factor": int(base.downsample_factor)})
    if c["codebook_sizes"] == [None]:
        c["codebook_sizes"] = [K] if not cfg.get("pairs") else []
    for where, sizes in (("codec.codebook_sizes", c["codebook_sizes"]),
                         ("pairs", [p["codebook_size"] for p in cfg.get("pairs") or []])):
        for s in sizes:
            if not 2 <= s <= K:
                raise _err(where, f"codebook size {s} not available: model {name!r} has K={K}; allowed: 2 … {K}")
    conc = cfg["concealment"]
    keep = []
    for m in conc["methods"]:
        kind = MODEL_KIND.get(m)
        if kind is None:
            keep.append(m)
            continue
        missing = []
        for s in codec_sizes(cfg):
            tmpl = conc["models"].get(kind)
            p = Path(tmpl.format(size=s)) if tmpl else concealer_path(name, s, kind)
            if not p.exists():
                missing.append(str(p))
        if not missing:
            keep.append(m)
            continue
        msg = (f"concealment method {m!r} needs a {kind!r} transformer for {name}, missing: {', '.join(missing)} "
               f"(ship one, set concealment.models.{kind} to a path template with {{size}}, or use a baseline: "
               "latent_avg, neighbor, mean, none)")
        if conc["on_missing_model"] == "error":
            raise _err("concealment.methods", msg)
        notes.append(f"skipped {msg}")
    if not keep:
        raise _err("concealment.methods", "no concealment method left to run")
    conc["methods"] = keep
    return notes


def config_hash(cfg: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the resolved config minus fields that do not affect results.

    Kept out: the description and the flush / consolidation intervals.  Kept
    in: ``execution.torch_threads`` (CPU kernels round differently with
    another thread count, so rows would differ in the last digits).
    """
    c = copy.deepcopy(dict(cfg))
    c.pop("description", None)
    c["execution"] = {"torch_threads": c.get("execution", {}).get("torch_threads")}
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]

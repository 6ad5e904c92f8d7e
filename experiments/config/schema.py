"""The sweep-config schema: check a raw config section by section, fill in the defaults, hash the result.

The schema itself (keys, defaults, allowed values) is documented in
:mod:`experiments.config`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any, Mapping

from codec.entropy import CODERS, CONTEXT_CODERS, PACKET_CODERS

from ._checks import as_int, as_list, as_num, check_keys, choice, err, size_pair
from .channel_grid import channel_floats, expand_channels

SKIMAGE_IMAGES = ("astronaut", "coffee", "chelsea", "cat", "rocket", "immunohistochemistry", "stereo_motorcycle")
"""Colour photos shipped inside the scikit-image wheel (no download). ``cat`` is the same array as ``chelsea``;
``stereo_motorcycle`` is the left view of scikit-image's stereo pair."""

MISSING_MODEL_POLICIES = ("error", "skip")
# The other enumerations come from the layer that owns them: coders codec.entropy.CODERS, interleavers
# sim.interleave.SCHEMES, jitter laws sim.links.JITTERS, LPIPS nets codec.metrics.LPIPS_NETS, concealment
# methods / options / model kinds codec.conceal. All but the coders are imported where they are checked,
# so importing this package stays cheap (sim and codec.conceal cost ~0.2 s, codec.metrics loads torch).

TOP_KEYS = ("name", "description", "images", "codec", "channels", "fec", "pairs", "packetization", "link",
            "pacing_bps", "deadline_s", "concealment", "seeds", "metrics", "examples", "execution")
IMAGE_KEYS = ("source", "names", "limit", "resize", "crop")
_CUDA_N = re.compile(r"cuda:[0-9]+")  # a CUDA device index (issue 27: "cuda:abc" passed)
CODEC_KEYS = ("model", "codebook_sizes", "codebook_size", "coder", "kmeans_seed", "finetuned", "device")
PACKET_KEYS = ("mtu", "interleave", "coder", "header")
PACKETIZATION_DEFAULTS: dict[str, Any] = {"mtu": 128, "interleave": "random", "coder": "arith"}
"""Without a ``packetization`` block: 128-byte payloads, random interleaving, arithmetic coding. A 768×512 Kodak
image (32×48 indices) then travels in 11–15 data packets at K = 1024 (median 14) and 6–11 at K = 128 (median 9)
(measured on all 24 Kodak images), so a loss rate acts on many packets and the lost indices are spread over the image.
(Until issue 24 the default was mtu 1200 + raster: one or two packets per image, and loss_ratio could only be
0, 0.5 or 1.)"""
MIN_PACKETS_PER_IMAGE = 8
"""Fewer data packets than this per image draw a warning in the run, its summary and the report: the realised loss
of one image can then only take a handful of values (0, 1/P, 2/P, ...)."""
LINK_DEFAULTS: dict[str, Any] = {
    "bandwidth_bps": 1e7,
    "propagation_s": 0.02,
    "jitter": "none",
    "jitter_s": 0.0,
    "queue_packets": None,
    "queue_bytes": None,
    "overhead_bytes": 0,
}
LINK_EXTRA_KEYS = ("preset", "duty_cycle")
"""Optional link keys (``sim.links``); left out of the resolved section when not given, so configs
without them resolve (and hash) exactly as before they existed."""
CONCEAL_KEYS = ("methods", "decoders", "options", "models", "on_missing_model")
METRIC_KEYS = ("nets", "device", "structural")
EXAMPLE_KEYS = ("enabled", "max_side")
EXECUTION_DEFAULTS: dict[str, Any] = {"flush_every_s": 5.0, "consolidate_every_s": 30.0, "torch_threads": 1}
FEC_KEYS = ("n", "k", "nsym", "code")
PAIR_KEYS = ("codebook_size", "fec")


def fec_label(fec: Mapping[str, Any]) -> str:
    """'none', 'RS(12,8)', 'inpkt8' or 'RS(12,8)+inpkt8'.

    A code other than the default is named: 'RS(6,4,vandermonde)'.
    """
    parts = []
    if fec.get("n"):
        code = fec.get("code")
        parts.append(f"RS({fec['n']},{fec['k']}{f',{code}' if code and code != 'cauchy' else ''})")
    if fec.get("nsym"):
        parts.append(f"inpkt{fec['nsym']}")
    return "+".join(parts) or "none"


# --------------------------------------------------------------------------- sections
def _images(v: Any) -> dict:
    d = check_keys(v, IMAGE_KEYS, "images")
    src = d.get("source", "skimage")
    if isinstance(src, (list, tuple)):
        if not src or not all(isinstance(s, str) and s for s in src):
            raise err("images.source", f"a list of sources must hold non-empty paths/globs, got {src!r}")
        src = [str(s) for s in src]
    elif not isinstance(src, str) or not src:
        raise err("images.source", f"must be 'skimage', a folder, a glob, a file or a list of those; got {src!r}")
    names = d.get("names")
    if names is not None and not isinstance(names, (list, tuple)):
        raise err("images.names", f"must be a list of photo names, got {names!r}; allowed: {', '.join(SKIMAGE_IMAGES)}")
    if src == "skimage":
        names = list(names) if names is not None else ["astronaut", "coffee", "chelsea", "rocket"]
        if not names:
            raise err("images.names", "must not be empty")
        for i, n in enumerate(names):
            choice(n, SKIMAGE_IMAGES, f"images.names[{i}]")
        if len(set(names)) != len(names):
            raise err("images.names", f"duplicate names in {names}")
        if {"cat", "chelsea"} <= set(names):  # one array under two names: it would count twice in every interval
            raise err("images.names", "'cat' and 'chelsea' are the same photo in scikit-image; keep one of them")
    elif names is not None:
        raise err("images.names", "only applies to source: skimage (the photos bundled with scikit-image)")
    limit = d.get("limit")
    if limit is not None:
        limit = as_int(limit, "images.limit", 1)
    return {
        "source": src,
        "names": names,
        "limit": limit,
        "resize": size_pair(d.get("resize"), "images.resize", True),
        "crop": size_pair(d.get("crop"), "images.crop", False),
    }


def _codec(v: Any) -> dict:
    d = check_keys(v, CODEC_KEYS, "codec")
    model = d.get("model", "default")
    if not isinstance(model, str) or not model:
        raise err("codec.model", f"must be a model name or a checkpoint path, got {model!r}")
    if "codebook_sizes" in d and "codebook_size" in d:
        raise err("codec", "give codebook_sizes (a list) or codebook_size, not both")
    sizes = d.get("codebook_sizes", d.get("codebook_size"))
    if sizes is None:
        sizes_l: list[int | None] = [None]  # the model's full codebook
    else:
        sizes_l = [
            as_int(s, f"codec.codebook_sizes[{i}]", 2, 1 << 20)
            for i, s in enumerate(as_list(sizes, "codec.codebook_sizes"))
        ]
        if len(set(sizes_l)) != len(sizes_l):
            raise err("codec.codebook_sizes", f"duplicate sizes in {sizes_l}")
    device = d.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or _CUDA_N.fullmatch(device)):
        raise err("codec.device", f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    ft = d.get("finetuned", "auto")
    ft = {True: "true", False: "false", None: "auto"}.get(ft, ft) if isinstance(ft, (bool, type(None))) else ft
    if ft not in ("auto", "true", "false"):
        raise err("codec.finetuned", f"must be auto, true or false, got {d.get('finetuned')!r}")
    return {
        "model": model,
        "codebook_sizes": sizes_l,
        "coder": choice(d.get("coder", "arith"), CODERS, "codec.coder"),
        "kmeans_seed": as_int(d.get("kmeans_seed", 0), "codec.kmeans_seed", 0),
        "finetuned": ft,
        "device": device,
    }


def _fec_item(v: Any, path: str) -> dict:
    if v is None or v == "none" or v == {}:
        return {"n": 0, "k": 0, "nsym": 0}
    if isinstance(v, str):
        try:
            n, k = (int(x) for x in v.split(","))
        except ValueError:
            raise err(path, f"a string FEC setting must be 'none' or 'N,K' (e.g. '12,8'), got {v!r}") from None
        v = {"n": n, "k": k}
    d = check_keys(v, FEC_KEYS, path)
    if ("n" in d) != ("k" in d):
        raise err(path, f"an erasure code needs both n and k (RS(n, k): 1 ≤ k < n ≤ 255), got {d}")
    n, k = d.get("n", 0), d.get("k", 0)
    if n or k:
        n, k = as_int(n, f"{path}.n"), as_int(k, f"{path}.k")
        if not 1 <= k < n <= 255:
            raise err(path, f"bad FEC (n, k) = ({n}, {k}): needs 1 ≤ k < n ≤ 255")
    nsym = as_int(d.get("nsym", 0), f"{path}.nsym", 0, 254)
    out: dict[str, Any] = {"n": n, "k": k, "nsym": nsym}
    if "code" in d:  # the default code is left out, so configs without `code` resolve (and hash) as before
        from sim.fec import CODES, DEFAULT_CODE

        code = choice(d["code"], CODES, f"{path}.code")
        if not n:
            raise err(path, f"code {code!r} names the erasure code, so it needs n and k")
        if code != DEFAULT_CODE:
            out["code"] = code
    return out


def _fecs(v: Any) -> list[dict]:
    items = [_fec_item(x, f"fec[{i}]") for i, x in enumerate(as_list(v if v is not None else ["none"], "fec"))]
    labels = [fec_label(f) for f in items]
    if len(set(labels)) != len(labels):
        raise err("fec", f"duplicate settings {labels}")
    return items


def _pairs(v: Any) -> list[dict] | None:
    if v is None:
        return None
    out = []
    for i, item in enumerate(as_list(v, "pairs")):
        d = check_keys(item, PAIR_KEYS, f"pairs[{i}]")
        if "codebook_size" not in d:
            raise err(f"pairs[{i}]", "needs codebook_size (and optionally fec)")
        out.append(
            {
                "codebook_size": as_int(d["codebook_size"], f"pairs[{i}].codebook_size", 2, 1 << 20),
                "fec": _fec_item(d.get("fec", "none"), f"pairs[{i}].fec"),
            }
        )
    keys = [(p["codebook_size"], fec_label(p["fec"])) for p in out]
    if len(set(keys)) != len(keys):
        raise err("pairs", f"duplicate (codebook_size, fec) pairs {keys}")
    return out


def _packetization(v: Any) -> dict:
    from sim.interleave import SCHEMES

    d = check_keys(v, PACKET_KEYS, "packetization")
    mtus = [
        as_int(m, f"packetization.mtu[{i}]", 8, 65000)
        for i, m in enumerate(as_list(d.get("mtu", PACKETIZATION_DEFAULTS["mtu"]), "packetization.mtu"))
    ]
    ils = [
        choice(m, SCHEMES, f"packetization.interleave[{i}]")
        for i, m in enumerate(
            as_list(d.get("interleave", PACKETIZATION_DEFAULTS["interleave"]), "packetization.interleave")
        )
    ]
    cds = [
        choice(m, PACKET_CODERS, f"packetization.coder[{i}]")
        for i, m in enumerate(as_list(d.get("coder", PACKETIZATION_DEFAULTS["coder"]), "packetization.coder"))
    ]
    out = {"mtu": mtus, "interleave": ils, "coder": cds}
    ctx = [c for c in cds if c in CONTEXT_CODERS]
    if ctx and "tile" not in ils:
        raise err("packetization.interleave", f"coder {ctx[0]!r} codes one tile of the map per packet: add 'tile' "
                  f"to packetization.interleave (it is paired only with 'tile'; the other interleavers "
                  f"still go with the symbol coders)")
    if d.get("header") is not None:  # left out when not given: resolved configs and hashes of older configs unchanged
        from sim.packet import HEADERS

        out["header"] = [
            choice(m, HEADERS, f"packetization.header[{i}]")
            for i, m in enumerate(as_list(d["header"], "packetization.header"))
        ]
    for name, vals in out.items():
        if len(set(vals)) != len(vals):
            raise err(f"packetization.{name}", f"duplicate values {vals}")
    return out


def _link(v: Any) -> dict:
    """The link section; ``preset`` (a ``sim.links.LINK_PRESETS`` name) fills bandwidth, propagation,
    overhead and duty cycle from the preset before the explicit keys apply; ``duty_cycle`` is None or in (0, 1]."""
    from sim.links import JITTERS, LINK_PRESETS

    d = check_keys(v, tuple(LINK_DEFAULTS) + LINK_EXTRA_KEYS, "link")
    out = dict(LINK_DEFAULTS)
    if d.get("preset") is not None:
        p = LINK_PRESETS[choice(d["preset"], tuple(LINK_PRESETS), "link.preset")]
        out.update(
            {
                "bandwidth_bps": p.bitrate_bps,
                "propagation_s": p.propagation_s,
                "overhead_bytes": p.per_packet_overhead_bytes,
                "duty_cycle": p.duty_cycle,
                "preset": p.name,
            }
        )
    elif "preset" in d:
        del d["preset"]
    out.update(d)
    if "duty_cycle" in out:
        out["duty_cycle"] = as_num(out["duty_cycle"], "link.duty_cycle", 0.0, 1.0, open_lo=True, none_ok=True)
    out["bandwidth_bps"] = as_num(out["bandwidth_bps"], "link.bandwidth_bps", 0.0, open_lo=True)
    out["propagation_s"] = as_num(out["propagation_s"], "link.propagation_s", 0.0)
    out["jitter"] = choice(out["jitter"], JITTERS, "link.jitter")
    out["jitter_s"] = as_num(out["jitter_s"], "link.jitter_s", 0.0)
    for k in ("queue_packets", "queue_bytes"):
        if out[k] is not None:
            out[k] = as_int(out[k], f"link.{k}", 0)
    out["overhead_bytes"] = as_int(out["overhead_bytes"], "link.overhead_bytes", 0, 1500)
    return out


def _concealment(v: Any) -> dict:
    from codec.conceal import CONCEAL_METHODS, CONCEAL_OPTIONS

    d = check_keys(v, CONCEAL_KEYS, "concealment")
    methods = [
        choice(m, tuple(CONCEAL_METHODS), f"concealment.methods[{i}]")
        for i, m in enumerate(as_list(d.get("methods", ["latent_avg", "neighbor", "mean"]), "concealment.methods"))
    ]
    if len(set(methods)) != len(methods):
        raise err("concealment.methods", f"duplicate methods {methods}")
    opts_in = check_keys(d.get("options"), tuple(CONCEAL_METHODS), "concealment.options")
    options: dict[str, dict] = {}
    for m, o in opts_in.items():
        if m not in methods:
            raise err(f"concealment.options.{m}", f"options for a method not in concealment.methods {methods}")
        if o is None:
            continue
        if not isinstance(o, Mapping):
            raise err(f"concealment.options.{m}", f"must be a mapping of option: value, got {o!r}")
        check_keys(o, CONCEAL_OPTIONS[m], f"concealment.options.{m}")
        options[m] = {str(k): o[k] for k in sorted(o)}
    from codec.conceal.decoder_variant import DECODER_VARIANTS

    decoders = [choice(x, DECODER_VARIANTS, f"concealment.decoders[{i}]")
                for i, x in enumerate(as_list(d.get("decoders", ["plain"]), "concealment.decoders"))]
    if len(set(decoders)) != len(decoders):
        raise err("concealment.decoders", f"duplicate decoders {decoders}")
    models = check_keys(d.get("models"), ("ar", "bidir", "robust_decoder"), "concealment.models")
    for k, p in models.items():
        if not isinstance(p, str) or not p or "\x00" in p:
            raise err(f"concealment.models.{k}", f"must be a path (template with {{size}}), got {p!r}")
        try:  # the template may name {size} only ("/x{}.pt", "{foo}", "{size" were internal errors)
            p.format(size=1024)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise err(
                f"concealment.models.{k}",
                f"{p!r} is not a valid path template: the only field allowed is {{size}} ({type(e).__name__}: {e})",
            ) from None
    policy = choice(d.get("on_missing_model", "error"), MISSING_MODEL_POLICIES, "concealment.on_missing_model")
    return {
        "methods": methods,
        "decoders": decoders,
        "options": options,
        "models": {k: str(p) for k, p in models.items()},
        "on_missing_model": policy,
    }


def _seeds(v: Any) -> list[int]:
    if v is None:
        return [0]
    if not isinstance(v, (list, tuple)):
        raise err("seeds", f"must be a list of integers ≥ 0, e.g. [0, 1, 2]; got {v!r}")
    seeds = [as_int(s, f"seeds[{i}]", 0, 2**63 - 1) for i, s in enumerate(as_list(v, "seeds"))]
    if len(set(seeds)) != len(seeds):
        raise err("seeds", f"duplicate seeds {seeds}")
    return seeds


def _metrics(v: Any) -> dict:
    from codec.metrics import LPIPS_NETS

    d = check_keys(v, METRIC_KEYS, "metrics")
    nets = [
        choice(n, LPIPS_NETS, f"metrics.nets[{i}]")
        for i, n in enumerate(as_list(d.get("nets", ["alex"]), "metrics.nets"))
    ]
    if len(set(nets)) != len(nets):
        raise err("metrics.nets", f"duplicate nets {nets}")
    device = d.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or _CUDA_N.fullmatch(device)):
        raise err("metrics.device", f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    structural = d.get("structural", True)
    if not isinstance(structural, bool):
        raise err("metrics.structural", f"must be true or false (SSIM / MS-SSIM per trial), got {structural!r}")
    return {"nets": nets, "device": device, "structural": structural}


def _examples(v: Any) -> dict:
    d = check_keys(v, EXAMPLE_KEYS, "examples")
    en = d.get("enabled", True)
    if not isinstance(en, bool):
        raise err("examples.enabled", f"must be true or false, got {en!r}")
    return {"enabled": en, "max_side": as_int(d.get("max_side", 256), "examples.max_side", 16, 4096)}


def _execution(v: Any) -> dict:
    d = check_keys(v, tuple(EXECUTION_DEFAULTS), "execution")
    out = dict(EXECUTION_DEFAULTS)
    out.update(d)
    out["flush_every_s"] = as_num(out["flush_every_s"], "execution.flush_every_s", 0.0)
    out["consolidate_every_s"] = as_num(out["consolidate_every_s"], "execution.consolidate_every_s", 0.0)
    out["torch_threads"] = as_int(out["torch_threads"], "execution.torch_threads", 1, 1024)
    return out


def validate_config(raw: Mapping[str, Any]) -> dict:
    """Check a raw config (schema and values, no model loading) and return it resolved (defaults filled)."""
    d = check_keys(raw, TOP_KEYS, "")
    name = d.get("name", "sweep")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        raise err("name", f"must be a plain folder name, got {name!r}")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise err("description", f"must be a string, got {desc!r}")
    if "channels" not in d:
        raise err("channels", "missing: list at least one channel, e.g. [{model: bernoulli, p: [0.05, 0.1]}]")
    channels = [channel_floats(c) for c in as_list(d["channels"], "channels")]
    expand_channels(channels)  # raises on bad channels
    codec = _codec(d.get("codec"))
    pairs = _pairs(d.get("pairs"))
    if pairs is not None:
        if "fec" in d:
            raise err("pairs", "pairs fix (codebook_size, fec) together; remove the top-level 'fec' list")
        if codec["codebook_sizes"] != [None]:
            raise err("pairs", "pairs fix (codebook_size, fec) together; remove codec.codebook_sizes")
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
        "pacing_bps": as_num(d.get("pacing_bps"), "pacing_bps", 0.0, open_lo=True, none_ok=True),
        "deadline_s": as_num(d.get("deadline_s"), "deadline_s", 0.0, none_ok=True),
        "concealment": _concealment(d.get("concealment")),
        "seeds": _seeds(d.get("seeds")),
        "metrics": _metrics(d.get("metrics")),
        "examples": _examples(d.get("examples")),
        "execution": _execution(d.get("execution")),
    }
    _check_link_payload(out)
    return out


def _check_link_payload(cfg: Mapping[str, Any]) -> None:
    """With a link preset, the largest packet of every (mtu, header, FEC) combination must fit its payload limit.

    Largest packet, full header (36 bytes + 4-byte CRC = 40 bytes of overhead): a data packet is mtu + 40;
    with an erasure code a parity packet is (mtu + 40 + 2) + 40. Compact header: at most 6 header bytes and
    a CRC of 1, 2 or 4 bytes sized to the packet (``sim.packet.compact_crc_for_body``). In-packet RS adds nsym
    per 255 − nsym bytes.
    """
    link = cfg["link"]
    if link.get("preset") is None:
        return
    from sim.fec import InPacketRS
    from sim.links import LINK_PRESETS
    from sim.packet import OVERHEAD, compact_crc_for_body

    def wrap(body: int, header: str) -> int:  # body bytes -> packet bytes with header and CRC
        if header == "full":
            return body + OVERHEAD
        return body + 6 + compact_crc_for_body(body + 6)  # 6 = the wide compact header

    limit = LINK_PRESETS[link["preset"]].max_payload_bytes
    fecs = cfg["fec"] if cfg["fec"] is not None else [p["fec"] for p in cfg["pairs"]]
    for header in cfg["packetization"].get("header", ["full"]):
        hdr = f"{OVERHEAD}-byte header/CRC" if header == "full" else "compact header/CRC"
        for mtu in cfg["packetization"]["mtu"]:
            for f in fecs:
                size = wrap(mtu, header)
                if f["n"]:
                    size = wrap(size + 2, header)
                size += InPacketRS(f["nsym"]).overhead(size) if f["nsym"] else 0
                if size > limit:
                    what = (
                        f"a {'parity' if f['n'] else 'data'} packet (mtu {mtu} + {hdr}"
                        f"{' + FEC parity framing' if f['n'] else ''}{' + in-packet RS' if f['nsym'] else ''})"
                    )
                    fix = (
                        f"lower packetization.mtu to ≤ {mtu - (size - limit)}"
                        if mtu - (size - limit) >= 8
                        else f"no mtu ≥ 8 fits with the {header} header"
                    )
                    raise err(
                        "link.preset",
                        f"{link['preset']!r} carries at most {limit} bytes per packet, but {what} "
                        f"with fec {fec_label(f)} is {size} bytes; {fix} or drop that FEC setting",
                    )


def config_hash(cfg: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the resolved config minus fields that do not affect results.

    Kept out: the description, the flush / consolidation intervals and the default
    ``concealment.decoders`` ([plain]).  Kept
    in: ``execution.torch_threads`` (CPU kernels round differently with
    another thread count, so rows would differ in the last digits).
    """
    c = copy.deepcopy(dict(cfg))
    c.pop("description", None)
    conc = c.get("concealment")
    if isinstance(conc, dict) and conc.get("decoders") == ["plain"]:  # the default: results folders of
        conc.pop("decoders")  # sweeps made before decoder variants keep their hash
    c["execution"] = {"torch_threads": c.get("execution", {}).get("torch_threads")}
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]

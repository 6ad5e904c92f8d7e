"""The plan of a sweep: its units (trials sharing everything but the method and decoder), their ids and seeds.

Ids are SHA-256 prefixes of canonical parameters (:func:`_hash`); random draws come from
``SeedSequence([seed, *words(id)])`` (:func:`trial_rng`), so nothing depends on execution order.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from codec.conceal.decoder_variant import variant_label
from codec.entropy.alphabet import CONTEXT_CODERS

from ..config import ChannelPoint, expand_channels, fec_label
from .errors import SweepError
from .sources import SweepImage

__all__ = ["Unit", "plan_units", "trial_id", "trial_rng"]


def _hash(obj: Any, n: int = 16) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys), first ``n`` hex digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _words(hex_id: str) -> list[int]:
    """A hex id as 32-bit words, for SeedSequence entropy."""
    return [int(hex_id[i:i + 8], 16) for i in range(0, len(hex_id), 8)]


def trial_rng(seed: int, hex_id: str) -> np.random.Generator:
    """PCG64 seeded by ``SeedSequence([seed, *words(hex_id)])``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *_words(hex_id)])))

def trial_id(params: Mapping[str, Any], method: str, options: Mapping[str, Any], decoder: str = "plain") -> str:
    """The id of the trial of unit ``params`` concealed by ``method`` (with ``options``) and decoded by
    ``decoder``.  A plain-decoder trial's id does not name the decoder (ids of sweeps made before decoder
    variants stay valid); the concealment's random draws come from the plain trial's id, so a method's
    concealed map is the same under every decoder (decoders are compared paired)."""
    base = {**params, "method": method, "method_options": dict(options)}
    return _hash(base if decoder == "plain" else {**base, "decoder": decoder})


@dataclass
class Unit:
    """Trials sharing everything but the concealment method.

    Attributes:
        unit_id: hash of ``params``.
        order: position in the plan (results are written in plan order).
        params: canonical parameters (JSON-able): image, codec, channel, FEC, packetization, link, seed.
        trials: (method label, trial id) pairs; the label is ``method`` or ``method@decoder``
            (``codec.conceal.decoder_variant.variant_label``).
        info: derived, non-identifying fields for the rows (labels, nominal loss, ...).
        example: whether to store example PNGs for the image grids.
    """

    unit_id: str
    order: int
    params: dict
    trials: list[tuple[str, str]]
    info: dict
    example: bool = False

    def pending(self, done: set[str]) -> "Unit":
        """This unit with only the trials whose ids are not in ``done``."""
        return Unit(self.unit_id, self.order, self.params, [t for t in self.trials if t[1] not in done],
                    self.info, self.example)

    def to_row(self) -> dict[str, Any]:
        """The unit's parameter columns of a result row (the channel's own parameters last, as ``ch_<name>``).

        Links and limits a channel does not use (index loss) are NaN; numbers are float unless they are
        counts, sizes or seeds.
        """
        p, info = self.params, self.info
        f = p["fec"]
        ch = p["channel"]
        link = p["link"] or {}
        row: dict[str, Any] = {
            "unit_id": self.unit_id,
            "image": p["image"],
            "image_hash": p["image_hash"],
            "codec_model": p["codec_model"],
            "codec_sha": p["codec_sha"],
            "codebook_size": int(p["codebook_size"]),
            "kmeans_seed": int(p["kmeans_seed"]),
            "finetuned": p.get("finetuned", "auto"),
            "source_coder": p["source_coder"],
            "channel": str(ch["model"]),
            "channel_label": info["channel_label"],
            "channel_family": info["channel_family"],
            "channel_kind": info["channel_kind"],
            "channel_entry": int(info["channel_entry"]),
            "channel_params": json.dumps({k: v for k, v in ch.items() if k != "model"}, sort_keys=True),
            "loss_rate_nominal": float(info["loss_rate_nominal"]),
            "burst_nominal": float(info["burst_nominal"]),
            "ber_nominal": float(info["ber_nominal"]),
            "fec": fec_label(f),
            "fec_n": int(f["n"]),
            "fec_k": int(f["k"]),
            "fec_nsym": int(f["nsym"]),
            "fec_rate": (f["k"] / f["n"]) if f["n"] else 1.0,
            "mtu": int(p["mtu"]),
            "interleave": p["interleave"],
            "coder": p["coder"],
            **({"header": p["header"]} if "header" in p else {}),
            "link_bandwidth_bps": float(link.get("bandwidth_bps", math.nan)),
            "link_propagation_s": float(link.get("propagation_s", math.nan)),
            "link_jitter": str(link.get("jitter", "none")),
            "link_jitter_s": float(link.get("jitter_s", math.nan)),
            "link_queue_packets": float(link["queue_packets"]) if link.get("queue_packets") is not None else math.nan,
            "link_queue_bytes": float(link["queue_bytes"]) if link.get("queue_bytes") is not None else math.nan,
            "link_overhead_bytes": float(link.get("overhead_bytes", math.nan)),
            **({"link_preset": str(link.get("preset") or "none")} if "preset" in link else {}),
            **(
                {"link_duty_cycle": float(link["duty_cycle"]) if link.get("duty_cycle") is not None else math.nan}
                if "duty_cycle" in link
                else {}
            ),
            "pacing_bps": float(p["pacing_bps"]) if p["pacing_bps"] is not None else math.nan,
            "deadline_s": float(p["deadline_s"]) if p["deadline_s"] is not None else math.nan,
            "seed": int(p["seed"]),
        }
        for k, v in ch.items():
            if k != "model":
                row[f"ch_{k}"] = _num_value(v)
        return row


def _num_value(v: Any) -> Any:
    """A channel parameter as a column value: numbers as float, strings / bools / None as they are, else JSON."""
    if isinstance(v, bool) or isinstance(v, str) or v is None:
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return json.dumps(v)


def _codec_fec_settings(cfg: Mapping[str, Any]) -> list[tuple[int, dict, int]]:
    """(codebook size, fec, index of the fec among those of that size)."""
    if cfg.get("pairs"):
        out: list[tuple[int, dict, int]] = []
        count: dict[int, int] = {}
        for p in cfg["pairs"]:
            S = p["codebook_size"]
            out.append((S, p["fec"], count.get(S, 0)))
            count[S] = count.get(S, 0) + 1
        return out
    return [(S, f, j) for S in cfg["codec"]["codebook_sizes"] for j, f in enumerate(cfg["fec"])]


def plan_units(
    cfg: Mapping[str, Any], images: Sequence[SweepImage], points: Sequence[ChannelPoint] | None = None
) -> list[Unit]:
    """All units of a resolved, resource-checked config, in a cache-friendly order.

    Order: codebook size → image → channel point → FEC → (MTU, interleaver,
    coder) → seed.  Index-loss points have no packets, so FEC and
    packetization do not apply to them: one unit per (size, image, point, seed).
    """
    points = list(points) if points is not None else expand_channels(cfg["channels"])
    cc = cfg["codec"]
    methods = cfg["concealment"]["methods"]
    decoders = cfg["concealment"].get("decoders", ["plain"])
    unavailable = cfg["concealment"].get("unavailable", {})  # {method: codebook sizes without its model}
    opts = cfg["concealment"]["options"]
    pk = cfg["packetization"]
    headers = pk.get("header", [None])  # None: the key is not in the config, and not in the unit params
    pk_combos = [(m, i, c, h) for m in pk["mtu"] for i in pk["interleave"] for c in pk["coder"] for h in headers
                 if c not in CONTEXT_CODERS or i == "tile"]  # a context coder (tf_tile) packs tiles only
    settings = _codec_fec_settings(cfg)
    sizes = []
    for S, _, _ in settings:
        if S not in sizes:
            sizes.append(S)
    units: list[Unit] = []
    for S in sizes:
        fecs = [(f, j) for s, f, j in settings if s == S]
        for ii, img in enumerate(images):
            for pt in points:
                combos: list[tuple[dict, int, tuple | None, int]]
                if pt["kind"] == "index":
                    combos = [({"n": 0, "k": 0, "nsym": 0}, 0, None, 0)]
                else:
                    combos = [(f, j, c, ci) for f, j in fecs for ci, c in enumerate(pk_combos)]
                for fec, fj, pc, ci in combos:
                    for si, seed in enumerate(cfg["seeds"]):
                        params = {
                            "image": img.name,
                            "image_hash": img.hash,
                            "codec_model": cc["name"],
                            "codec_sha": cc["sha256"][:16],
                            "codebook_size": S,
                            "kmeans_seed": cc["kmeans_seed"],
                            "finetuned": cc.get("finetuned", "auto"),
                            "source_coder": cc["coder"],
                            "channel": {"model": pt["model"], **pt["params"]},
                            "fec": dict(fec),
                            "mtu": pc[0] if pc else 0,
                            "interleave": pc[1] if pc else "none",
                            "coder": pc[2] if pc else "none",
                            "link": cfg["link"] if pc else None,
                            "pacing_bps": cfg["pacing_bps"] if pc else None,
                            "deadline_s": cfg["deadline_s"] if pc else None,
                            "seed": seed,
                        }
                        if "header" in pk:
                            params["header"] = pc[3] if pc else "none"
                        uid = _hash(params)
                        trials = [
                            (variant_label(m, d), trial_id(params, m, opts.get(m, {}), d))
                            for d in decoders
                            for m in methods
                            if S not in unavailable.get(m, ()) and S not in unavailable.get(variant_label(m, d), ())
                        ]
                        info = {
                            "channel_label": pt["label"],
                            "channel_family": pt["family"],
                            "channel_kind": pt["kind"],
                            "channel_entry": pt["entry"],
                            "loss_rate_nominal": pt["loss_rate"],
                            "burst_nominal": pt["burst"],
                            "ber_nominal": pt["ber"],
                            "realization": _hash({"image_hash": img.hash, "channel": params["channel"], "seed": seed}),
                        }
                        example = bool(cfg["examples"]["enabled"] and ii == 0 and si == 0 and fj == 0 and ci == 0)
                        units.append(Unit(uid, len(units), params, trials, info, example))
    ids = [u.unit_id for u in units]
    if len(set(ids)) != len(ids):  # pragma: no cover - params differ by construction
        raise SweepError("internal error: duplicate unit ids in the plan")
    return units

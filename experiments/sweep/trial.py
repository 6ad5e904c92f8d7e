"""One unit of trials: transmit once, conceal per method, decode + score in one batch, rows and example files."""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import MODEL_METHODS, fec_label
from .codecs import _metric_device
from .context import TrialContext
from .plan import Unit, _rng
from .scoring import _batch_metrics, _identity_metrics

__all__ = ["UnitResult", "run_unit"]


@dataclass
class UnitResult:
    unit_id: str
    rows: list[dict]
    files: dict[str, bytes] = field(default_factory=dict)


def _png(a: np.ndarray, max_side: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(a)
    H, W = a.shape[:2]
    if max(H, W) > max_side:
        s = max_side / max(H, W)
        im = im.resize((max(1, round(W * s)), max(1, round(H * s))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _lost_overlay(lossfree: np.ndarray, lost: np.ndarray, f: int) -> np.ndarray:
    """The loss-free image with every lost f×f block blended 65 % with red (the lost-index map)."""
    H, W = lossfree.shape[:2]
    m = np.kron(lost.astype(np.uint8), np.ones((f, f), np.uint8))[:H, :W].astype(bool)
    out = lossfree.astype(np.float32)
    out[m] = 0.35 * out[m] + 0.65 * np.array([255.0, 0.0, 0.0], np.float32)
    return out.round().astype(np.uint8)


def _index_channel(sent, params: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Drop indices directly: mode 'exact' loses round(rate·N) positions uniformly, 'iid' each with prob. rate."""
    from sim.record import run_lengths

    h, w = sent.shape
    N = h * w
    ch = params["channel"]
    rate, mode = float(ch["rate"]), ch.get("mode", "exact")
    if mode == "exact":
        lost = np.zeros(N, dtype=bool)
        lost[rng.permutation(N)[: int(round(rate * N))]] = True
    else:
        lost = rng.random(N) < rate
    bursts = run_lengths(lost)
    n_lost = int(lost.sum())
    stats = {"packets_sent": 0, "data_packets": 0, "parity_packets": 0, "delivered": 0, "channel_lost": 0,
             "queue_dropped": 0, "corrupted": 0, "late": 0, "rs_corrected": 0, "bit_errors": 0,
             "data_lost_before_fec": 0, "recovered_fec": 0, "data_lost": 0, "lost_indices": n_lost,
             "num_indices": N, "loss_ratio": n_lost / N, "num_bursts": int(bursts.size),
             "mean_burst": float(bursts.mean()) if bursts.size else 0.0,
             "max_burst": int(bursts.max()) if bursts.size else 0, "latency_p50": math.nan,
             "latency_p95": math.nan, "latency_p99": math.nan, "latency_max": math.nan, "completion_s": math.nan}
    return lost.reshape(h, w), stats


def _transmit(ctx: TrialContext, unit: Unit, sent) -> tuple[Any, np.ndarray, dict]:
    """(received IndexMap, lost mask, flat transmission stats) of a unit; deterministic in its realization id."""
    from channels.base import BitErrorModel
    from channels.factory import from_spec
    from sim.fec import ErasureFEC
    from sim.network import LinkConfig, NetworkSimulator
    from sim.packet import REASONS

    p = unit.params
    rng = _rng(p["seed"], unit.info["realization"])
    if unit.info["channel_kind"] == "index":
        lost, stats = _index_channel(sent, p, rng)
        received = sent.with_indices(np.where(lost, 0, sent.indices))
        bits = ctx.encoded[f"{p['codebook_size']}/{p['image_hash']}"].bits_source
        stats.update({"payload_bits": bits, "header_bits": 0, "fec_bits": 0, "rs_bits": 0, "link_overhead_bits": 0,
                      "total_bits": bits, **{f"drop_{r}": 0 for r in REASONS}, "reordered": 0})
        return received, lost, stats
    ch = from_spec(p["channel"])
    loss, bit = (None, ch) if isinstance(ch, BitErrorModel) else (ch, None)
    il_seed = int(rng.integers(0, 2**32))
    sim = NetworkSimulator(link=LinkConfig(**p["link"]), channel=loss, bit_channel=bit, rng=rng)
    f = p["fec"]
    codec = ctx.codec(p["codebook_size"])
    rec = sim.send(sent, mtu=p["mtu"], interleave=p["interleave"], seed=il_seed, coder=p["coder"],
                   fec=ErasureFEC(f["n"], f["k"]) if f["n"] else None, inpacket_nsym=f["nsym"],
                   pacing_bps=p["pacing_bps"], deadline_s=p["deadline_s"],
                   prior=codec.prior if p["coder"].startswith("arith") else None, image_id=0)
    stats = rec.to_row()
    for k in ("image_id", "start_s"):
        stats.pop(k, None)
    return rec.received, np.asarray(rec.lost_mask, dtype=bool), stats


def _num_value(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, str) or v is None:
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return json.dumps(v)


def _param_columns(unit: Unit) -> dict[str, Any]:
    p, info = unit.params, unit.info
    f = p["fec"]
    ch = p["channel"]
    link = p["link"] or {}
    row: dict[str, Any] = {
        "unit_id": unit.unit_id,
        "image": p["image"], "image_hash": p["image_hash"],
        "codec_model": p["codec_model"], "codec_sha": p["codec_sha"], "codebook_size": int(p["codebook_size"]),
        "kmeans_seed": int(p["kmeans_seed"]), "finetuned": p.get("finetuned", "auto"), "source_coder": p["source_coder"],
        "channel": str(ch["model"]), "channel_label": info["channel_label"], "channel_family": info["channel_family"],
        "channel_kind": info["channel_kind"], "channel_entry": int(info["channel_entry"]),
        "channel_params": json.dumps({k: v for k, v in ch.items() if k != "model"}, sort_keys=True),
        "loss_rate_nominal": float(info["loss_rate_nominal"]), "burst_nominal": float(info["burst_nominal"]),
        "ber_nominal": float(info["ber_nominal"]),
        "fec": fec_label(f), "fec_n": int(f["n"]), "fec_k": int(f["k"]), "fec_nsym": int(f["nsym"]),
        "fec_rate": (f["k"] / f["n"]) if f["n"] else 1.0,
        "mtu": int(p["mtu"]), "interleave": p["interleave"], "coder": p["coder"],
        "link_bandwidth_bps": float(link.get("bandwidth_bps", math.nan)),
        "link_propagation_s": float(link.get("propagation_s", math.nan)),
        "link_jitter": str(link.get("jitter", "none")), "link_jitter_s": float(link.get("jitter_s", math.nan)),
        "link_queue_packets": float(link["queue_packets"]) if link.get("queue_packets") is not None else math.nan,
        "link_queue_bytes": float(link["queue_bytes"]) if link.get("queue_bytes") is not None else math.nan,
        "link_overhead_bytes": float(link.get("overhead_bytes", math.nan)),
        "pacing_bps": float(p["pacing_bps"]) if p["pacing_bps"] is not None else math.nan,
        "deadline_s": float(p["deadline_s"]) if p["deadline_s"] is not None else math.nan,
        "seed": int(p["seed"]),
    }
    for k, v in ch.items():
        if k != "model":
            row[f"ch_{k}"] = _num_value(v)
    return row


def run_unit(unit: Unit, ctx: TrialContext) -> UnitResult:
    """Run the (pending) trials of one unit: transmit once, conceal per method, decode + score in one batch."""
    import torch

    from codec.conceal import conceal
    from codec.types import IndexMap

    cfg = ctx.cfg
    t_unit = time.perf_counter()
    p = unit.params
    S = p["codebook_size"]
    enc = ctx.encoded[f"{S}/{p['image_hash']}"]
    codec = ctx.codec(S)
    sent = IndexMap(enc.indices, S, enc.image_size, codec.codebook_id)

    t0 = time.perf_counter()
    received, lost, tx = _transmit(ctx, unit, sent)
    t_tx = time.perf_counter() - t0

    opts_all = cfg["concealment"]["options"]
    concealed: list[np.ndarray] = []
    t_conceal: list[float] = []
    for method, trial_id in unit.trials:
        t0 = time.perf_counter()
        if not lost.any():
            out = received.indices
        else:
            kind = MODEL_METHODS.get(method)
            model = ctx.concealer(kind, S) if kind else None
            cm = conceal(received, lost, method, model=model, codebook=ctx.codebook(S),
                         rng=_rng(p["seed"], trial_id), **opts_all.get(method, {}))
            out = cm.indices
        concealed.append(np.asarray(out, dtype=np.int32))
        t_conceal.append(time.perf_counter() - t0)

    # decode + score each distinct concealed map once, in one batch on the codec's device
    distinct: dict[bytes, int] = {}
    todo: list[np.ndarray] = []
    for idx in concealed:
        key = idx.tobytes()
        if key not in distinct and not np.array_equal(idx, sent.indices):
            distinct[key] = len(todo)
            todo.append(idx)
    nets = cfg["metrics"]["nets"]
    structural = cfg["metrics"].get("structural", True)
    dev = _metric_device(cfg, codec)
    t0 = time.perf_counter()
    decoded_u8: list[np.ndarray] = []
    m_orig: dict[str, np.ndarray] = {}
    m_lf: dict[str, np.ndarray] = {}
    t_dec = t_met = 0.0
    if todo:
        with torch.no_grad():
            x = codec.decode_batch(torch.from_numpy(np.stack(todo).astype(np.int64)), enc.image_size)
            x = torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0  # what a receiver displays: 8-bit pixels
        t_dec = time.perf_counter() - t0
        t0 = time.perf_counter()
        from codec.image import to_tensor

        # contiguous NCHW everywhere: the memory layout picks the conv kernels, which round differently
        x = x.contiguous()
        orig = to_tensor(ctx.images[p["image_hash"]]).to(x.device).contiguous()
        lf = to_tensor(enc.lossfree).to(x.device).contiguous()
        ref_o = ctx.ssim_ref(f"orig/{p['image_hash']}", orig) if structural else None
        ref_l = ctx.ssim_ref(f"lossfree/{S}/{p['image_hash']}", lf) if structural else None
        from codec.metrics import lpips_features

        feats = {n: lpips_features(x, n, dev) for n in nets}  # the reconstructions' features, for both references
        lp_o = {n: ctx.lpips_ref(f"orig/{p['image_hash']}", orig, n, dev) for n in nets}
        lp_l = {n: ctx.lpips_ref(f"lossfree/{S}/{p['image_hash']}", lf, n, dev) for n in nets}
        m_orig = _batch_metrics(orig, x, nets, dev, structural, ref_o, lp_o, feats)
        m_lf = _batch_metrics(lf, x, nets, dev, structural, ref_l, lp_l, feats)
        decoded_u8 = [a for a in (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()]
        t_met = time.perf_counter() - t0
    n_dec = max(1, len(todo))

    H, W = enc.image_size
    pix = H * W
    base = _param_columns(unit)
    base["codec_variant"] = getattr(ctx.codec(S), "variant", "custom")
    n_lost = int(lost.sum())
    tx = dict(tx)
    tx_row = {**tx, "bits_source": int(enc.bits_source), "bpp": enc.bits_source / pix,
              "total_bpp": tx["total_bits"] / pix,
              "packet_loss_ratio": ((tx["packets_sent"] - tx["delivered"]) / tx["packets_sent"]) if tx["packets_sent"] else math.nan,
              "image_h": H, "image_w": W, "latent_h": sent.shape[0], "latent_w": sent.shape[1]}
    lf_cols = {f"lossfree_{k}": float(v) for k, v in enc.metrics.items()}
    files: dict[str, bytes] = {}
    ex_dir = ""
    if unit.example:
        max_side = cfg["examples"]["max_side"]
        root = f"examples/{p['image']}_S{S}"
        ex_dir = f"{root}/{unit.unit_id}"
        files[f"{root}/original.png"] = _png(ctx.images[p["image_hash"]], max_side)
        files[f"{root}/lossfree.png"] = _png(enc.lossfree, max_side)
        files[f"{ex_dir}/lost.png"] = _png(_lost_overlay(enc.lossfree, lost, codec.downsample_factor), max_side)

    rows = []
    metric_keys = [k for k in enc.metrics if structural or k not in ("ssim", "ms_ssim")]
    for (method, trial_id), idx, tc in zip(unit.trials, concealed, t_conceal):
        j = distinct.get(idx.tobytes())
        if j is None:  # identical to the sent map: the loss-free reconstruction
            mo = {k: float(enc.metrics[k]) for k in metric_keys}
            ml = _identity_metrics(metric_keys)
            img_u8 = enc.lossfree
        else:
            mo = {k: float(v[j]) for k, v in m_orig.items()}
            ml = {k: float(v[j]) for k, v in m_lf.items()}
            img_u8 = decoded_u8[j]
        if unit.example:
            files[f"{ex_dir}/{method}.png"] = _png(img_u8, cfg["examples"]["max_side"])
        wrong = idx != sent.indices
        row = {"trial_id": trial_id, **base, "method": method,
               "method_options": json.dumps(opts_all.get(method, {}), sort_keys=True),
               **tx_row,
               "index_error_ratio": float(wrong.mean()),
               "concealed_exact_ratio": float((~wrong[lost]).mean()) if n_lost else math.nan,
               **mo, **{f"{k}_vs_lossfree": v for k, v in ml.items()}, **lf_cols,
               "example_dir": ex_dir,
               "time_transmit_s": t_tx, "time_conceal_s": tc, "time_decode_s": t_dec / n_dec,
               "time_metrics_s": t_met / n_dec}
        rows.append(row)
    t_all = time.perf_counter() - t_unit
    for r in rows:
        r["time_unit_s"] = t_all
    return UnitResult(unit.unit_id, rows, files)


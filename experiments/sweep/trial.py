"""One unit of trials: transmit once, conceal per method, decode + score in one batch, rows and example files.

A row is the concatenation of the records' own columns, in this order: ``trial_id``, the unit's
parameters (:meth:`Unit.to_row`), ``codec_variant``, ``method`` (the label: ``method`` or ``method@decoder``) /
``method_options`` / ``decoder``, the transmission
(:meth:`Transmission.to_row`), the trial's measures (:meth:`TrialMetrics.to_row`), the loss-free
reconstruction's metrics (:meth:`EncodedImage.to_row`), ``example_dir``, the timings (:meth:`TrialTimes.to_row`)
and ``time_unit_s``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from codec.conceal import MODEL_KIND
from codec.errors import VQSimError

from ..config import fec_label
from .context import TrialContext
from .encode_cache import EncodedImage
from .errors import SweepError
from .examples import example_dir, example_files
from .plan import Unit, trial_id, trial_rng
from .scoring import score_maps
from .transmit import Transmission, transmit

__all__ = ["UnitResult", "TrialMetrics", "TrialTimes", "run_unit", "run_checked"]


@dataclass
class UnitResult:
    """A unit's result rows (one per pending trial) and its example files ({relative path: PNG bytes})."""

    unit_id: str
    rows: list[dict]
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Concealed:
    """One method's concealed index map (int32 (h, w)) and the wall time it took; ``latents``: a soft
    method's decoder input (h, w, D) (``codec.conceal.SOFT_METHODS``), None otherwise."""

    indices: np.ndarray
    time_s: float
    latents: np.ndarray | None = None


@dataclass(frozen=True)
class TrialMetrics:
    """What one trial measured.

    Attributes:
        index_error_ratio: fraction of all indices that differ from the sent map.
        concealed_exact_ratio: fraction of the lost indices concealed exactly (NaN when none was lost).
        vs_original / vs_lossfree: image metrics against the original and the loss-free reconstruction.
    """

    index_error_ratio: float
    concealed_exact_ratio: float
    vs_original: dict[str, float]
    vs_lossfree: dict[str, float]

    @classmethod
    def measure(cls, concealed: np.ndarray, sent: np.ndarray, lost: np.ndarray,
                vs_original: dict[str, float], vs_lossfree: dict[str, float]) -> "TrialMetrics":
        wrong = concealed != sent
        exact = float((~wrong[lost]).mean()) if int(lost.sum()) else math.nan
        return cls(float(wrong.mean()), exact, vs_original, vs_lossfree)

    def to_row(self) -> dict[str, float]:
        return {"index_error_ratio": self.index_error_ratio, "concealed_exact_ratio": self.concealed_exact_ratio,
                **self.vs_original, **{f"{k}_vs_lossfree": v for k, v in self.vs_lossfree.items()}}


@dataclass(frozen=True)
class TrialTimes:
    """Wall-clock seconds of one trial: the unit's transmission, this method's concealment, and its share
    of the unit's batched decode and scoring."""

    transmit_s: float
    conceal_s: float
    decode_s: float
    metrics_s: float

    def to_row(self) -> dict[str, float]:
        return {"time_transmit_s": self.transmit_s, "time_conceal_s": self.conceal_s,
                "time_decode_s": self.decode_s, "time_metrics_s": self.metrics_s}


def _conceal_all(ctx: TrialContext, unit: Unit, tx: Transmission) -> list[Concealed]:
    """Each trial's method applied to the unit's received map (sampling methods seeded by the plain trial's
    id: a method conceals once per unit, and every decoder variant decodes that same map)."""
    from codec.conceal import SOFT_METHODS, conceal, decoder_table
    from codec.conceal.decoder_variant import split_variant_label

    p = unit.params
    S = p["codebook_size"]
    opts_all = ctx.cfg["concealment"]["options"]
    out: list[Concealed] = []
    done: dict[tuple[str, str], Concealed] = {}
    for label, _ in unit.trials:
        method, decoder = split_variant_label(label)
        soft = method in SOFT_METHODS  # soft latents come from the decoding codec's own table
        key = (method, decoder if soft else "plain")
        if key not in done:
            t0 = time.perf_counter()
            lat = None
            if not tx.lost.any():
                idx = tx.received.indices
            else:
                kind = MODEL_KIND.get(method)
                model = ctx.concealer(kind, S) if kind else None
                res = conceal(tx.received, tx.lost, method, model=model, codebook=ctx.codebook(S),
                              decoder_codebook=decoder_table(ctx.codec(S, decoder)) if soft else None,
                              rng=trial_rng(p["seed"], trial_id(p, method, opts_all.get(method, {}))),
                              **opts_all.get(method, {}))
                idx, lat = res.indices, res.latents
            done[key] = Concealed(np.asarray(idx, dtype=np.int32), time.perf_counter() - t0, lat)
        out.append(done[key])
    return out


def run_unit(unit: Unit, ctx: TrialContext) -> UnitResult:
    """Run the (pending) trials of one unit: transmit once, conceal per method, decode + score in one batch."""
    from codec.conceal.decoder_variant import split_variant_label
    from codec.types import IndexMap

    cfg = ctx.cfg
    t_unit = time.perf_counter()
    p = unit.params
    S = p["codebook_size"]
    enc: EncodedImage = ctx.encoded[f"{S}/{p['image_hash']}"]
    codec = ctx.codec(S)
    sent = IndexMap(enc.indices, S, enc.image_size, codec.codebook_id)

    tx = transmit(ctx, unit, sent)
    concealed = _conceal_all(ctx, unit, tx)
    decoders = [split_variant_label(label)[1] for label, _ in unit.trials]
    scores = score_maps(ctx, unit, enc, sent, [c.indices for c in concealed], [c.latents for c in concealed],
                        decoders)
    per_trial = [scores.of(c.indices, c.latents, d) for c, d in zip(concealed, decoders, strict=True)]

    files: dict[str, bytes] = {}
    ex_dir = ""
    if unit.example:
        ex_dir = example_dir(p["image"], S, unit.unit_id)
        files = example_files(
            p["image"],
            S,
            unit.unit_id,
            ctx.images[p["image_hash"]],
            enc.lossfree,
            tx.lost,
            codec.downsample_factor,
            [(m, img) for (m, _), (_, _, img) in zip(unit.trials, per_trial, strict=False)],
            cfg["examples"]["max_side"],
        )

    unit_cols = {**unit.to_row(), "codec_variant": getattr(codec, "variant", "custom")}
    tx_cols = tx.to_row(enc)
    lf_cols = enc.to_row()
    opts_all = cfg["concealment"]["options"]
    n_dec = max(1, len(scores.distinct))
    rows = []
    for (label, tid), c, (vs_o, vs_l, _), dec in zip(unit.trials, concealed, per_trial, decoders, strict=False):
        metrics = TrialMetrics.measure(c.indices, sent.indices, tx.lost, vs_o, vs_l)
        times = TrialTimes(tx.time_s, c.time_s, scores.decode_s / n_dec, scores.metrics_s / n_dec)
        rows.append(
            {
                "trial_id": tid,
                **unit_cols,
                "method": label,
                "method_options": json.dumps(opts_all.get(split_variant_label(label)[0], {}), sort_keys=True),
                "decoder": dec,
                **tx_cols,
                **metrics.to_row(),
                **lf_cols,
                "example_dir": ex_dir,
                **times.to_row(),
            }
        )
    t_all = time.perf_counter() - t_unit
    for r in rows:
        r["time_unit_s"] = t_all
    return UnitResult(unit.unit_id, rows, files)


def run_checked(unit: Unit, ctx: TrialContext) -> UnitResult:
    """:func:`run_unit`; an unexpected exception becomes a SweepError naming the unit's parameters."""
    try:
        return run_unit(unit, ctx)
    except VQSimError:
        raise
    except Exception as e:
        p = unit.params
        raise SweepError(
            f"trial unit {unit.unit_id} failed (image {p['image']}, S={p['codebook_size']}, channel "
            f"{unit.info['channel_label']}, fec {fec_label(p['fec'])}, seed {p['seed']}, methods "
            f"{[m for m, _ in unit.trials]}): {type(e).__name__}: {e}"
        ) from e

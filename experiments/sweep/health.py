"""Guard rails that say whether a sweep's numbers can mean what they seem to: packets per image, completeness.

* :func:`packets_per_image` — data packets each image of a config travels in, per (codebook size, MTU,
  interleaver, coder), from its encodings (before any trial runs; ``vqsim sweep --plan`` and the first lines of
  every run print it).
* :func:`few_packets_warning` — one line when images travel in fewer than
  :data:`~experiments.config.schema.MIN_PACKETS_PER_IMAGE` data packets (from those counts, or from a results
  table's ``data_packets`` column, as the summary and the report do): an image's realised loss can then only
  be 0, 1/P, 2/P, …, and a loss sweep measures little.
* :func:`realised_loss_warning` — one line when the packet loss the trials actually saw is far from the
  nominal rate at some channel point (bursty channels over a few packets per image and few draws): curves
  against the nominal rate can then even fall as the loss rises.
* :func:`completeness` / :func:`incomplete_banner` — "incomplete: N of M trials" for a folder whose sweep was
  interrupted (the report and the plots print it at the top).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config.schema import MIN_PACKETS_PER_IMAGE

__all__ = ["MIN_PACKETS_PER_IMAGE", "packets_per_image", "packet_table_lines", "few_packets_warning",
           "realised_loss_warning", "completeness", "incomplete_banner"]

_PK = ("codebook_size", "mtu", "interleave", "coder")


def packets_per_image(cfg: Mapping[str, Any], images: Sequence[Any], encoded: Mapping[str, Any],
                      priors: Mapping[int, Any] | None = None) -> list[dict]:
    """Data packets per image for every (codebook size, mtu, interleave, coder) of a resolved config.

    ``encoded``: ``{f"{S}/{image hash}": EncodedImage}`` (:func:`~experiments.sweep.prepare_encodings`);
    ``priors``: ``{S: prior}`` for the arithmetic coders (None: coded without one; a few bytes more).
    Interleaver seed 0: for the variable-length coders another seed may move the count by one.
    Returns one dict per setting: the keys of ``_PK``, ``packets`` (list, one per image), ``min``, ``max``.
    """
    from codec.entropy import CONTEXT_CODERS
    from codec.types import IndexMap
    from sim.packetizer import packetize

    from ..config import codec_sizes, expand_channels
    from .context import load_tile_coder

    pk = cfg["packetization"]
    if all(pt["kind"] == "index" for pt in expand_channels(cfg["channels"])):
        return []
    out = []
    tile_coders: dict[int, Any] = {}
    for S in codec_sizes(cfg):
        for mtu in pk["mtu"]:
            for il in pk["interleave"]:
                for coder in pk["coder"]:
                    if coder in CONTEXT_CODERS and il != "tile":
                        continue  # a context coder goes with the tile interleaver only (sweep.plan pairs them)
                    if coder in CONTEXT_CODERS and S not in tile_coders:  # one transformer load per size
                        tile_coders[S] = load_tile_coder(cfg, S)
                    tiles = tile_coders.get(S) if coder in CONTEXT_CODERS else None
                    counts = []
                    for img in images:
                        enc = encoded.get(f"{S}/{img.hash}")
                        if enc is None:
                            continue
                        imap = IndexMap(enc.indices, S, tuple(enc.image_size))
                        prior = (priors or {}).get(S) if coder.startswith("arith") else None
                        counts.append(len(packetize(imap, mtu=mtu, interleave=il, seed=0, coder=coder, prior=prior,
                                                    context_coder=tiles)))
                    if counts:
                        out.append({"codebook_size": S, "mtu": mtu, "interleave": il, "coder": coder,
                                    "packets": counts, "min": min(counts), "max": max(counts)})
    return out


def packet_table_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per packetization setting: 'S=1024, mtu 128, random, arith: 11–14 data packets per image'."""
    def span(r: Mapping[str, Any]) -> str:
        return f"{r['min']}" if r["min"] == r["max"] else f"{r['min']}–{r['max']}"

    return [f"S={r['codebook_size']}, mtu {r['mtu']}, {r['interleave']}, {r['coder']}: {span(r)} data packets per "
            f"image" for r in rows]


def few_packets_warning(rows: Any, min_packets: int = MIN_PACKETS_PER_IMAGE) -> str | None:
    """A warning when some image travels in fewer than ``min_packets`` data packets; None otherwise.

    ``rows``: the output of :func:`packets_per_image`, or a results DataFrame (its packet-channel rows'
    ``data_packets``, per image and setting).
    """
    settings = _settings(rows)
    bad = [(k, lo, hi) for k, lo, hi in settings if lo < min_packets]
    if not bad:
        return None
    what = "; ".join(f"S={k[0]}, mtu {k[1]}: {lo if lo == hi else f'{lo}–{hi}'} packets" for k, lo, hi in bad[:4])
    more = f" (and {len(bad) - 4} more settings)" if len(bad) > 4 else ""
    return (f"warning: images travel in fewer than {min_packets} data packets ({what}{more}): an image's realised "
            f"loss can only be 0, 1/P, 2/P, …, so loss-rate curves measure little; lower packetization.mtu "
            f"(default 128) or use larger images")


def realised_loss_warning(df: Any, rel: float = 0.5, floor: float = 0.02) -> str | None:
    """A warning when the mean realised packet loss of a channel point is far from its nominal rate.

    Per packet-loss channel point (``channel_label``, FEC, codebook size), the mean of ``packet_loss_ratio``
    over its channel draws (each unit once: the methods of a unit share its draws) is compared with
    ``loss_rate_nominal``;
    a point is flagged when they differ by more than ``max(rel × nominal, floor)``. None when none is.
    """
    need = {"packet_loss_ratio", "loss_rate_nominal", "channel_label", "channel_kind", "unit_id"}
    if df is None or not len(df) or not need <= set(getattr(df, "columns", ())):
        return None
    d = df[(df["channel_kind"] == "loss") & df["loss_rate_nominal"].notna()]
    if d.empty:
        return None
    keys = [c for c in ("channel_label", "fec", "codebook_size") if c in d.columns]
    per_unit = d.drop_duplicates("unit_id")
    g = per_unit.groupby(keys, sort=False).agg(nominal=("loss_rate_nominal", "first"),
                                               realised=("packet_loss_ratio", "mean"),
                                               draws=("unit_id", "size")).reset_index()
    far = g[(g["realised"] - g["nominal"]).abs() > (rel * g["nominal"]).clip(lower=floor)]
    if far.empty:
        return None
    worst = far.loc[(far["realised"] - far["nominal"]).abs().idxmax()]
    labels = far["channel_label"].nunique()
    return (f"warning: the realised packet loss is far from the nominal rate at {labels} of "
            f"{g['channel_label'].nunique()} channel point(s), e.g. {worst['channel_label']}: "
            f"{100 * worst['realised']:.1f} % realised vs {100 * worst['nominal']:.0f} % nominal over "
            f"{int(worst['draws'])} channel draw(s). Bursty channels over few packets per image vary a lot from "
            f"draw to draw: add seeds or images, or plot against the realised loss (`vqsim plot RESULTS --x realised`)")


def _settings(rows: Any) -> list[tuple[tuple, int, int]]:
    if isinstance(rows, list):
        return [(tuple(r[c] for c in _PK), int(r["min"]), int(r["max"])) for r in rows]
    df = rows
    if df is None or not len(df) or "data_packets" not in getattr(df, "columns", ()):
        return []
    d = df[(df["channel_kind"] != "index") & (df["data_packets"] > 0)]
    if d.empty:
        return []
    img = "image_hash" if "image_hash" in d.columns else "image"
    per = d.groupby(list(_PK) + [img], sort=False)["data_packets"].min().reset_index()
    g = per.groupby(list(_PK), sort=False)["data_packets"].agg(["min", "max"]).reset_index()
    return [(tuple(r[c] for c in _PK), int(r["min"]), int(r["max"])) for _, r in g.iterrows()]


def completeness(folder: str | Path, df: Any = None) -> tuple[int, int | None]:
    """(trials stored, trials planned) of a results folder; planned is None when provenance.json lacks it."""
    from .provenance import read_provenance
    from .storage import read_results

    folder = Path(folder)
    if df is None:
        df = read_results(folder)
    prov = read_provenance(folder)[0] or {}
    runs = prov.get("runs") or []
    planned = runs[-1].get("trials_planned") if runs else None
    return len(df), (int(planned) if planned is not None else None)


def incomplete_banner(folder: str | Path, df: Any = None) -> str | None:
    """'incomplete: N of M trials …' when the folder holds fewer trials than its last run planned, else None."""
    n, planned = completeness(folder, df)
    if planned is None or n >= planned:
        return None
    return (f"incomplete: {n:,} of {planned:,} trials ({100 * n / planned:.0f} %); the sweep was interrupted or "
            f"stopped by --max-trials; rerun the same `vqsim sweep` command to continue. Figures and tables below "
            f"cover only the trials done.")

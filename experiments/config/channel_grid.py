"""The ``channels`` list of a sweep config: expand each entry's parameter grid into ChannelPoints.

Every point's channel is built (``channels.factory.make_channel``), so
expanding validates the whole list; ``index_loss`` is the pseudo-channel
that drops indices directly (no packets).

``fitted`` builds the channel from a measured trace: ``{model: fitted,
trace: FILE, family: ge, scale_loss: [1, 2, 4]}`` fits ``family``
(``bernoulli``, ``gilbert``, ``ge``, ``4state``; default ``ge``) to the
trace (``channels.fit``; path relative to the working directory, format
guessed or given as ``format: ping|seq|binary``, ``seq_range: "A:B"``,
``gmin`` for ``4state``) and scales its stationary loss rate by each
``scale_loss`` (``channels.scale.scale_loss``: the loss episodes are kept,
their frequency changes; an unreachable scale is an error naming the
limit).  Each point is the concrete model (``bernoulli``,
``gilbert_elliott`` or ``markov4`` with the fitted numbers, so result rows
carry them as ``ch_*``), labelled ``fitted(FILE,family,scale_loss=s)``; the
points of one trace and family form one curve family.  Optional ``start``
(``stationary``, default: the trace is a window of a running link, or
``good``).  A fit is computed once per (file contents' identity, options).
"""
from __future__ import annotations

import copy
import functools
import itertools
import math
from typing import Any, Mapping

from ._checks import as_num, check_keys, choice, err, is_num, yaml_float

INDEX_LOSS = "index_loss"
"""The pseudo-channel of the paper's restoration experiment: drops indices directly, no packets."""

INDEX_LOSS_MODES = ("exact", "iid")
FITTED = "fitted"
"""The channel fitted to a measured trace (``channels.fit``), scaled by ``scale_loss``."""
FITTED_KEYS = ("trace", "family", "scale_loss", "format", "seq_range", "gmin", "start")
# the parameter that sets the loss rate of a channel model (x axis of the loss curves)
LOSS_PARAMS = {"index_loss": "rate", "bernoulli": "p", "gilbert_elliott": "loss_rate", "bsc": "ber"}


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
            raise err(path, "empty channel name")
        return v.strip(), {}
    if not isinstance(v, Mapping):
        raise err(
            path,
            f"must be a channel name / netem string or a mapping {{model: NAME, param: value|[values]}}, got {v!r}",
        )
    keys = [k for k in ("model", "type", "name", "preset") if k in v]
    if len(keys) != 1:
        raise err(path, f"needs exactly one of 'model' / 'preset' (got keys {sorted(map(str, v))})")
    name = v[keys[0]]
    params = {str(k): x for k, x in v.items() if k != keys[0]}
    if keys[0] == "preset" and isinstance(name, (list, tuple)):
        if params:
            raise err(path, f"presets take no parameters, got {sorted(params)}")
        return "__presets__", {"names": list(name)}
    if not isinstance(name, str) or not name.strip():
        raise err(f"{path}.{keys[0]}", f"must be a channel name, got {name!r}")
    grid = {k: [yaml_float(y) for y in (x if isinstance(x, (list, tuple)) else [x])] for k, x in params.items()}
    for k, vals in grid.items():
        if not vals:
            raise err(f"{path}.{k}", "empty list of values")
    return name.strip(), grid


def channel_floats(entry: Any) -> Any:
    """A copy of a channel entry whose parameters in exponent notation are floats (``yaml_float``)."""
    out = copy.deepcopy(entry)
    if isinstance(out, dict):
        for k, x in out.items():
            if k not in ("model", "type", "name", "preset"):
                out[k] = type(x)(map(yaml_float, x)) if isinstance(x, (list, tuple)) else yaml_float(x)
    return out


def _index_loss_point(params: dict, path: str) -> dict:
    check_keys(params, ("rate", "mode"), path)
    if "rate" not in params:
        raise err(path, "index_loss needs 'rate' (fraction of indices dropped, in [0, 1])")
    rate = as_num(params["rate"], f"{path}.rate", 0.0, 1.0)
    mode = choice(params.get("mode", "exact"), INDEX_LOSS_MODES, f"{path}.mode")
    return {"rate": rate, "mode": mode}


@functools.lru_cache(maxsize=16)
def _fit_trace(path: str, mtime_ns: int, size: int, fmt: str, seq_range: str | None, family: str, gmin: int):
    """The fit of one trace file (cached by the file's identity and the options; 16 entries)."""
    from channels.fit import fit
    from channels.trace_io import read_trace

    rng = None
    if seq_range is not None:
        a, sep, b = seq_range.partition(":")
        if not (sep and a.strip().isdigit() and b.strip().isdigit()):
            raise ValueError(f"seq_range must look like 'FIRST:LAST' (e.g. '0:9999'), got {seq_range!r}")
        rng = (int(a), int(b))
    tr = read_trace(path, fmt=fmt, seq_range=rng)
    return fit(tr.losses, family, **({"gmin": gmin} if family == "4state" else {}))


def _fitted_point(params: dict, path: str, entry: int) -> ChannelPoint:
    """A ``fitted`` grid point: fit (cached), scale, and express as a concrete model spec."""
    from pathlib import Path

    from channels.bernoulli import Bernoulli
    from channels.fit import FAMILIES
    from channels.gilbert import GilbertElliott
    from channels.scale import scale_loss
    from channels.trace_io import FORMATS

    check_keys(params, FITTED_KEYS, path)
    trace = params.get("trace")
    if not isinstance(trace, str) or not trace.strip():
        raise err(f"{path}.trace", f"fitted needs 'trace': the path of a loss trace file, got {trace!r}")
    family = choice(params.get("family", "ge"), FAMILIES, f"{path}.family")
    fmt = choice(params.get("format", "auto"), FORMATS, f"{path}.format")
    start = choice(params.get("start", "stationary"), ("stationary", "good"), f"{path}.start")
    s = as_num(params.get("scale_loss", 1.0), f"{path}.scale_loss", 0.0, open_lo=True)
    gmin = params.get("gmin", 16)
    if not (isinstance(gmin, int) and not isinstance(gmin, bool) and gmin >= 1):
        raise err(f"{path}.gmin", f"must be an integer >= 1, got {gmin!r}")
    seq_range = params.get("seq_range")
    if seq_range is not None and not isinstance(seq_range, str):
        raise err(f"{path}.seq_range", f"must be a string 'FIRST:LAST', got {seq_range!r}")
    p = Path(trace)
    if not p.is_file():
        raise err(f"{path}.trace", f"no such trace file: {trace!r} (relative paths start at the working directory)")
    st = p.stat()
    try:
        fitted = _fit_trace(str(p.resolve()), st.st_mtime_ns, st.st_size, fmt, seq_range, family, gmin)
        model = scale_loss(fitted.model, s)
    except (ValueError, TypeError) as e:
        raise err(path, f"fitted {family} to {trace!r}: {e}") from None
    if isinstance(model, Bernoulli):
        name, spec = "bernoulli", {"p": model.p}
    elif isinstance(model, GilbertElliott):
        name, spec = "gilbert_elliott", {"p": model.p, "r": model.r, "h": model.h, "k": model.k, "start": start}
    else:
        name, spec = "markov4", {k: getattr(model, k) for k in ("p13", "p31", "p32", "p23", "p14")}
        spec["start"] = start
    spec = {k: (float(v) if isinstance(v, float) else v) for k, v in spec.items()}
    pt = ChannelPoint(
        model=name,
        params=spec,
        entry=entry,
        kind="loss",
        loss_rate=float(model.stationary_loss_rate),
        burst=float(model.mean_burst_length),
        ber=math.nan,
    )
    extra = "" if start == "stationary" else ",start=good"
    pt["family"] = f"fitted({p.name},{family}{extra})"
    pt["label"] = f"fitted({p.name},{family}{extra},scale_loss={_fmt(s)})"
    return pt


def expand_channels(entries: list) -> list[ChannelPoint]:
    """Expand the ``channels`` list into points, building (and so validating) every channel."""
    points: list[ChannelPoint] = []
    for i, entry in enumerate(entries):
        path = f"channels[{i}]"
        name, grid = _channel_entry(entry, i)
        if name == "__presets__":
            combos = [("preset", {"model": n}) for n in grid["names"]]
        else:
            keys = list(grid)
            combos = [
                ("model", {"model": name, **dict(zip(keys, vals, strict=False))})
                for vals in itertools.product(*grid.values())
            ]
        for _, spec in combos:
            model = spec["model"]
            params = {k: x for k, x in spec.items() if k != "model"}
            key = model.lower().replace("-", "_") if isinstance(model, str) else model
            if key == FITTED:
                points.append(_fitted_point(params, path, i))
                continue
            if key == INDEX_LOSS:
                params = _index_loss_point(params, path)
                pt = ChannelPoint(
                    model=INDEX_LOSS, params=params, entry=i, kind="index", loss_rate=params["rate"],
                    burst=math.nan, ber=math.nan,
                )
            else:
                pt = _model_point(model, params, path, i)
            _label_point(pt, params)
            points.append(pt)
    labels = [p["label"] for p in points]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise err("channels", f"duplicate channel settings {dup}")
    return points


def _model_point(model, params: dict, path: str, i: int) -> ChannelPoint:
    """The point of one registered channel model (or preset) with ``params``, built to validate it."""
    from channels.base import BitErrorModel
    from channels.factory import make_channel

    for k, x in params.items():
        if not (is_num(x) or isinstance(x, (str, bool))):
            raise err(f"{path}.{k}", f"channel parameters must be numbers or strings, got {x!r}")
    try:
        ch = make_channel(model, **params)
    except (ValueError, TypeError) as e:
        # the extra models only help when the model name was the problem, not a parameter's range
        hint = (
            f" (allowed models also include '{INDEX_LOSS}' and '{FITTED}')"
            if str(e).startswith("unknown channel")
            else ""
        )
        raise err(path, f"{e}{hint}") from None
    if isinstance(ch, BitErrorModel):
        return ChannelPoint(
            model=model, params=params, entry=i, kind="bit", loss_rate=math.nan, burst=math.nan,
            ber=float(ch.stationary_bit_error_rate),
        )
    return ChannelPoint(
        model=model, params=params, entry=i, kind="loss", loss_rate=float(ch.stationary_loss_rate),
        burst=float(ch.mean_burst_length), ber=math.nan,
    )


def _label_point(pt: ChannelPoint, params: dict) -> None:
    """Set ``pt``'s ``label`` (model and every parameter) and ``family`` (all but the loss parameter)."""
    label_params = ",".join(
        f"{k}={_fmt(x)}"
        for k, x in params.items()
        if not (pt["model"] == INDEX_LOSS and k == "mode" and x == "exact")
    )
    pt["label"] = f"{pt['model']}({label_params})" if label_params else str(pt["model"])
    lp = LOSS_PARAMS.get(str(pt["model"]).lower().replace("-", "_"))
    fam = ",".join(
        f"{k}={_fmt(x)}"
        for k, x in params.items()
        if k != lp and not (pt["model"] == INDEX_LOSS and k == "mode" and x == "exact")
    )
    pt["family"] = f"{pt['model']}({fam})" if fam else str(pt["model"])
    if lp is None or lp not in params:  # presets, netem strings, full GE: the point is its own family
        pt["family"] = pt["label"]

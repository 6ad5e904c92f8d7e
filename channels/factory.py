"""Build channels from names/params (experiment configs).

``make_channel(name, **params)`` where ``name`` is

* a model name — ``bernoulli`` (p), ``gilbert_elliott`` (p, r, h=0, k=1, or
  loss_rate + mean_burst for simple Gilbert), ``markov4`` (p13, p31, p32, p23,
  p14), ``trace`` (path or data, loop, random_start), ``bsc`` (ber),
  ``ge_bit`` (p, r, ber_good, ber_bad), ``netem`` (spec); the Markov models
  (``gilbert_elliott``, ``markov4``, ``ge_bit``, ``netem``) also take
  ``start`` = ``"stationary"`` (default, except ``netem``) or ``"good"``
  (default for ``netem``: netem's transient, see :mod:`channels.netem`);
* a preset name from :data:`channels.presets.PRESETS` (no params);
* a netem loss string, e.g. ``"loss gemodel 1% 30%"`` (no params).

Names are case-insensitive and ``-``/``_`` are interchangeable.
``from_spec({"model": name, **params})`` does the same from a dict (keys
``"type"`` or ``"name"`` are accepted instead of ``"model"``) or a string.
All errors are ``ValueError`` with the allowed values in the message.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from codec.errors import ParameterError

from .base import BitErrorModel, LossModel
from .bernoulli import Bernoulli
from .biterror import BinarySymmetric, GilbertElliottBitError
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov
from .netem import parse_netem
from .presets import PRESETS
from .trace import Trace

Channel = LossModel | BitErrorModel


def _gilbert_elliott(**params: Any) -> GilbertElliott:
    if "loss_rate" in params or "mean_burst" in params:
        extra = set(params) - {"loss_rate", "mean_burst", "start"}
        if extra or not {"loss_rate", "mean_burst"} <= set(params):
            raise ParameterError(
                "gilbert_elliott: give either (p, r[, h, k]) or exactly (loss_rate, mean_burst), "
                "optionally with start; "
                f"got {sorted(params)}"
            )
        return GilbertElliott.from_loss_and_burst(
            params["loss_rate"], params["mean_burst"], start=params.get("start", "stationary")
        )
    model: GilbertElliott = _call(GilbertElliott, "gilbert_elliott", params,
                                  also="or exactly (loss_rate, mean_burst) for the simple Gilbert model")
    return model


def _trace(**params: Any) -> Trace:
    params = dict(params)
    src = [k for k in ("path", "data", "source") if k in params]
    if len(src) != 1:
        raise ParameterError("trace: give exactly one of 'path' or 'data' (the 0/1 sequence)")
    source = params.pop(src[0])

    def make(loop: bool = True, random_start: bool = False) -> Trace:
        return Trace(source, loop=loop, random_start=random_start)

    trace: Trace = _call(make, "trace", params)
    return trace


def _netem(**params: Any) -> LossModel:
    if "spec" not in params or set(params) - {"spec", "start"}:
        raise ParameterError(
            f"netem: takes 'spec' (the netem loss string) and optionally 'start' ('good' or 'stationary'), "
            f"got {sorted(params)}"
        )
    return parse_netem(params["spec"], start=params.get("start", "good"))


def _call(factory: Callable[..., Any], name: str, params: Mapping[str, Any], also: str = "") -> Any:
    """``factory(**params)`` after checking the names against its signature (``also``: another accepted
    parameter set, named in the error)."""
    sig = inspect.signature(factory)
    allowed = [p for p in sig.parameters]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = f", {also}" if also else ""
        raise ParameterError(f"{name}: unknown parameter(s) {unknown}; allowed: {allowed}{hint}")
    missing = [
        p.name for p in sig.parameters.values() if p.default is inspect.Parameter.empty and p.name not in params
    ]
    if missing:
        raise ParameterError(f"{name}: missing required parameter(s) {missing}; allowed: {allowed}")
    return factory(**params)


MODELS: dict[str, Callable[..., Channel]] = {
    "bernoulli": lambda **kw: _call(Bernoulli, "bernoulli", kw),
    "gilbert_elliott": _gilbert_elliott,
    "markov4": lambda **kw: _call(FourStateMarkov, "markov4", kw),
    "trace": _trace,
    "bsc": lambda **kw: _call(BinarySymmetric, "bsc", kw),
    "ge_bit": lambda **kw: _call(GilbertElliottBitError, "ge_bit", kw),
    "netem": _netem,
}


def _allowed() -> str:
    return (
        f"models: {', '.join(MODELS)}; presets: {', '.join(sorted(PRESETS))}; "
        "or a netem loss string such as 'loss gemodel 1% 30%'"
    )


def make_channel(name: str, **params: Any) -> Channel:
    """Build a channel from a model name + parameters, a preset name, or a netem string."""
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"channel name must be a non-empty string; {_allowed()}")
    text = name.strip()
    key = text.lower().replace("-", "_")
    if key in MODELS:
        return MODELS[key](**params)
    preset_key = text.lower().replace("_", "-")
    if preset_key in PRESETS:
        if params:
            raise ParameterError(f"preset {preset_key!r} takes no parameters, got {sorted(params)}")
        return PRESETS[preset_key].model
    first = text.split()[0].lower()
    if len(text.split()) > 1 and first in ("loss", "drop", "random", "gemodel", "state"):
        if params:
            raise ParameterError(f"a netem string takes no extra parameters, got {sorted(params)}")
        return parse_netem(text)
    raise ParameterError(f"unknown channel {name!r}; {_allowed()}")


def from_spec(spec: Mapping[str, Any] | str) -> Channel:
    """Build a channel from a config mapping ``{"model": name, **params}`` or a name/netem string."""
    if isinstance(spec, str):
        return make_channel(spec)
    if not isinstance(spec, Mapping):
        raise ParameterError(f"channel spec must be a mapping or a string, got {type(spec).__name__}")
    keys = [k for k in ("model", "type", "name") if k in spec]
    if len(keys) != 1:
        raise ParameterError(
            f"channel spec needs exactly one of 'model' / 'type' / 'name' (got {sorted(spec)}); {_allowed()}"
        )
    params = {k: v for k, v in spec.items() if k != keys[0]}
    return make_channel(spec[keys[0]], **params)

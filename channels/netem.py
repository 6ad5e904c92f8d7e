"""Parse the loss part of a Linux netem (``tc qdisc ... netem``) option string.

Supported (tc-netem(8), iproute2 ``tc/q_netem.c``)::

    loss random PERCENT [CORRELATION]        -> Bernoulli (CORRELATION must be 0)
    loss PERCENT [CORRELATION]               -> same, netem's old syntax
    loss state p13 [p31 [p32 [p23 [p14]]]]   -> FourStateMarkov
    loss gemodel p [r [1-h [1-k]]]           -> GilbertElliott

``drop`` is accepted for ``loss`` (as tc does) and the leading keyword may be
omitted (``"gemodel 1% 30%"``).  Every number is a percentage, with or
without the ``%`` sign (tc divides by 100 either way: ``30`` means 30%), in
[0, 100].  Defaults for omitted parameters are tc's:

* ``gemodel p``: r = 1 - p, 1-h = 100%, 1-k = 0% (Bernoulli; tc-netem(8) "To
  use the Bernoulli model, the only needed parameter is p while the others
  will be set to the default values r=1-p, 1-h=1 and 1-k=0").  Two values
  give simple Gilbert, three Gilbert, four full Gilbert-Elliott.
* ``state p13``: p31 = 1 - p13, p32 = 0, p23 = 100%, p14 = 0 (q_netem.c).

netem's loss *correlation* is rejected unless 0: tc-netem(8) calls it
"deprecated due to the noticed bad behavior" — use ``gemodel`` for bursts.
Other netem options (delay, duplicate, ...) are not loss models and are
rejected with a clear message.
"""
from __future__ import annotations

import re

from .base import LossModel
from .bernoulli import Bernoulli
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov
from codec.errors import ParameterError

_NUM = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


def _percent(tok: str, what: str, spec: str) -> float:
    if not _NUM.match(tok):
        raise ParameterError(f"netem spec {spec!r}: {what} must be a percentage like '1%' or '0.5', got {tok!r}")
    v = float(tok.rstrip("%")) / 100.0
    if not 0.0 <= v <= 1.0:
        raise ParameterError(f"netem spec {spec!r}: {what} must be between 0% and 100%, got {tok!r}")
    return v


def _numbers(tokens: list[str], names: list[str], spec: str, model: str) -> list[float]:
    if not tokens:
        raise ParameterError(f"netem spec {spec!r}: 'loss {model}' needs at least {names[0]}")
    if len(tokens) > len(names) and all(_NUM.match(t) for t in tokens):
        extra = " ".join(tokens[len(names):])
        raise ParameterError(
            f"netem spec {spec!r}: 'loss {model}' takes at most {len(names)} values "
            f"({' '.join(names)}); unexpected {extra!r}"
        )
    for t in tokens:
        if not _NUM.match(t):
            raise ParameterError(
                f"netem spec {spec!r}: unexpected {t!r} after 'loss {model}': expected up to "
                f"{len(names)} percentages ({' '.join(names)}); only the loss part of a netem spec is supported"
            )
    return [_percent(t, n, spec) for t, n in zip(tokens, names)]


def parse_netem(spec: str) -> LossModel:
    """Build the loss model described by a netem loss string (see module docstring).

    Raises:
        ValueError: malformed string, unsupported option, out-of-range value,
            or parameters the model rejects (e.g. a Bad state never left).
    """
    if not isinstance(spec, str):
        raise ParameterError(f"netem spec must be a string, got {type(spec).__name__}")
    tokens = spec.split()
    if not tokens:
        raise ParameterError("netem spec is empty; expected e.g. 'loss gemodel 1% 30%'")
    if tokens[0] in ("loss", "drop"):
        tokens = tokens[1:]
        if not tokens:
            raise ParameterError(f"netem spec {spec!r}: 'loss' needs a model: 'random', 'state', 'gemodel' or a percentage")
    head, rest = tokens[0], tokens[1:]
    if head == "random" or _NUM.match(head):
        if head != "random":
            rest = tokens  # old syntax: loss PERCENT [CORRELATION]
        vals = _numbers(rest, ["PERCENT", "CORRELATION"], spec, "random")
        if len(vals) == 2 and vals[1] != 0.0:
            raise ParameterError(
                f"netem spec {spec!r}: loss correlation is not supported (tc-netem(8): 'deprecated due to the "
                f"noticed bad behavior'); use 'loss gemodel p r' for bursty loss"
            )
        return Bernoulli(vals[0])
    if head == "gemodel":
        vals = _numbers(rest, ["p", "r", "1-h", "1-k"], spec, "gemodel")
        p = vals[0]
        r = vals[1] if len(vals) > 1 else 1.0 - p
        one_minus_h = vals[2] if len(vals) > 2 else 1.0
        one_minus_k = vals[3] if len(vals) > 3 else 0.0
        try:
            return GilbertElliott(p=p, r=r, h=1.0 - one_minus_h, k=1.0 - one_minus_k)
        except ValueError as exc:
            raise ParameterError(f"netem spec {spec!r}: {exc}") from None
    if head == "state":
        vals = _numbers(rest, ["p13", "p31", "p32", "p23", "p14"], spec, "state")
        names = ["p13", "p31", "p32", "p23", "p14"]
        try:
            return FourStateMarkov(**dict(zip(names, vals)))
        except ValueError as exc:
            raise ParameterError(f"netem spec {spec!r}: {exc}") from None
    known = {"delay", "latency", "duplicate", "corrupt", "reorder", "rate", "limit", "slot", "ecn", "gap", "distribution"}
    if head in known:
        raise ParameterError(f"netem spec {spec!r}: only the loss part of a netem spec is supported, got option {head!r}")
    raise ParameterError(
        f"netem spec {spec!r}: unknown loss model {head!r}; expected 'random', 'state', 'gemodel' or a percentage"
    )

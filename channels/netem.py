"""Build a loss model from the loss part of a Linux netem (``tc qdisc ... netem``) option string.

Supported (tc-netem(8), iproute2 ``tc/q_netem.c``)::

    loss random PERCENT [CORRELATION]        -> Bernoulli (CORRELATION must be 0)
    loss PERCENT [CORRELATION]               -> same, netem's old syntax
    loss state p13 [p31 [p32 [p23 [p14]]]]   -> FourStateMarkov
    loss gemodel p [r [1-h [1-k]]]           -> GilbertElliott

``drop`` is accepted for ``loss`` (as tc does, including its abbreviations)
and the leading keyword may be omitted (``"gemodel 1% 30%"``).  Every number
is a percentage, with or without the ``%`` sign (tc divides by 100 either
way: ``30`` means 30%), in [0, 100].  Tokens are accepted and rejected
exactly as ``tc`` does — notably the 2nd to 5th values must start with a
digit (``.5%`` and ``+5%`` are refused there but accepted as the 1st value);
the full rules are in :mod:`channels._tc`.  Defaults for omitted parameters
are tc's:

* ``gemodel p``: r = 1 - p, 1-h = 100%, 1-k = 0% (Bernoulli; tc-netem(8) "To
  use the Bernoulli model, the only needed parameter is p while the others
  will be set to the default values r=1-p, 1-h=1 and 1-k=0").  Two values
  give simple Gilbert, three Gilbert, four full Gilbert-Elliott.
* ``state p13``: p31 = 1 - p13, p32 = 0, p23 = 100%, p14 = 0 (q_netem.c).

Start of the chain
------------------
A netem qdisc starts its loss chain in state 1 (``TX_IN_GAP_PERIOD`` /
``GOOD_STATE``) whenever a loss model is configured (``sch_netem.c:
get_loss_clg``, run by ``tc qdisc add`` and by ``tc qdisc change`` with a
``loss`` option), not in its stationary law.  So :func:`parse_netem` (and
``GilbertElliott.from_netem`` / ``FourStateMarkov.from_netem``) return models
with ``start="good"`` by default: each fresh stream (``state=None``) behaves
like the first packets through a freshly configured qdisc — for ``gemodel``
the first packet is in Good (lost with probability 1-k: never, with tc's
defaults), for ``state`` the chain is in state 1 *before* the first packet,
which is lost with probability p13 + p14 (netem's ``loss_4state`` labels a
packet with the state it moves to).  Pass ``start="stationary"`` for a
qdisc that has been running for a long time (or carry the returned state
from packet to packet, image to image).  Memoryless ``loss random`` has no
start.  Models built directly (``GilbertElliott(...)``) default to
``"stationary"``.  ``to_netem()`` writes the parameters only; parsing it back
gives a ``start="good"`` model unless told otherwise.

netem's loss *correlation* is rejected unless 0: tc-netem(8) calls it
"deprecated due to the noticed bad behavior" — use ``gemodel`` for bursts.
Other netem options (delay, duplicate, ...) are not loss models and are
rejected with a clear message.
"""
from __future__ import annotations

from ._markov import check_start
from ._tc import build, parse_loss_clause
from .base import LossModel
from .bernoulli import Bernoulli
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov


def parse_netem(spec: str, start: str = "good") -> LossModel:
    """Build the loss model described by a netem loss string (see module docstring).

    Args:
        spec: e.g. ``"loss gemodel 1% 30% 70% 0.1%"``.
        start: ``"good"`` (default, netem's transient: the chain starts in
            state 1 at the first packet of every fresh stream) or
            ``"stationary"``; checked for every spec, ignored by the
            memoryless ``loss random``.

    Raises:
        ParameterError: malformed string, a token tc would reject, an
            unsupported option, out-of-range value, an invalid ``start``, or
            parameters the model rejects (e.g. a Bad state never left).
    """
    clause = parse_loss_clause(spec)
    check_start("parse_netem", start)
    if clause.kind == "random":
        return build(Bernoulli, clause)
    cls = GilbertElliott if clause.kind == "gemodel" else FourStateMarkov
    return build(cls, clause, start=start)

"""``scale_loss``: the same link, with its stationary loss rate multiplied by s (for sweeps around a measurement).

``scale_loss(model, s)`` returns a model of the same family whose
stationary loss rate is exactly ``s · L`` and whose *loss episodes* look
the same: what changes is how often the link falls into its lossy state,
not what happens there.  Per family:

* ``Bernoulli(p)``: ``p' = s·p``.  Needs ``s·p ≤ 1``.  (The mean burst
  ``1/(1-p')`` necessarily changes: losses are independent.)
* ``GilbertElliott(p, r, h, k)``: r (so the mean Bad sojourn ``1/r``), h
  and k are kept and ``p = P(Good→Bad)`` is solved from
  ``L' = (1-k) + (k-h)·p'/(p'+r)``::

      π_B' = (s·L − (1−k)) / (k − h),     p' = r·π_B' / (1 − π_B')

  Reachable: ``1-k ≤ s·L ≤ (1-k) + (k-h)/(1+r)`` (p' from 0 to 1), i.e.
  ``s_min = (1-k)/L``, ``s_max = ((1-k) + (k-h)/(1+r))/L``.  For the simple
  Gilbert model (h = 0, k = 1) the mean burst length ``1/r`` is kept
  exactly and ``s_max = 1/((1+r)·L)``; with k < 1 or h > 0 it moves a
  little (Good-state losses next to a Bad period join its burst), and the
  new value is the model's ``mean_burst_length``.
* ``FourStateMarkov``: p13 and p14 (the ways out of the gap state) are
  multiplied by one factor c, everything else kept.  With
  ``A = p13·p32/(p31·p23)``, ``B = p13/p31`` the stationary law is
  ``π ∝ (1, cA, cB, c·p14)``, so ``L(c) = c(B + p14) / (1 + c(A + B + p14))``
  gives ``c = s·L / ((B + p14) − s·L·(A + B + p14))``; the mean burst
  ``(B + p14) / (B(p31 + p32) + p14)`` does not depend on c, so it is kept
  exactly.  Reachable: ``c·(p13 + p14) ≤ 1``, i.e. ``s ≤ L(1/(p13+p14)) / L``.

A scale outside the reachable range raises ``ParameterError`` naming the
limit; ``s`` must be a finite number > 0.  The model's ``start`` is kept.
"""
from __future__ import annotations

import math
import numbers

from codec.errors import ParameterError

from .base import LossModel
from .bernoulli import Bernoulli
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov


def _check_scale(s: object) -> float:
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)) or float(s) <= 0:
        raise ParameterError(f"scale_loss must be a finite number > 0, got {s!r}")
    return float(s)


def max_scale(model: LossModel) -> float:
    """The largest ``s`` that :func:`scale_loss` accepts for ``model`` (inf for a loss-free model)."""
    L = model.stationary_loss_rate
    if L <= 0:
        return math.inf
    if isinstance(model, Bernoulli):
        return 1.0 / L
    if isinstance(model, GilbertElliott):
        return ((1 - model.k) + (model.k - model.h) / (1 + model.r)) / L
    if isinstance(model, FourStateMarkov):
        d = model.p13 + model.p14
        return _four_state_loss(model, 1.0 / d) / L if d > 0 else 1.0
    raise ParameterError(f"scale_loss: no rule for {type(model).__name__}; "
                         "use Bernoulli, GilbertElliott or FourStateMarkov")


def _four_state_loss(m: FourStateMarkov, c: float) -> float:
    A = m.p13 * m.p32 / (m.p31 * m.p23) if m.p13 > 0 and m.p32 > 0 else 0.0
    B = m.p13 / m.p31 if m.p13 > 0 else 0.0
    X, Y = B + m.p14, A + B + m.p14
    return c * X / (1 + c * Y)


def scale_loss(model: LossModel, s: float) -> LossModel:
    """The model with stationary loss ``s·L`` and the same loss episodes (module docstring)."""
    s = _check_scale(s)
    L = model.stationary_loss_rate
    if s == 1.0:
        return model
    if L <= 0:
        raise ParameterError(f"scale_loss: {model!r} never loses a packet; there is no loss rate to scale")
    target = s * L
    name = type(model).__name__
    if isinstance(model, Bernoulli):
        if target > 1:
            raise ParameterError(f"scale_loss={s:g} would make p = {target:.4g} > 1; the largest scale for "
                                 f"{model!r} is {1 / L:.4g}")
        return Bernoulli(target)
    if isinstance(model, GilbertElliott):
        p, r, h, k = model.p, model.r, model.h, model.k
        if k - h <= 0:
            raise ParameterError(f"scale_loss: {model!r} loses as much in Good as in Bad (1-h <= 1-k); "
                                 "its loss rate does not depend on the state and cannot be scaled this way")
        lo, hi = (1 - k) / L, max_scale(model)
        if not lo - 1e-12 <= s <= hi + 1e-12:
            raise ParameterError(
                f"scale_loss={s:g} is out of reach for {name}(p={p:.4g}, r={r:.4g}, h={h:.4g}, k={k:.4g}) keeping "
                f"r, h, k: the loss rate {target:.4g} must lie in [1-k, (1-k)+(k-h)/(1+r)] = "
                f"[{1 - k:.4g}, {(1 - k) + (k - h) / (1 + r):.4g}], i.e. scale in [{lo:.4g}, {hi:.4g}] "
                f"(p = P(Good->Bad) would leave [0, 1])")
        pb = min(max((target - (1 - k)) / (k - h), 0.0), 1 / (1 + r))
        p_new = min(r * pb / (1 - pb), 1.0)
        return GilbertElliott(p=p_new, r=r, h=h, k=k, start=model.start)
    if isinstance(model, FourStateMarkov):
        hi = max_scale(model)
        if s > hi + 1e-12:
            raise ParameterError(
                f"scale_loss={s:g} is out of reach for {model!r}: p13 + p14 = {model.p13 + model.p14:.4g} can grow "
                f"at most to 1, which gives loss rate {hi * L:.4g}, i.e. scale <= {hi:.4g}")
        A = model.p13 * model.p32 / (model.p31 * model.p23) if model.p13 > 0 and model.p32 > 0 else 0.0
        B = model.p13 / model.p31 if model.p13 > 0 else 0.0
        X, Y = B + model.p14, A + B + model.p14
        c = target / (X - target * Y)
        d = model.p13 + model.p14
        c = min(c, 1.0 / d)
        return FourStateMarkov(p13=c * model.p13, p31=model.p31, p32=model.p32, p23=model.p23, p14=c * model.p14,
                               start=model.start)
    raise ParameterError(f"scale_loss: no rule for {name}; use Bernoulli, GilbertElliott or FourStateMarkov")

"""One interface to every concealment method: the registry (options, model kind, codebook use) and ``conceal``."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

import numpy as np

from ..errors import ParameterError
from ..types import IndexMap
from .ar import conceal_ar, conceal_ar_naive
from .baselines import conceal_latent_avg, conceal_mean, conceal_neighbor, conceal_none
from .bidir import conceal_bidir
from .soft import conceal_ar_soft, conceal_bidir_soft, conceal_latent_avg_soft

CodebookUse = Literal["required", "optional", "unused"]
#: ``run(index_map, lost_mask, model, codebook, rng, options) -> (IndexMap, stats)``
Runner = Callable[[IndexMap, np.ndarray, Any, Any, Any, dict], "tuple[IndexMap, dict[str, int]]"]


@dataclass(frozen=True)
class ConcealMethod:
    """One concealment method.

    Attributes:
        name: the name ``conceal(method=...)`` takes.
        run: the implementation, called with the options the user passed.
        options: the option names it accepts (anything else is refused).
        model_kind: transformer kind it needs ("ar" | "bidir"), None for the baselines.
        codebook: "required" (always reads it), "optional" (only with
            ``estimate="mean"``, or ``neighbor``'s all-lost fallback), "unused".
        soft: the method hands the decoder continuous vectors at lost
            positions (``Concealment.latents``; :mod:`.soft`); its runner returns
            ``(IndexMap, stats, latents)`` and takes ``decoder_codebook`` among the options.
    """

    name: str
    run: Runner
    options: tuple[str, ...] = ()
    model_kind: str | None = None
    codebook: CodebookUse = "unused"
    soft: bool = False


@dataclass(frozen=True)
class Concealment:
    """What ``conceal`` returns: the concealed map, the method and its statistics.

    ``stats``: for the AR methods the counters of the run (``ar``: waves,
    forwards, tokens, recomputed; ``ar_naive``: waves, forwards); ``{}`` for
    the others.  ``latents``: for the soft methods the decoder input
    (h, w, D) float32, continuous at lost positions (decode it with
    :func:`codec.conceal.soft.decode_concealment`); None for the others.
    """

    index_map: IndexMap
    method: str
    stats: dict[str, int] = field(default_factory=dict)
    latents: np.ndarray | None = None

    @property
    def indices(self) -> np.ndarray:
        """The concealed (h, w) index array (``index_map.indices``)."""
        return self.index_map.indices


# ------------------------------------------------------------------ runners (uniform call, fixed options)
def _ar(fast: bool, **fixed: Any) -> Runner:
    fn = conceal_ar if fast else conceal_ar_naive

    def run(index_map, lost_mask, model, codebook, rng, options):
        return fn(index_map, lost_mask, model, rng=rng, codebook=codebook, return_stats=True, **options, **fixed)

    return run


def _bidir(**fixed: Any) -> Runner:
    def run(index_map, lost_mask, model, codebook, rng, options):
        return conceal_bidir(index_map, lost_mask, model, rng=rng, codebook=codebook, **options, **fixed), {}

    return run


def _soft_bidir(**fixed: Any) -> Runner:
    def run(index_map, lost_mask, model, codebook, rng, options):
        out, lat = conceal_bidir_soft(index_map, lost_mask, model, codebook=codebook, **options, **fixed)
        return out, {}, lat

    return run


def _soft_ar(index_map, lost_mask, model, codebook, rng, options):
    return conceal_ar_soft(index_map, lost_mask, model, codebook=codebook, rng=rng, return_stats=True, **options)


def _soft_latent_avg(index_map, lost_mask, model, codebook, rng, options):
    out, lat = conceal_latent_avg_soft(index_map, lost_mask, codebook, **options)
    return out, {}, lat


def _mean(index_map, lost_mask, model, codebook, rng, options):
    return conceal_mean(index_map, lost_mask, codebook), {}


def _neighbor(index_map, lost_mask, model, codebook, rng, options):
    return conceal_neighbor(index_map, lost_mask, codebook), {}


def _latent_avg(index_map, lost_mask, model, codebook, rng, options):
    return conceal_latent_avg(index_map, lost_mask, codebook, **options), {}


def _none(index_map, lost_mask, model, codebook, rng, options):
    return conceal_none(index_map, lost_mask, **options), {}


_AR_OPTS = ("window", "sos_token", "context", "rule", "sample", "temperature", "top_k", "tie_tol", "estimate")
_AR_MEAN_OPTS = tuple(o for o in _AR_OPTS if o not in ("sample", "estimate"))
_BIDIR_OPTS = ("window", "steps", "sample", "temperature", "top_k", "max_tokens", "estimate")
_BIDIR_SOFT_OPTS = ("window", "steps", "temperature", "top_k", "max_tokens")

#: every method, in the order of ``CONCEAL_METHODS``
METHODS: Mapping[str, ConcealMethod] = MappingProxyType({m.name: m for m in (
    ConcealMethod("ar", _ar(True), _AR_OPTS + ("max_tokens",), "ar", "optional"),
    ConcealMethod("ar_naive", _ar(False), _AR_OPTS, "ar", "optional"),
    ConcealMethod("ar_mean", _ar(True, estimate="mean"), _AR_MEAN_OPTS + ("max_tokens",), "ar", "required"),
    ConcealMethod("bidir", _bidir(), _BIDIR_OPTS, "bidir", "optional"),
    ConcealMethod("bidir_mean", _bidir(estimate="mean"), ("window", "steps", "temperature", "top_k", "max_tokens"),
                  "bidir", "required"),
    ConcealMethod("mean", _mean, (), None, "required"),
    ConcealMethod("neighbor", _neighbor, (), None, "optional"),
    ConcealMethod("latent_avg", _latent_avg, ("connectivity",), None, "required"),
    ConcealMethod("none", _none, ("fill_value",), None, "unused"),
    ConcealMethod("bidir_soft", _soft_bidir(), _BIDIR_SOFT_OPTS + ("renorm",), "bidir", "required", True),
    ConcealMethod("bidir_soft_l2", _soft_bidir(renorm=True), _BIDIR_SOFT_OPTS, "bidir", "required", True),
    ConcealMethod("ar_soft", _soft_ar, _AR_MEAN_OPTS + ("max_tokens", "renorm"), "ar", "required", True),
    ConcealMethod("latent_avg_soft", _soft_latent_avg, ("connectivity", "renorm"), None, "required", True),
)})

CONCEAL_METHODS = tuple(METHODS)
#: model methods and the transformer kind each needs ("*_mean": the same model with estimate="mean")
MODEL_KIND = MappingProxyType({n: m.model_kind for n, m in METHODS.items() if m.model_kind is not None})
#: options each method accepts
CONCEAL_OPTIONS = MappingProxyType({n: m.options for n, m in METHODS.items()})
#: methods whose ``Concealment.latents`` hold continuous vectors at lost positions
SOFT_METHODS = tuple(n for n, m in METHODS.items() if m.soft)


def conceal(index_map: IndexMap, lost_mask: np.ndarray, method: str = "ar", *, model=None, codebook=None,
            rng=None, decoder_codebook=None, **options) -> Concealment:
    """Conceal the lost indices of ``index_map`` (``lost_mask`` True = lost) with ``method``.

    Args:
        index_map: received map; values at lost positions are ignored (except by ``none``).
        lost_mask: bool (h, w).
        method: one of ``CONCEAL_METHODS`` (see ``METHODS``).
        model: GPT for ``ar`` / ``ar_naive`` (causal, vocab K or K+1) and
            ``bidir`` (bidirectional, vocab K+1).
        codebook: (K, D) codewords for ``mean``, ``latent_avg`` (and the
            all-lost fallback of ``neighbor``), and for the model methods'
            ``estimate="mean"``.
        rng: torch or numpy Generator; needed only when sampling.
        decoder_codebook: soft methods (``SOFT_METHODS``): the (K, D) table the
            decoder looks indices up in, when it differs from ``codebook``
            (a fine-tuned reduced size; :func:`codec.conceal.soft.decoder_table`).
        options: method-specific (see the ``conceal_*`` functions); unknown
            options raise ``ValueError`` listing the allowed ones.

    Returns a :class:`Concealment`: the new IndexMap (received indices
    untouched) as ``.index_map`` (``.indices`` its array), the method's
    ``.stats`` and, for the soft methods, ``.latents``.
    """
    if not isinstance(index_map, IndexMap):
        raise TypeError(f"index_map must be an IndexMap, got {type(index_map).__name__}")
    spec = METHODS.get(method) if isinstance(method, str) else None
    if spec is None:
        raise ParameterError(f"unknown concealment method {method!r}; allowed: {', '.join(CONCEAL_METHODS)}")
    bad = sorted(set(options) - set(spec.options))
    if bad:
        allowed = list(spec.options) or "(no options)"
        raise ParameterError(f"unknown option(s) {bad} for method {method!r}; allowed: {allowed}")
    if spec.soft:
        out, stats, lat = spec.run(index_map, lost_mask, model, codebook, rng,
                                   dict(options, decoder_codebook=decoder_codebook))
        return Concealment(out, spec.name, dict(stats), lat)
    out, stats = spec.run(index_map, lost_mask, model, codebook, rng, options)
    return Concealment(out, spec.name, dict(stats))

"""The loss clause of a ``tc qdisc ... netem`` command line, read exactly as iproute2's ``tc`` reads it.

This module knows tc's *syntax* only (no model classes are imported here):
:func:`parse_loss_clause` turns ``"loss gemodel 1% 30%"`` into the model kind
and the model's constructor arguments (tc's defaults applied), and
:class:`NetemLossSpec` is the single home of the ``from_netem`` class method
that :class:`~channels.gilbert.GilbertElliott` and
:class:`~channels.markov4.FourStateMarkov` inherit.  :func:`channels.netem.parse_netem`
dispatches a clause to the model class (so parsing depends on the models,
and the models only on this module: no import cycle).

How tc reads the numbers (iproute2 ``tc/q_netem.c: netem_parse_opt`` and
``tc/tc_util.c: parse_percent``, read at master ee2a4a86; behaviour checked
token by token against tc 6.1.0 and glibc ``strtod``, see the tests)
-----------------------------------------------------------------------
* Every value goes through ``parse_percent``: ``v = strtod(tok, &end) / 100.``;
  ``v > 1.0 || v < 0.0`` is "out of range"; then whatever ``strtod`` did not
  consume must be empty or exactly ``"%"``.  So the ``%`` is optional (``30``
  means 30 %), a single one only (``5%%`` is rejected), and the number is
  anything C ``strtod`` reads in the C locale (tc never calls ``setlocale``):
  an optional sign, decimal with optional exponent (``5``, ``5.``, ``.5``,
  ``5e-1``), hexadecimal with optional binary exponent (``0x10`` = 16 %,
  ``0x1p-3``; a bare ``0x`` is read as ``0`` followed by junk ``x`` →
  rejected), ``inf``/``infinity`` (out of range) and ``nan``.  A lone ``%``
  is 0 % (strtod converts nothing and returns 0; the rest is ``"%"``), while
  ``+%``, ``x5`` or ``1,5`` are rejected.  Values are in
  [0 %, 100 %] after the division, so ``100%`` is accepted, ``100.0000001%``
  and ``-1%`` are not, and ``-0`` (= -0.0, not < 0) is accepted as 0.
* Which tokens are *taken* as values depends on the place:

  - the 1st value of ``loss random P``, ``loss state P13`` and
    ``loss gemodel P`` is read unconditionally (``NEXT_ARG``), so any strtod
    token is accepted there: ``.5%``, ``+5%``, ``-0%``, ``0x1p-3`` ...;
  - the old form ``loss P [CORR]`` is only recognised when ``P`` starts with
    a digit (``isdigit(argv[0][0])``), otherwise tc says "Unknown loss
    parameter";
  - the 2nd to 5th values (and the correlation of ``random``) are read only
    when the token starts with an ASCII digit ``0-9`` (``NEXT_IS_NUMBER`` =
    ``isdigit(argv[1][0])``).  A token such as ``.5%``, ``+5%``, ``-5%`` or
    ``nan`` there ends the loss clause, tc then takes it as the next netem
    option and rejects the command ("What is ".5%"?").  After the last value
    a further digit-led token is likewise an unknown option.

  Tokens are whitespace-separated words (vqsim splits the spec on ASCII
  whitespace, as a shell would without quotes), so strtod's skipping of
  leading whitespace never applies.

vqsim accepts and rejects exactly these tokens, with one deliberate
exception: ``nan`` in a 1st place passes tc's range test (every comparison
with NaN is false) but the number then sent to the kernel is
``rint(NaN * UINT32_MAX)`` converted to ``u32`` — undefined in C — so vqsim
rejects it and says why.  Other vqsim behaviour around the numbers:

* the leading ``loss`` may be omitted (``"gemodel 1% 30%"``); like tc it may
  be abbreviated (``lo``, ``los``, ``dr`` ... — tc's ``matches()`` prefix rule,
  where a lone ``l`` is ``limit`` and a lone ``d`` is ``delay``);
* a non-zero loss correlation is refused (tc-netem(8): "deprecated due to the
  noticed bad behavior") and so is any non-loss netem option, and a second
  loss clause (tc refuses it too, except after ``loss 0%``, which it replaces);
* the model checks tc does not make are still made: ``p13 + p14 <= 1`` and
  ``p31 + p32 <= 1`` (the kernel adds the 32-bit thresholds, which would
  wrap) and chains that would never leave a lossy state;
* netem stores each probability as ``rint(v * UINT32_MAX)`` and compares it to
  a 32-bit random number; vqsim keeps the double (a difference of about
  2**-32 at most).

Errors are :class:`codec.errors.ParameterError` naming the token, which value
of the clause it is (1st ... 5th, with the parameter name) and tc's rule.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from codec.errors import ParameterError

_M = TypeVar("_M")

#: tc's netem options in the order ``netem_parse_opt`` tries them with ``matches()``
#: (a token that is a non-empty prefix of the first matching name selects it)
NETEM_OPTIONS: tuple[str, ...] = (
    "limit", "latency", "delay", "loss", "drop", "seed", "ecn", "reorder", "corrupt",
    "gap", "duplicate", "distribution", "rate", "slot",
)

#: parameter names of each loss model, in tc's order
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "random": ("PERCENT", "CORRELATION"),
    "gemodel": ("p", "r", "1-h", "1-k"),
    "state": ("p13", "p31", "p32", "p23", "p14"),
}

_ASCII_WS = " \t\n\v\f\r"
# the part of a token C strtod (glibc, C locale) converts, then tc's optional single '%'
_STRTOD_THEN_PERCENT = re.compile(
    r"(?P<sign>[+-]?)(?:"
    r"(?P<hex>0[xX](?:[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]*)?|\.[0-9A-Fa-f]+)(?:[pP][+-]?[0-9]+)?)"
    r"|(?P<dec>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<inf>[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
    r"|(?P<nan>[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)"
    r")%?"
)
_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}


def _ordinal(i: int) -> str:
    return _ORDINAL.get(i, f"{i}th")


def tc_tokens(spec: str) -> list[str]:
    """Split a spec into words on ASCII whitespace (what a shell passes to tc as argv)."""
    return [t for t in re.split(f"[{re.escape(_ASCII_WS)}]+", spec) if t]


def netem_option(token: str) -> str | None:
    """The netem option tc would take ``token`` for (``matches()`` prefix rule), or None."""
    for name in NETEM_OPTIONS:
        if token and name.startswith(token):
            return name
    return None


def is_tc_number(token: str) -> bool:
    """True if tc's ``parse_percent`` syntax accepts ``token`` (range not checked)."""
    return token in ("", "%") or _STRTOD_THEN_PERCENT.fullmatch(token) is not None


def starts_with_digit(token: str) -> bool:
    """tc's ``NEXT_IS_NUMBER`` test: the token's first character is an ASCII digit."""
    return bool(token) and "0" <= token[0] <= "9"


def tc_percent(token: str) -> float | None:
    """``strtod(token)/100`` as tc's ``parse_percent`` computes it, or None if the syntax is refused.

    The result may be outside [0, 1] or NaN (the caller reports those).
    """
    if token in ("", "%"):  # strtod converts nothing (returns 0, end = start) and the rest is "" or "%"
        return 0.0
    m = _STRTOD_THEN_PERCENT.fullmatch(token)
    if m is None:
        return None
    sign = -1.0 if m["sign"] == "-" else 1.0
    if m["hex"] is not None:
        try:
            x = float.fromhex(m["hex"])
        except OverflowError:  # strtod returns HUGE_VAL
            x = math.inf
    elif m["dec"] is not None:
        x = float(m["dec"])  # ASCII digits only (checked above): correctly rounded like glibc strtod
    elif m["inf"] is not None:
        x = math.inf
    else:
        x = math.nan
    return (sign * x) / 100.0


@dataclass(frozen=True)
class LossClause:
    """A parsed netem loss clause.

    Attributes:
        kind: ``"random"``, ``"gemodel"`` or ``"state"``.
        values: the fractions given (in [0, 1]), in tc's order, without defaults.
        params: constructor keyword arguments of the model, tc's defaults applied
            (``Bernoulli(p)``, ``GilbertElliott(p, r, h, k)``,
            ``FourStateMarkov(p13, p31, p32, p23, p14)``).
        spec: the original string (for messages).
    """

    kind: str
    values: tuple[float, ...]
    params: dict[str, float]
    spec: str


def _value(token: str, i: int, kind: str, spec: str) -> float:
    """Read the i-th (1-based) value of ``loss kind`` from a token tc has decided to read as a number."""
    name = PARAM_NAMES[kind][i - 1]
    where = f"{name} ({_ordinal(i)} value of 'loss {kind}')"
    v = tc_percent(token)
    if v is None:
        raise ParameterError(
            f"netem spec {spec!r}: unexpected {token!r} for {where}: tc reads a number as C strtod does "
            f"(e.g. 1, 0.5, 5e-1, 0x1p-3) followed by nothing or by a single '%'"
        )
    if math.isnan(v):
        raise ParameterError(
            f"netem spec {spec!r}: {token!r} for {where} is not a number; tc's range check lets NaN through "
            f"but the value it then sends the kernel is undefined, so vqsim rejects it"
        )
    if v > 1.0 or v < 0.0:
        raise ParameterError(
            f"netem spec {spec!r}: {where} is {token!r} = {100.0 * v:.6g}%, but must be between 0% and 100%"
        )
    return v + 0.0  # -0.0 ('-0%', accepted by tc) -> 0.0


def _refuse_leftover(tok: str, i: int, kind: str, nmax: int, spec: str) -> None:
    """Explain why tc would not take ``tok`` (the token after ``i-1`` values of ``loss kind``)."""
    names = PARAM_NAMES[kind]
    if starts_with_digit(tok):  # a number after the last value
        raise ParameterError(
            f"netem spec {spec!r}: 'loss {kind}' takes at most {nmax} values ({' '.join(names[:nmax])}); "
            f"unexpected {tok!r} (tc would read it as the next netem option and reject it)"
        )
    if is_tc_number(tok):  # '.5%', '+5%', '-5%', 'nan', 'inf' in places 2..nmax
        what = f"{names[i - 1]} ({_ordinal(i)} value of 'loss {kind}')" if i <= nmax else "a further value"
        hint = "; write it with a leading digit, e.g. '0.5%'" if tok[:1] in ".+" else ""
        raise ParameterError(
            f"netem spec {spec!r}: {tok!r} cannot be {what}: tc reads the values after the first only when they "
            f"start with a digit 0-9 (q_netem.c NEXT_IS_NUMBER), so it would take {tok!r} as the next netem "
            f"option and reject the command{hint}"
        )
    opt = netem_option(tok)
    if opt in ("loss", "drop"):
        raise ParameterError(
            f"netem spec {spec!r}: a second loss clause {tok!r} is not supported (tc says 'duplicate loss "
            f"argument', except after a 0% random loss, which it silently replaces)"
        )
    raise ParameterError(
        f"netem spec {spec!r}: unexpected {tok!r} after 'loss {kind}': expected up to {nmax} percentages "
        f"({' '.join(names[:nmax])}); only the loss part of a netem spec is supported"
    )


def _read_values(kind: str, rest: list[str], spec: str, nmax: int) -> list[float]:
    """The values of ``loss kind``: the 1st unconditionally, the next ones while they start with a digit."""
    if not rest:
        raise ParameterError(f"netem spec {spec!r}: 'loss {kind}' needs at least {PARAM_NAMES[kind][0]}")
    vals = [_value(rest[0], 1, kind, spec)]
    j = 1
    while j < len(rest) and len(vals) < nmax and starts_with_digit(rest[j]):
        vals.append(_value(rest[j], len(vals) + 1, kind, spec))
        j += 1
    if j < len(rest):
        _refuse_leftover(rest[j], len(vals) + 1, kind, nmax, spec)
    return vals


def parse_loss_clause(spec: Any) -> LossClause:
    """Parse ``[loss|drop] (random P [C] | P [C] | state p13 [...] | gemodel p [...])`` (see module docstring).

    Raises:
        ParameterError: a token tc would reject (or NaN), a non-zero loss
            correlation, a non-loss netem option, or a malformed clause.
    """
    if not isinstance(spec, str):
        raise ParameterError(f"netem spec must be a string, got {type(spec).__name__}")
    tokens = tc_tokens(spec)
    if not tokens:
        raise ParameterError("netem spec is empty; expected e.g. 'loss gemodel 1% 30%'")
    opt = netem_option(tokens[0])
    if opt in ("loss", "drop"):
        tokens = tokens[1:]
        if not tokens:
            raise ParameterError(
                f"netem spec {spec!r}: 'loss' needs a model: 'random', 'state', 'gemodel' or a percentage"
            )
    elif opt is not None and tokens[0] not in PARAM_NAMES:
        raise ParameterError(
            f"netem spec {spec!r}: only the loss part of a netem spec is supported, got option {tokens[0]!r} ({opt})"
        )
    head, rest = tokens[0], tokens[1:]
    if head == "random" or starts_with_digit(head):
        if head != "random":
            rest = tokens  # old syntax: loss PERCENT [CORRELATION], recognised when PERCENT starts with a digit
        p, *corr = _read_values("random", rest, spec, 2)
        if corr and corr[0] != 0.0:
            raise ParameterError(
                f"netem spec {spec!r}: loss correlation is not supported (tc-netem(8): 'deprecated due to the "
                f"noticed bad behavior'); use 'loss gemodel p r' for bursty loss"
            )
        return LossClause("random", (p, *corr), {"p": p}, spec)
    if head == "gemodel":
        vals = _read_values("gemodel", rest, spec, 4)
        p = vals[0]
        params = {  # tc defaults: r = 1 - p, 1-h = 100%, 1-k = 0%
            "p": p,
            "r": vals[1] if len(vals) > 1 else 1.0 - p,
            "h": 1.0 - vals[2] if len(vals) > 2 else 0.0,
            "k": 1.0 - vals[3] if len(vals) > 3 else 1.0,
        }
        return LossClause("gemodel", tuple(vals), params, spec)
    if head == "state":
        vals = _read_values("state", rest, spec, 5)
        p13 = vals[0]
        defaults = (p13, 1.0 - p13, 0.0, 1.0, 0.0)  # q_netem.c: p31 = 1 - p13, p32 = 0, p23 = 1, p14 = 0
        full = tuple(vals) + defaults[len(vals):]
        return LossClause("state", tuple(vals), dict(zip(PARAM_NAMES["state"], full, strict=True)), spec)
    if is_tc_number(head):
        raise ParameterError(
            f"netem spec {spec!r}: {head!r} is not a loss model: tc reads 'loss PERCENT' only when PERCENT starts "
            f"with a digit 0-9 ('Unknown loss parameter'); write e.g. 'loss random {head}' or a leading digit"
        )
    raise ParameterError(
        f"netem spec {spec!r}: unknown loss model {head!r}; expected 'random', 'state', 'gemodel' or a percentage"
    )


def build(cls: type[_M], clause: LossClause, **extra: Any) -> _M:
    """``cls(**clause.params, **extra)``, with the model's own validation errors prefixed by the spec."""
    try:
        return cls(**clause.params, **extra)
    except ValueError as exc:  # ParameterError is a ValueError
        raise ParameterError(f"netem spec {clause.spec!r}: {exc}") from None


class NetemLossSpec:
    """Mixin giving a netem-parameterised model its ``from_netem`` constructor (defined once, here).

    Subclasses set ``NETEM_KIND`` (``"gemodel"`` or ``"state"``) and take a
    ``start`` keyword argument.
    """

    NETEM_KIND: ClassVar[str] = ""

    @classmethod
    def from_netem(cls, spec: str, start: str = "good") -> Any:
        """Build this model from a netem ``loss <NETEM_KIND> ...`` string (tc's syntax and defaults).

        Args:
            spec: e.g. ``"loss gemodel 1% 30% 70% 0.1%"`` (the leading ``loss`` may be omitted).
            start: ``"good"`` (default: what a freshly configured netem qdisc
                does — its chain starts in state 1 / Good) or ``"stationary"``.
                See the model's docstring for what the start means per stream.
        """
        clause = parse_loss_clause(spec)
        if clause.kind != cls.NETEM_KIND:
            raise ParameterError(
                f"{cls.__name__}.from_netem: {spec!r} is not a 'loss {cls.NETEM_KIND} ...' spec "
                f"(it is 'loss {clause.kind}'); use channels.parse_netem for any loss clause"
            )
        return build(cls, clause, start=start)

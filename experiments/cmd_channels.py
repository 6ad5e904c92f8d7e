"""``vqsim channels fit TRACE``: fit loss models to a measured trace, print the table, netem strings and verdict.

Registered under ``vqsim channels`` (``experiments.cmd_sim`` adds the
subcommands); ``vqsim channels`` alone still lists the presets.  The figure
(``--plot``) draws, per model, the exact CCDF of loss-burst and gap lengths
against the trace's on log axes, with the bootstrap band of the model the
verdict picks.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from codec.errors import ParameterError

FAMILY_STYLE = {"bernoulli": ("tab:gray", ":"), "gilbert": ("tab:blue", "--"), "ge": ("tab:red", "-"),
                "4state": ("tab:green", "-.")}


def register_subcommands(channels_parser: argparse.ArgumentParser) -> None:
    """Add ``fit`` under the ``channels`` parser (which keeps its own default: the preset list)."""
    sub = channels_parser.add_subparsers(dest="channels_command", metavar="SUBCOMMAND")
    p = sub.add_parser("fit", help="fit Bernoulli / Gilbert / Gilbert-Elliott / 4-state models to a loss trace",
                       description="Read a loss trace (0/1 trace, received sequence numbers, or ping output), fit "
                                   "loss models with 95% intervals, test them against the trace's loss rate, "
                                   "burst and gap lengths, and print the netem strings and a verdict.")
    p.add_argument("trace", metavar="TRACE", help="trace file: 0/1 text or .npy, a sequence-number log, or ping output")
    p.add_argument("--models", default="bernoulli,gilbert,ge,4state",
                   help="comma-separated families among bernoulli, gilbert, ge, 4state (default: all four)")
    p.add_argument("--format", default="auto", choices=["auto", "binary", "seq", "ping"],
                   help="trace format (default: guessed from the text)")
    p.add_argument("--seq-range", default=None, metavar="FIRST:LAST",
                   help="sequence numbers sent, for a sequence-number log (default: first..last received)")
    p.add_argument("--4state-method", dest="four_state_method", default="gmin", choices=["gmin", "ml"],
                   help="4-state estimator: gmin = Salsano et al.'s burst/gap classification (default), "
                        "ml = maximum likelihood (EM) started there")
    p.add_argument("--gmin", type=int, default=16, help="g_min of the burst/gap rule, received packets (default: 16)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    p.add_argument("--boot", type=int, default=200,
                   help="bootstrap traces per model for the goodness-of-fit p-values (default: 200)")
    p.add_argument("--alpha", type=float, default=0.05, help="test level of the verdict (default: 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--plot", default=None, metavar="FILE", help="write the CCDF figure (PNG, PDF or SVG by suffix)")
    p.set_defaults(func=cmd_fit)


def _seq_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(a), int(b)
    except ValueError:
        raise ParameterError(f"--seq-range must look like FIRST:LAST (e.g. 0:9999), got {text!r}") from None


def _fmt_est(e, digits: int = 4) -> str:
    hi = "inf" if math.isinf(e.high) else f"{e.high:.{digits}g}"
    return f"{e.value:.{digits}g} [{e.low:.{digits}g}, {hi}]"


def cmd_fit(args) -> int:
    import numpy as np

    from channels.fit import check_families, fit_all
    from channels.goodness import goodness_of_fit, verdict
    from channels.trace_io import read_trace

    families = check_families(args.models)
    if args.boot < 19:
        raise ParameterError(f"--boot must be >= 19 (a p-value needs bootstrap traces), got {args.boot}")
    if not 0 < args.alpha < 1:
        raise ParameterError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.plot is not None and Path(args.plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ParameterError(f"--plot must end in .png, .pdf or .svg, got {args.plot!r}")
    tr = read_trace(args.trace, fmt=args.format, seq_range=_seq_range(args.seq_range))
    print(tr.summary())
    fits, skipped = fit_all(tr.losses, families, level=args.level, method=args.four_state_method, gmin=args.gmin)
    for fam, why in skipped.items():
        print(f"  {fam}: not fitted: {why}")
    if not fits:
        raise ParameterError("no model could be fitted to this trace (see the reasons above)")
    best = min(f.aic for f in fits)
    pct = f"{100 * args.level:g} %"
    print(f"\n{'model':<10} {'k':>2} {'log-lik':>11} {'AIC':>11} {'ΔAIC':>8}  {'loss rate [' + pct + ']':<30} "
          f"{'mean burst [' + pct + ']':<26} {'fit':>6}  method")
    for f in fits:
        d = f.derived
        lr = d["loss_rate"]
        lr_s = f"{lr.value:.3%} [{lr.low:.3%}, {lr.high:.3%}]"
        em = f", {f.iterations} EM steps{'' if f.converged else ' (NOT converged)'}" if f.iterations else ""
        print(f"{f.family:<10} {f.n_params:>2} {f.log_likelihood:>11.1f} {f.aic:>11.1f} {f.aic - best:>8.1f}  "
              f"{lr_s:<30} {_fmt_est(d['mean_burst'], 3):<26} {f.seconds:>5.2f}s  {f.method}{em}")
    print(f"\nparameters (netem convention, {pct} intervals):")
    for f in fits:
        print(f"  {f.family:<10} " + ", ".join(f"{k} = {_fmt_est(v)}" for k, v in f.params.items()))
        for note in f.notes:
            print(f"  {'':<10} note: {note}")
    print("\nnetem (tc qdisc add dev DEV root netem …):")
    for f in fits:
        print(f"  {f.family:<10} {f.to_netem(digits=4)}")
    rng = np.random.default_rng(args.seed)
    gofs = {f.family: goodness_of_fit(tr.losses, f.model, rng, n_boot=args.boot) for f in fits}
    print(f"\ngoodness of fit (parametric bootstrap: {args.boot} traces of {tr.n} packets per model, seed {args.seed}; "
          "runs cut by the trace ends left out):")
    print(f"  {'model':<10} {'loss rate p':>11}  {'burst lengths X² (bins)':>24} {'p':>6}  "
          f"{'gap lengths X² (bins)':>22} {'p':>6}")
    for f in fits:
        t = gofs[f.family].tests
        def cell(k, t=t):
            return (f"{t[k].statistic:.1f} ({t[k].detail.split(', ')[1].split(' ')[0]})"
                    if math.isfinite(t[k].statistic) else "n/a", f"{t[k].p_value:.3f}"
                    if math.isfinite(t[k].p_value) else "n/a")

        b, g = cell("burst_lengths"), cell("gap_lengths")
        print(f"  {f.family:<10} {t['loss_rate'].p_value:>11.3f}  {b[0]:>24} {b[1]:>6}  {g[0]:>22} {g[1]:>6}")
    print()
    lines = verdict(fits, gofs, args.alpha)
    for line in lines:
        print(line)
    if args.plot:
        chosen = next((f for f in sorted(fits, key=lambda f: f.aic) if not gofs[f.family].rejected(args.alpha)),
                      min(fits, key=lambda f: f.aic))
        out = plot_fit(tr, fits, gofs, chosen.family, args.plot)
        print(f"figure: {out}")
    return 0


def plot_fit(tr, fits, gofs, band_family: str, path: str | Path) -> Path:
    """Two panels, log-log: P(burst length ≥ m) and P(gap length ≥ m), trace vs each model (+ band of one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from channels.goodness import ccdf, empirical_ccdf, inner_runs

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for ax, lost, title in ((axes[0], True, "loss bursts (consecutive lost packets)"),
                            (axes[1], False, "gaps (consecutive received packets)")):
        runs = inner_runs(tr.losses, lost)
        m_max = int(max(2, math.ceil(1.5 * runs.max(initial=1))))
        m = np.arange(1, m_max + 1)
        emp = empirical_ccdf(runs, m_max)
        g = gofs.get(band_family)
        if g is not None:
            lo, hi = g.burst_band if lost else g.gap_band
            k = min(lo.size, m_max)
            ax.fill_between(m[:k], np.maximum(lo[:k], 1e-12), np.maximum(hi[:k], 1e-12), color="0.85",
                            label=f"95 % band of {band_family} ({g.n_boot} simulated traces)", linewidth=0)
        for f in fits:
            color, ls = FAMILY_STYLE.get(f.family, ("k", "-"))
            c = ccdf(f.model, m_max, lost)
            keep = c > 1e-12
            ax.plot(m[keep], c[keep], color=color, linestyle=ls, linewidth=1.6,
                    label=f"{f.family} (AIC {f.aic:,.0f})")
        nz = emp > 0
        ax.plot(m[nz], emp[nz], "o", color="black", markersize=3.5, label=f"trace ({runs.size} runs)", zorder=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("run length m (packets)")
        ax.set_ylabel("P(length ≥ m)")
        ax.set_title(title, fontsize=11)
        ax.set_ylim(bottom=max(0.3 / max(runs.size, 1), 1e-6), top=1.3)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    name = Path(tr.source).name if tr.source else "trace"
    fig.suptitle(f"{name}: {tr.n:,} packets, {tr.loss_rate:.2%} lost — empirical vs fitted CCDFs", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path

"""The README's "Measured performance" table, from a ``vqsim bench --out FILE.json`` run.

    vqsim bench --out runs/bench_full.json
    python docs/make_perf_table.py runs/bench_full.json

Prints Markdown: a heading line with the run's date, machine, load and torch
threads, then one row per pipeline stage. Every number comes from the JSON.
"""
from __future__ import annotations

import json
import sys


def _ms(s: float) -> str:
    return f"{1e3 * s:,.0f} ms" if s >= 0.01 else f"{1e3 * s:.2f} ms"


def table(res: dict) -> str:
    m, sec = res["machine"], res["sections"]
    out = [f"`vqsim bench` on {m['date'][:10]} ({m['cpu_model']}, {m['cpu_cores']} cores, 1-min load "
           f"{m['load_avg_1min']:.2f}, torch {m['torch']} with {m['torch_threads']} threads; the trial "
           f"section's workers use 1 thread), {res['config']['repeats']} timed runs after a warm-up, medians; "
           f"whole run {res['total_s']:.0f} s. Made by `python docs/make_perf_table.py`.", "",
           "| stage | measured |", "|---|---|"]
    if "codec" in sec:
        c = sec["codec"]
        cpu = c["devices"]["cpu"]
        H, W = c["image_size"]
        by = c["coders"]
        out.append(f"| codec, {W}×{H}, default model, K = {c['codebook_size']} | encode {cpu['encode_ms']:,.0f} ms, "
                   f"decode {cpu['decode_ms']:,.0f} ms |")
        out.append("| bitstream of the same image (header included) | " + " · ".join(
            f"{k} {v['bytes']:,} B" for k, v in by.items()) + f" (arith_rep = {by['arith_rep']['bpp']:.4f} bpp) |")
        out.append(f"| arithmetic coder, {c['index_map'][0] * c['index_map'][1]:,} indices | encode "
                   f"{by['arith']['encode_ms']:.1f} ms, decode {by['arith']['decode_ms']:.1f} ms (pure Python) |")
    if "conceal" in sec:
        c = sec["conceal"]
        rows = ", ".join(
            f"{100 * r['fraction']:g} %: {r['ratio']:.2f}× ({r['naive_ms']:,.0f} → {r['fast_ms']:,.0f} ms; "
            f"{r['tokens_naive']:,} → {r['tokens_fast']:,} tokens)"
            for r in c["ar"]
        )
        out.append(
            f"| AR concealment, batched vs naive ({c['ar_model']}; identical output: "
            f"{'yes' if c['all_equal'] else 'NO'}) | {rows} |"
        )
        base = c["baselines_ms"]
        out.append(
            "| baselines (mean / neighbor / latent_avg) at "
            + ", ".join(f"{100 * float(f):g} %" for f in base)
            + " | "
            + "; ".join(" / ".join(f"{v:.2f}" for v in b.values()) + " ms" for b in base.values())
            + " |"
        )
    if "fec" in sec:
        f = sec["fec"]
        codes = "; ".join(
            f"({k.strip('()')}) {v['encode_MBps']:.0f} / {v['decode_MBps']:.0f} MB/s"
            + ("" if v.get("zfec") in (None, "not installed") else f", zfec {v.get('zfec')}")
            for k, v in f["erasure"].items()
        )
        out.append(f"| erasure FEC, {f['packet_bytes']:,}-B packets, encode / decode (numpy GF(256)) | {codes} |")
        rs = f["summary"]
        out.append(
            f"| in-packet RS (reedsolo), encode / decode of corrupted packets | "
            f"{rs['inpacket_rs_encode_MBps']:.1f} / {rs['inpacket_rs_decode_MBps']:.2f} MB/s |"
        )
    if "channels" in sec:
        s = sec["channels"]["summary"]
        out.append(
            f"| loss-mask sampling, {res['config']['n_draws']:,} packets | plain `rng.random(n) < p` "
            f"{s['rng_random_ms']:.0f} ms; Bernoulli {s['Bernoulli_ratio']:.2f}×, Gilbert-Elliott "
            f"{s['GilbertElliott_ratio']:.2f}×, 4-state {s['FourStateMarkov_ratio']:.2f}× of it |"
        )
    if "simpy" in sec:
        s = sec["simpy"]["summary"]
        out.append(
            f"| SimPy link model | {s['packets_per_s']:,.0f} packets/s ({s['us_per_packet']:.1f} µs each, "
            f"{s['cost_vs_bare_timeout']:.1f}× a bare SimPy timeout) |"
        )
    if "trial" in sec:
        t = sec["trial"]
        for meth, d in t["methods"].items():
            b, a = d["before"], d["after"]
            pb, pa = b["parts_median_s"], a["parts_median_s"]
            out.append(
                f"| one sweep trial, {meth} concealment, 2 references "
                f"(GE 10 %, {t['image_size'][1]}×{t['image_size'][0]}) | "
                f"{b['median_s']:.2f} s → **{a['median_s']:.2f} s = {b['median_s'] / a['median_s']:.2f}×** "
                f"(min–max {b['min_s']:.2f}–{b['max_s']:.2f} → {a['min_s']:.2f}–{a['max_s']:.2f} s); decode "
                f"{pb['decode']:.2f} → {pa['decode']:.2f} s, metrics {pb['metrics']:.2f} → {pa['metrics']:.2f} s, "
                f"conceal {pb['conceal']:.2f} → {pa['conceal']:.2f} s; pixels identical: "
                f"{'yes' if d['pixels_identical'] else 'NO'}, metrics within {d['max_metric_difference']:.0e} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python docs/make_perf_table.py BENCH.json")
    with open(argv[0]) as f:
        print(table(json.load(f)))


if __name__ == "__main__":
    main()

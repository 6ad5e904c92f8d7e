"""``vqsim models [NAME] [--json]``: the registered models and their model cards (``codec.zoo``).

Without NAME a table: one row per model with its architecture, codebook sizes,
Kodak bpp / LPIPS-Alex at the largest and smallest size, whether its weights
are present and match the card's SHA-256, and the hash's first 12 digits.
With NAME every field of that model's card. ``--json`` prints the cards (plus
``path``, ``present`` and ``weights``: ok / missing / sha256 mismatch) as JSON.
An unknown NAME exits with status 2, naming the registered models.
Reads JSON and hashes files only: no torch, no unpickling.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models and their model cards")
    p.add_argument("name", nargs="?", default=None, help="show this model's card in full")
    p.add_argument("--json", action="store_true", help="print the card(s) as JSON")
    p.set_defaults(func=cmd_models)


def _sizes(sizes) -> str:
    return " ".join(str(s) for s in sizes) or "none"


def _kodak_cell(info) -> str:
    """'bpp/LPIPS (K) … bpp/LPIPS (S_min)' from the card's Kodak rows; '—' when none were measured."""
    rows = sorted(info.kodak.rows, key=lambda r: -r.codebook_size) if info.kodak else []
    if not rows:
        return "—"
    ends = rows if len(rows) == 1 else [rows[0], rows[-1]]
    return " … ".join(f"{r.bpp:.4f}/{r.lpips_alex:.3f} ({r.codebook_size})" for r in ends)


def _card_json(info) -> dict[str, Any]:
    d = info.to_dict()
    d["weights"] = info.weights_status()
    from codec.zoo import file_status

    for c, cd in zip(info.concealers, d["concealers"], strict=False):
        cd["weights"] = file_status(info.weights_dir / c.file, c.sha256)
    for v, vd in zip(info.decoder_variants, d["decoder_variants"], strict=False):
        vd["weights"] = file_status(info.weights_dir / v.file, v.sha256)
    return d


def _print_table(infos) -> None:
    head = ("name", "architecture", "codebook sizes", "Kodak bpp/LPIPS-Alex (size)", "weights", "sha256")
    rows = [(m.name, m.architecture, _sizes(m.codebook_sizes), _kodak_cell(m), m.weights_status(), m.sha256[:12])
            for m in infos]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())


def _print_card(m) -> None:
    from codec.zoo import file_status

    size = f", {m.path.stat().st_size / 1e6:.2f} MB" if m.path.exists() else ""
    print(f"{m.name}: {m.architecture}")
    print(f"  description     {m.description}")
    print(f"  file            {m.path} ({m.weights_status()}{size})")
    print(f"  sha256          {m.sha256}")
    print(f"  codebook sizes  {m.codebook_size} (trained); K-means reductions {_sizes(m.reduced_sizes)} "
          f"(seed {m.kmeans_seed}); fine-tuned decoders {_sizes(m.finetuned_sizes)}")
    print("  concealers" + ("      none" if not m.concealers else ""))
    for c in m.concealers:
        held = "" if c.heldout_nats is None else f", held-out {c.heldout_nats:.2f} nats"
        held += "" if c.heldout_exact is None else f" / {100 * c.heldout_exact:.1f} % exact"
        print(f"    {c.kind:<5} {c.codebook_size:>5}  {c.file} ({file_status(m.weights_dir / c.file, c.sha256)}, "
              f"sha256 {c.sha256[:12]}): {c.architecture}, {c.steps} steps{held}")
    if m.decoder_variants:
        print("  decoder variants")
    for dv in m.decoder_variants:
        print(f"    {dv.kind:<6} {dv.codebook_size:>5}  {dv.file} ({file_status(m.weights_dir / dv.file, dv.sha256)}, "
              f"sha256 {dv.sha256[:12]}): {dv.steps} steps on {dv.filler}-concealed maps")
        if dv.description:
            print(f"                  {dv.description}")
    print("  training")
    for k, v in m.training.items():
        print(f"    {k:<13} {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    if m.kodak is None:
        print("  Kodak           not measured")
        return
    k = m.kodak
    print(f"  Kodak ({k.images} images, coder {k.coder}, measured {k.measured}; {k.source})")
    print(f"    {'codebook':>8}  {'bpp':>7}  {'LPIPS-Alex':>10}  {'LPIPS-VGG':>9}  {'DISTS':>6}  {'w/o fine-tune':>13}")

    def cell(v: float | None, w: int) -> str:
        return f"{'—' if v is None else f'{v:.3f}':>{w}}"

    for r in sorted(k.rows, key=lambda r: -r.codebook_size):
        print(f"    {r.codebook_size:>8}  {r.bpp:>7.4f}  {r.lpips_alex:>10.3f}  {cell(r.lpips_vgg, 9)}  "
              f"{cell(r.dists, 6)}  {cell(r.lpips_alex_kmeans, 13)}")


def cmd_models(args) -> int:
    from codec.zoo import REGISTRY, model_info

    infos = [model_info(args.name)] if args.name else list(REGISTRY.values())
    if args.json:
        cards = [_card_json(m) for m in infos]
        print(json.dumps(cards[0] if args.name else cards, indent=2, ensure_ascii=False))
    elif args.name:
        _print_card(infos[0])
    else:
        _print_table(infos)
    return 0

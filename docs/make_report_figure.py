"""docs/report_demo.jpg: the top of a sweep report (title, trials line, paired-verdict counts, paired figure).

The report itself is HTML (``vqsim report`` / ``vqsim demo``); this draws the same content from the report's own
``report.md`` text and its ``plots/paired_vs_loss.png`` with PIL, so the README picture can be rebuilt without a
browser. Usage: python docs/make_report_figure.py [REPORT_DIR] [out.jpg]   (default results/demo, docs/report_demo.jpg)
"""
from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 650  # px, as the README shows it
MARGIN = 20


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, size)


def report_parts(report_dir: Path) -> tuple[str, list[str], Path, str]:
    """(title, paragraphs, paired figure, its caption) read from ``report_dir/report.md``."""
    md = (report_dir / "report.md").read_text()
    title = next(line[2:].strip() for line in md.splitlines() if line.startswith("# "))
    paras = [p.strip() for p in md.split("\n\n")]
    trials = next((p for p in paras if re.match(r"^\d[\d,]* trials;", p)), None)
    paired = next((p for p in paras if p.startswith("Paired differences in ")), None)
    caption = next((p for p in paras if p.startswith("*paired_vs_loss*")), "")
    if trials is None or paired is None:
        raise ValueError(
            f"{report_dir / 'report.md'}: no trials line or paired-differences paragraph (not a sweep report?)"
        )
    fig = report_dir / "plots" / "paired_vs_loss.png"
    if not fig.exists():
        raise FileNotFoundError(f"{fig}: the report's paired figure is missing (run vqsim plot first)")
    return title, [trials, paired], fig, caption.replace("*", "")


def _text_block(lines: list[tuple[str, ImageFont.FreeTypeFont, int]]) -> Image.Image:
    """White block with each (text, font, wrap width in characters) paragraph, separated by a blank line."""
    rendered: list[tuple[str, ImageFont.FreeTypeFont]] = []
    for text, font, wrap in lines:
        rendered += [(row, font) for row in textwrap.wrap(text, wrap)] + [("", font)]
    height = sum(int(f.size * 1.35) for _, f in rendered) + MARGIN
    img = Image.new("RGB", (WIDTH, height), "white")
    draw, y = ImageDraw.Draw(img), MARGIN
    for row, font in rendered:
        draw.text((MARGIN, y), row, fill="black", font=font)
        y += int(font.size * 1.35)
    return img


def main(report_dir: str = str(ROOT / "results" / "demo"), out: str = str(ROOT / "docs" / "report_demo.jpg")) -> None:
    title, paras, fig_path, caption = report_parts(Path(report_dir))
    top = _text_block([(title, _font(17, bold=True), 60)] + [(p, _font(10), 108) for p in paras])
    fig = Image.open(fig_path).convert("RGB")
    fig = fig.resize((WIDTH, round(fig.height * WIDTH / fig.width)), Image.LANCZOS)
    bottom = _text_block([(caption, _font(10), 108)]) if caption else Image.new("RGB", (WIDTH, MARGIN), "white")
    page = Image.new("RGB", (WIDTH, top.height + fig.height + bottom.height), "white")
    page.paste(top, (0, 0))
    page.paste(fig, (0, top.height))
    page.paste(bottom, (0, top.height + fig.height))
    page.save(out, quality=90)
    print(f"wrote {out} ({page.width}x{page.height})")


if __name__ == "__main__":
    main(*sys.argv[1:])

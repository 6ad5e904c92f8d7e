"""The README's command-line tour and Python example, run as written (small inputs where needed), so they cannot rot.

Every tour line must parse with the real CLI parser; the cheap ones run through ``experiments.cli.main`` in a
temporary folder (Kodak paths pointed at the shared data, the sweep config swapped for the tiny test config);
the long ones (training, benchmarks, full Kodak evaluations, the 4-minute demo) are listed in ``NOT_RUN`` with
the reason, and a new tour command must be added to one of the two.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from experiments.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"

#: tour commands not run here (each is run by its own tests on small inputs), with why
NOT_RUN = {
    "eval": "24 Kodak images x several sizes / anchors: minutes (tests/experiments/test_cmd_codec.py)",
    "conceal": "a transformer over a 768x512 image: 20-60 s on 2 CPU cores (tests/experiments/test_cmd_conceal.py)",
    "demo": "the 4-minute demo sweep",
    "bench": "the benchmark (tests/experiments/test_bench.py)",
    "train-codec": "training", "export-codec": "needs a trained run", "finetune-codec": "training",
    "index-data": "the training photos", "train-transformer": "training",
    "conceal-eval": "transformers over 24 Kodak images (tests/codec/test_conceal_soft.py)",
}
#: tour lines with a RUN command that are still not run here, with why
SLOW_LINES: dict[str, str] = {}
RUN = ("models", "encode", "decode", "channels", "links", "transmit", "sweep", "plot", "report")


def tour_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Command line tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()   # trailing comments are two spaces + '#'
        if line.startswith("vqsim "):
            out.append(line)
    return out


def argv_of(line: str, kodak: Path, cfg: Path) -> list[str]:
    line = line.replace("[", "").replace("]", "")          # "vqsim models [default] [--json]": optional parts
    line = line.replace("../shared/data/kodak", str(kodak))
    line = line.replace("experiments/configs/bernoulli.yaml", str(cfg))
    line = line.replace("ping.log", str(Path(__file__).resolve().parents[2] / "experiments/examples/ping_wifi.log"))
    return shlex.split(line)[1:]


def test_tour_is_found_and_every_command_is_covered():
    lines = tour_lines()
    assert len(lines) >= 20
    for line in lines:
        cmd = shlex.split(line)[1]
        assert cmd in RUN or cmd in NOT_RUN, f"new tour command {cmd!r}: run it here or say why not (NOT_RUN)"


def test_every_tour_line_parses(tmp_path, kodak_dir):
    parser = build_parser()
    for line in tour_lines():
        args = parser.parse_args(argv_of(line, kodak_dir, tmp_path / "c.yaml"))
        assert getattr(args, "func", None) is not None, line


@pytest.mark.slow
def test_cheap_tour_commands_run(tmp_path, monkeypatch, kodak_dir, tiny_config, capsys):
    cfg = tiny_config()   # smaller still: the tour checks that the commands work, test_sweep what they compute
    cfg.update(seeds=[0], fec=["none"], channels=[{"model": "bernoulli", "p": [0.1, 0.3]}],
               concealment={"methods": ["latent_avg", "neighbor"]}, examples={"enabled": False})
    cfg["codec"]["codebook_sizes"] = [16]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in tour_lines():
        argv = argv_of(line, kodak_dir, tmp_path / "tiny.yaml")
        if argv[0] not in RUN or any(key in line for key in SLOW_LINES):
            continue
        rc = main(argv)
        out = capsys.readouterr()
        assert rc == 0, f"{line!r} exited {rc}: {out.err[-400:]}"
        ran.append(argv[0])
        if argv[0] == "transmit" and "--bitstream" in argv:
            assert "indices lost" in out.out         # the encoded file (arith coder + prior) is read
        if "tf_tile" in argv:
            assert "coder tf_tile" in out.out and "tile" in out.out
    assert {"encode", "decode", "transmit", "sweep", "plot", "report"} <= set(ran)
    assert (tmp_path / "results/bernoulli/report.html").exists()


def test_python_api_example_runs(monkeypatch, kodak_dir):
    text = README.read_text(encoding="utf-8")
    code = text.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace("../shared/data/kodak", str(kodak_dir))
    ns: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), ns)
    assert ns["rec_concealed"].shape == ns["img"].shape

"""Every shipped training config parses into its trainer's settings (a typo'd key or value fails here, not an hour
into somebody's run): the codec campaign's and probes' ``train-codec`` configs and the robust decoders'."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from codec.train.loop import TrainConfig
from codec.train.robust_decoder import RobustDecoderConfig
from experiments.cmd_train import load_train_config

ROOT = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "train"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
ROBUST = [p for p in CONFIGS if p.name.startswith("robust_decoder")]
CODEC = [p for p in CONFIGS if p not in ROBUST]


def _codec_args(path: Path) -> argparse.Namespace:
    from experiments.cli import build_parser

    return build_parser().parse_args(["train-codec", "--config", str(path)])  # the CLI's own flags, none set


def test_the_train_configs_are_all_found():
    assert len(ROBUST) >= 3 and len(CODEC) >= 10
    assert ROOT / "default.yaml" in CODEC and ROOT / "robust_decoder_128.yaml" in ROBUST


@pytest.mark.parametrize("path", CODEC, ids=lambda p: str(p.relative_to(ROOT)))
def test_codec_train_config_parses(path):
    cfg = load_train_config(_codec_args(path))
    assert isinstance(cfg, TrainConfig) and cfg.steps > 0 and cfg.out


@pytest.mark.parametrize("path", ROBUST, ids=lambda p: p.name)
def test_robust_decoder_config_parses(path):
    cfg = RobustDecoderConfig.from_yaml(path)
    assert cfg.out.endswith(f"_{cfg.codebook_size}.pt")   # the file name says which codebook size it is for
    assert 0 < cfg.loss_min <= cfg.loss_max < 1 and cfg.steps > 0

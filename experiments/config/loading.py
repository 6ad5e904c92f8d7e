"""Reading sweep configs: a YAML file, or a config bundled in ``experiments/configs`` by name."""
from __future__ import annotations

from pathlib import Path

from ._checks import ConfigError

BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_config(path: str | Path) -> dict:
    """Read a YAML config file (or a bundled config by name, e.g. ``demo``) into a raw dict."""
    import yaml

    p = Path(path)
    if not p.exists():
        alt = bundled_config(str(path))
        if alt is None:
            raise FileNotFoundError(f"config not found: {p} (bundled configs: "
                                    f"{', '.join(sorted(q.stem for q in BUNDLED_CONFIG_DIR.glob('*.yaml')))})")
        p = alt
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config: {p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {p}: the top level must be a mapping, got {type(raw).__name__}")
    raw.setdefault("name", p.stem)
    return raw


def bundled_config(name: str) -> Path | None:
    """Path of a ready-made config shipped in ``experiments/configs`` (by stem), or None."""
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    p = BUNDLED_CONFIG_DIR / f"{stem}.yaml"
    return p if p.exists() and "/" not in name else None

"""Reading sweep configs: a YAML file, or a config bundled in ``experiments/configs`` by name."""
from __future__ import annotations

from pathlib import Path

from ._checks import ConfigError

BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_config(path: str | Path) -> dict:
    """Read a YAML config file (or a bundled config by name, e.g. ``demo``) into a raw dict."""

    if "\x00" in str(path):
        raise ConfigError(f"config: {str(path)!r}: a file name cannot contain a NUL byte")
    p = Path(path)
    if not p.exists():
        alt = bundled_config(str(path))
        if alt is None:
            raise FileNotFoundError(f"config not found: {p} (bundled configs: "
                                    f"{', '.join(sorted(q.stem for q in BUNDLED_CONFIG_DIR.glob('*.yaml')))})")
        p = alt
    raw = read_yaml_file(p, "config")
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {p}: the top level must be a mapping, got {type(raw).__name__}")
    raw.setdefault("name", p.stem)
    return raw


def bundled_config(name: str) -> Path | None:
    """Path of a ready-made config shipped in ``experiments/configs`` (by stem), or None."""
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    p = BUNDLED_CONFIG_DIR / f"{stem}.yaml"
    return p if p.exists() and "/" not in name else None


def read_yaml_file(path: str | Path, what: str = "config"):
    """The YAML (or JSON: a subset) document of a text file, with every way it can be bad as one line.

    Raises FileNotFoundError / IsADirectoryError, and ConfigError for a NUL in the name, a binary
    (non-UTF-8) file, invalid YAML, or a tag of PyYAML's unsafe loader (``!!python/object``: ``safe_load``
    refuses to build Python objects, and says so here in one line instead of a traceback).
    """
    import yaml

    if "\x00" in str(path):
        raise ConfigError(f"{what}: {str(path)!r}: a file name cannot contain a NUL byte")
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what}: {p} is a directory, not a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what}: {p}: not a text file (byte {e.start} is not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"{what}: {p}: not a text file (it holds NUL bytes)")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = " ".join(str(e).split())
        if "python/" in first:
            first = "it uses a Python-object tag (!!python/...), which vqsim never loads"
        raise ConfigError(f"{what}: {p}: not valid YAML: {first[:300]}") from None

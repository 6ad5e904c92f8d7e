"""Sweep configuration: schema, defaults, validation and expansion.

A sweep config is a YAML mapping.  Every key is optional except ``channels``
(the example below shows example values; where they differ from the default, the comment names the default);
unknown keys are errors (typos must not silently fall back to defaults).
Numbers in exponent notation such as ``1.0e7`` or ``1e-4``, which PyYAML
(YAML 1.1) reads as strings, are numbers in the float fields and channel
parameters; any other string there is an error.

.. code-block:: yaml

    name: my_sweep                 # results go to results/<name> unless --out is given
    description: free text
    images:
      source: skimage              # "skimage" (bundled sample photos), a folder, a glob, a file, or a list of those
      names: [astronaut, coffee, chelsea, rocket]   # skimage photos (source: skimage only)
      limit: null                  # keep the first N images
      resize: 256                  # null | short side in px (int) | [H, W]
      crop: [256, 256]             # null | centre crop [H, W] after the resize
    codec:
      model: default               # registry name or checkpoint path
      codebook_sizes: [256]        # S values (K-means reductions below the model's K)
      coder: arith                 # bitstream coder for the source rate (bpp)
      kmeans_seed: 0
      finetuned: auto              # reduced sizes: auto (the shipped fine-tuned decoder when there is one)
                                   # | true | false (w/o fine-tune)
      device: auto                 # auto | cpu | cuda | cuda:N
    channels:                      # each entry expands to the product of its list-valued parameters
      - {model: index_loss, rate: [0.0, 0.1, 0.2]}       # drops exactly round(rate·h·w) indices
      - {model: bernoulli, p: [0.01, 0.05]}
      - {model: gilbert_elliott, loss_rate: [0.05], mean_burst: [1.5, 4]}
      - internet                   # a preset name, or a netem string such as "loss gemodel 1% 30%"
      - {model: fitted, trace: ping.log, family: ge, scale_loss: [1, 2, 4]}  # fitted to a measured trace
    fec:                           # product with codebook_sizes (or use `pairs`)
      - none
      - {n: 12, k: 8}              # packet-level erasure code RS(n, k)
      - {n: 6, k: 4, code: vandermonde}  # code: cauchy (default) | vandermonde (zfec's; fast with zfec installed)
      - {nsym: 8}                  # in-packet RS parity bytes (against bit errors)
    pairs: null                    # alternative to codebook_sizes × fec: [{codebook_size: S, fec: ...}, ...]
    packetization: {mtu: [128], interleave: [random], coder: [arith]}   # = the default: a Kodak image in 11-15
                                   # packets at K=1024 (6-11 at K=128) (mtu 1200 sends it in 2, and a loss
                                   # sweep then measures little);
                                   # runs, summaries and reports warn when images travel in < 8 data packets;
                                   # coder tf_tile (the AR transformer as a packet-local entropy model, one
                                   # tile per packet) goes with interleave tile only (list both; the other
                                   # interleavers still pair with the symbol coders): see context_coding.yaml
    link: {bandwidth_bps: 1.0e7, propagation_s: 0.02, jitter: none, jitter_s: 0.0,
           queue_packets: null, queue_bytes: null, overhead_bytes: 0}
    pacing_bps: null
    deadline_s: null
    concealment:
      methods: [ar, bidir, latent_avg, neighbor, mean, none]   # default: [latent_avg, neighbor, mean]
      options: {bidir: {steps: 6}}  # per-method options of codec.conceal.conceal
      decoders: [plain]            # plain | robust: each method's concealed map decoded by each decoder (paired;
                                   # rows "method@robust", column decoder); robust: the loss-aware decoder side
      models: {}                   # {ar|bidir|robust_decoder: path template with {size}}; default: the model zoo
      on_missing_model: error      # error | skip (drop ar/bidir/robust only at the codebook sizes that lack their
                                   # model)
    seeds: [0, 1, 2]
    metrics: {nets: [alex], device: auto, structural: true}   # LPIPS backbones: alex and/or vgg (vgg is ~20×
                                                              # slower on CPU); structural: SSIM/MS-SSIM per trial
                                                              # (~2 s at 768x512 on CPU)
    examples: {enabled: true, max_side: 256}
    execution: {flush_every_s: 5.0, consolidate_every_s: 30.0, torch_threads: 1}
                                   # torch CPU threads per worker: CPU results depend on it in the last
                                   # digits, so it is part of the sweep's identity (config hash)

``validate_config(raw)`` checks everything that can be checked without
loading any model (schema, value ranges, channel / FEC construction) and
returns the *resolved* config: a plain dict with every default filled in,
which is what ``config.yaml`` in a results folder holds.
``check_resources(resolved)`` then checks the files (codec checkpoint,
codebook sizes against the model's K, concealment models) and adds the codec
checkpoint's SHA-256.  Both raise :class:`ConfigError` naming the bad key and
the allowed values, before any trial runs.

Modules: :mod:`.schema` (``validate_config``, ``config_hash``, ``fec_label``),
:mod:`.channel_grid` (``expand_channels``, ``ChannelPoint``), :mod:`.resources`
(``check_resources``, ``codec_sizes``), :mod:`.loading` (``load_config``,
``bundled_config``), :mod:`._checks` (``ConfigError`` and the value checks).
"""

from __future__ import annotations

from ._checks import ConfigError
from .channel_grid import INDEX_LOSS, ChannelPoint, expand_channels
from .loading import BUNDLED_CONFIG_DIR, bundled_config, load_config
from .resources import check_resources, codec_sizes
from .schema import SKIMAGE_IMAGES, config_hash, fec_label, validate_config

__all__ = [
    "ConfigError",
    "SKIMAGE_IMAGES",
    "INDEX_LOSS",
    "load_config",
    "validate_config",
    "check_resources",
    "codec_sizes",
    "expand_channels",
    "fec_label",
    "ChannelPoint",
    "config_hash",
    "bundled_config",
    "BUNDLED_CONFIG_DIR",
]

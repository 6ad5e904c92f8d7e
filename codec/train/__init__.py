"""Making the codec's weights: train a VQGAN, export it with K-means codebooks and priors, fine-tune reduced sizes.

Modules, one job each:

* ``codec.train.data``: training images decoded once, random crops;
* ``codec.train.losses``: discriminator, hinge loss, adaptive GAN weight, DiffAugment, low-pass colour term;
* ``codec.train.loop``: ``TrainConfig`` and the resumable training loop ``train_codec`` (``vqsim train-codec``);
* ``codec.train.export``: training checkpoint → shippable model file (``vqsim export-codec``);
* ``codec.train.finetune``: decoder-side fine-tune of the K-means-reduced codebooks (``vqsim finetune-codec``).

None of them changes process-wide torch settings (threads, denormals): the CLI does, once.
"""
from __future__ import annotations

from .data import load_image_pool, random_crops
from .export import export_model, index_counts, model_from_training_checkpoint
from .finetune import FINETUNE_PARTS, FinetuneConfig, encode_latents, finetune_model, finetune_size
from .loop import (
                   VAL_METRICS,
                   TrainConfig,
                   check_train_config,
                   crop_at,
                   kmeans_init_codebook,
                   selection_score,
                   train_codec,
                   validate,
                   variance_preserving_init,
)
from .losses import NLayerDiscriminator, adaptive_weight, diff_augment, hinge_d_loss, lowpass_loss

__all__ = [
    "FINETUNE_PARTS",
    "FinetuneConfig",
    "NLayerDiscriminator",
    "TrainConfig",
    "VAL_METRICS",
    "adaptive_weight",
    "check_train_config",
    "crop_at",
    "diff_augment",
    "encode_latents",
    "export_model",
    "finetune_model",
    "finetune_size",
    "hinge_d_loss",
    "index_counts",
    "kmeans_init_codebook",
    "load_image_pool",
    "lowpass_loss",
    "model_from_training_checkpoint",
    "random_crops",
    "selection_score",
    "train_codec",
    "validate",
    "variance_preserving_init",
]

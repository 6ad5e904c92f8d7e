"""Sweeps: plan the trials of a config, run them (locally or on Dask), store tidy rows, resumably.

Vocabulary
----------
* **trial** — one (image, codec setting, channel point, FEC, packetization,
  seed, concealment method): transmit → conceal → decode → metrics; one row.
  Its id is the SHA-256 (16 hex digits) of its canonical parameters.
* **unit** — the trials that share everything but the method.  A unit is
  the unit of work: the image is transmitted once and every method conceals
  the *same* losses (a paired comparison), the concealed maps are decoded in
  one batch on the codec's device and scored in one batch.

Randomness
----------
The channel / interleaver draws of a unit come from
``SeedSequence([seed, *words(realization id)])`` where the realization id
hashes (image, channel point, seed): methods, FEC settings, MTUs and codebook
sizes all face the same channel draws (common random numbers), and nothing
depends on execution order or worker count.  Sampling concealment uses
``SeedSequence([seed, *words(trial id)])``.

Caching
-------
Each image is encoded once per codec setting (model SHA-256, codebook size,
K-means seed), together with its loss-free reconstruction and that
reconstruction's metrics; the result lives in memory and in
``<out>/cache/encode/*.npz``.

Storage (``<out>/``)
--------------------
``config.yaml`` (resolved config), ``provenance.json``, ``parts/part-*.parquet``
(rows, appended in small chunks, each written to a temp file and renamed —
the write-ahead log), ``results.parquet`` / ``results.csv`` (consolidated,
deduplicated, in plan order; rewritten periodically and at the end),
``examples/`` (small PNGs for the image grids), ``summary.txt``.  Rerunning
the same command skips every trial whose id is already stored.  Columns
starting with ``time_`` hold wall-clock timings; every other column is a
deterministic function of the config.

Faults
------
Every file is written by :func:`atomic_write_bytes` (temp file, fsync,
rename, fsync of the folder), so a crash or power loss leaves each file
whole or absent.  A part file that cannot be read anyway (truncated, foreign)
is renamed ``<name>.corrupt`` with a one-line warning and its trials are
recomputed; an unreadable or inconsistent encode-cache entry is deleted and
recomputed.  A run holds ``fcntl.flock`` on ``<out>/.lock`` (which records
its pid, host and start time) from start to end: a second run into the same
folder fails at once with :class:`FolderLockedError`; the kernel releases
the lock of a killed run, so rerunning after a crash resumes.

Modules
-------
``sources`` (images) → ``plan`` (units, ids, seeds) → ``codecs`` / ``encode_cache`` (one encoding per image
and codec setting) → ``context`` (a worker's models and references) → ``trial`` (one unit: ``transmit``,
conceal, ``scoring`` (decode + score in one batch), ``examples``, rows) → ``executors`` (local threads) /
``dask_executor`` → ``storage`` (atomic files, rows), ``provenance`` (folder, lock, provenance.json),
``progress`` → ``run`` (:func:`run_sweep`, :func:`summary_table`); ``errors``.
"""
from __future__ import annotations

from .context import SweepInputs, TrialContext
from .encode_cache import CACHE_VERSION, EncodedImage, prepare_encodings
from .errors import FolderLockedError, SweepError
from .executors import EXECUTORS
from .plan import Unit, plan_units
from .progress import progress_bar
from .provenance import REPO_ROOT, lock_folder
from .run import SweepOutcome, run_sweep, summary_table
from .scoring import batch_metrics
from .sources import SweepImage, load_images
from .storage import ResultStore, read_results
from .trial import UnitResult, run_unit

__all__ = [
    "SweepError",
    "FolderLockedError",
    "SweepImage",
    "Unit",
    "EncodedImage",
    "TrialContext",
    "SweepInputs",
    "ResultStore",
    "SweepOutcome",
    "UnitResult",
    "load_images",
    "plan_units",
    "prepare_encodings",
    "run_unit",
    "run_sweep",
    "summary_table",
    "progress_bar",
    "batch_metrics",
    "read_results",
    "lock_folder",
    "CACHE_VERSION",
    "EXECUTORS",
    "REPO_ROOT",
]

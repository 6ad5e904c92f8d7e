"""Micro-benchmarks of the vqsim pipeline on the current machine (``vqsim bench``).

Each section is a function ``bench_<name>(cfg) -> dict`` that measures one
part of the pipeline and returns plain JSON-able numbers: a ``summary`` dict
(the headline numbers, all finite and > 0 on success; these make the printed
table) plus section-specific details.  ``run_bench`` runs the selected
sections, records a failing section's error text instead of aborting, and adds
the machine description (``machine_info``).

Timing: ``time.perf_counter`` wall clock; every timed call is run once as a
warm-up, then ``repeats`` times, and the *median* is reported (CUDA results
are synchronized by copying them back to the host inside the timed call).
Machines are noisy (this one may be shared), so each section also reports
*ratios* against a baseline measured in the same run, which transfer between
machines far better than absolute times:

* ``codec``: decode / encode time, CUDA speed-up over CPU;
* ``conceal``: naive AR time / batched AR time (same output, checked), AR / neighbour;
* ``fec``: our Cauchy-RS erasure code's MB/s / zfec's MB/s (when zfec imports);
* ``channels``: loss-model sampling time / ``rng.random(n) < p`` time;
* ``simpy``: per-packet simulator cost / a bare SimPy timeout event;
* ``trial``: one sweep trial (two references; neighbour and AR concealment) with the old code
  path (no CPU tuning, float64 SSIM per comparison) / with today's, in two worker processes
  fed the same trials; decoded pixels checked identical;
* ``train``: one decoder-training step (decoder + LPIPS-Alex + LPIPS-VGG, forward and backward) in bf16
  autocast and / or channels-last / in fp32 NCHW, with each gradient's cosine to fp32's.

Sizes: the full bench uses a Kodak-size 768×512 image (32×48 index map),
10^7 channel draws and 10^5 simulated packets; ``quick=True`` uses a 384×256
image, 10^6 draws, 10^4 packets, one loss rate, one repetition and a small
concealment transformer, so the whole bench runs in well under a minute.

Modules: ``config`` (sizes, device), ``timing``, ``machine``, ``inputs``; one per section
(``image_codec``, ``concealment`` with ``ar``, ``fec``, ``network``, ``trial``, ``training``); ``run`` (the
section table, running them), ``report`` (the text table).
"""
from __future__ import annotations

from .ar import benchmark_ar
from .config import PACKET_BYTES, BenchConfig, BenchError, resolve_device
from .inputs import KODAK_IMAGE, load_bench_image
from .machine import machine_info
from .report import format_table
from .run import SECTIONS, parse_only, run_bench
from .timing import median_s, time_calls

__all__ = ["BenchConfig", "BenchError", "KODAK_IMAGE", "PACKET_BYTES", "SECTIONS", "benchmark_ar", "format_table",
           "load_bench_image", "machine_info", "median_s", "parse_only", "resolve_device", "run_bench", "time_calls"]

"""Sweeps end to end with a tiny real codec: rows, resume, determinism, executors, plots, CLI."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from experiments.sweep import ResultStore, SweepError, progress_bar, run_sweep


def quiet(*_a):
    pass


def det(df: pd.DataFrame) -> pd.DataFrame:
    """The deterministic part of a results table: no time_ columns, rows by trial id."""
    cols = [c for c in df.columns if not c.startswith("time_")]
    return df[cols].sort_values("trial_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_sweep):
    """One uninterrupted run of the tiny sweep: a copy of the session's run (``tiny_sweep``), since these tests
    rerun and plot into its folder."""
    out = tmp_path_factory.mktemp("ref") / "tiny"
    shutil.copytree(tiny_sweep.out, out)
    return dataclasses.replace(tiny_sweep, out=out, results=tiny_sweep.results.copy())


def test_rows_hold_every_parameter_and_consistent_measures(reference):
    df = reference.results
    # plan: 2 sizes × 2 images × (2 index-loss points + 2 packet points × 2 FEC) × 2 seeds × 3 methods
    assert reference.complete and reference.n_planned == 2 * 2 * (2 + 2 * 2) * 2 * 3 == len(df)
    assert df["trial_id"].is_unique
    for col in ("image", "codebook_size", "channel", "channel_label", "loss_rate_nominal", "burst_nominal", "fec",
                "fec_n", "fec_k", "mtu", "interleave", "coder", "method", "seed", "bpp", "total_bits", "total_bpp",
                "packets_sent", "channel_lost", "late", "recovered_fec", "loss_ratio", "mean_burst",
                "lpips_alex", "psnr", "ssim", "lpips_alex_vs_lossfree", "psnr_vs_lossfree", "ssim_vs_lossfree",
                "lossfree_lpips_alex", "time_transmit_s", "time_conceal_s"):
        assert col in df.columns, col
    pix = df["image_h"] * df["image_w"]
    assert np.allclose(df["bpp"], df["bits_source"] / pix)
    assert (df["total_bits"] == df["payload_bits"] + df["header_bits"] + df["fec_bits"] + df["rs_bits"]
            + df["link_overhead_bits"]).all()
    # index loss drops exactly round(rate·N) indices and sends the bitstream
    il = df[df["channel"] == "index_loss"]
    assert (il["lost_indices"] == (il["ch_rate"] * il["num_indices"]).round()).all()
    assert (il["total_bits"] == il["bits_source"]).all() and (il["packets_sent"] == 0).all()
    # packet channels: every packet has exactly one fate; parity only with FEC
    pk = df[df["channel_kind"] == "loss"]
    assert (pk["delivered"] + pk["channel_lost"] + pk["queue_dropped"] + pk["corrupted"] + pk["late"]
            == pk["packets_sent"]).all()
    assert ((pk["parity_packets"] > 0) == (pk["fec"] != "none")).all()
    assert (pk["recovered_fec"][pk["fec"] == "none"] == 0).all()
    # nothing lost -> the loss-free reconstruction exactly
    ok = df[df["lost_indices"] == 0]
    assert len(ok) and (ok["lpips_alex_vs_lossfree"] == 0).all() and np.isinf(ok["psnr_vs_lossfree"]).all()
    assert np.allclose(ok["lpips_alex"], ok["lossfree_lpips_alex"])
    lost = df[df["lost_indices"] > 0]
    assert len(lost) and (lost["index_error_ratio"] > 0).all() and (lost["lpips_alex_vs_lossfree"] >= 0).all()
    # methods of one unit see the same losses (paired comparison); CRN across FEC settings of a realization
    assert (df.groupby("unit_id")["lost_indices"].nunique() == 1).all()
    assert (df["loss_ratio"] == df["lost_indices"] / df["num_indices"]).all()
    # received indices are right, so the wrong ones are exactly the lost ones not recovered
    assert np.allclose(lost["index_error_ratio"], lost["loss_ratio"] * (1 - lost["concealed_exact_ratio"]))
    # "none" keeps the placeholder 0: a lost index is right only where the sent index happened to be 0
    none = lost[lost["method"] == "none"]
    assert len(none) and (none["concealed_exact_ratio"] < 1).all() and (none["index_error_ratio"] > 0).all()


def test_folder_contents_and_provenance(reference):
    out = reference.out
    for f in ("config.yaml", "provenance.json", "results.parquet", "results.csv", "summary.txt"):
        assert (out / f).stat().st_size > 0, f
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seeds"] == [0, 1] and prov["codec"]["K"] == 16 and len(prov["codec"]["sha256"]) == 64
    assert {"numpy", "torch", "pandas"} <= set(prov["packages"]) and "commit" in prov["git"]
    assert prov["runs"][-1]["status"] == "complete" and prov["runs"][-1]["trials_run"] == len(reference.results)
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(reference.results) and list(csv.columns) == list(reference.results.columns)
    assert list(reference.results.columns)[-1].startswith("time_")
    assert (out / "cache" / "encode").is_dir() and len(list((out / "cache" / "encode").glob("*.npz"))) == 4
    ex = reference.results["example_dir"]
    assert (ex != "").any() and all((out / d / "lost.png").exists() for d in ex[ex != ""].unique())


def test_rerun_skips_everything(reference, tiny_config):
    res = run_sweep(tiny_config(), reference.out, progress=False, log=quiet)
    assert res.n_run == 0 and res.n_skipped == reference.n_planned
    pd.testing.assert_frame_equal(det(res.results), det(reference.results))


def test_resume_after_max_trials_equals_uninterrupted_run(tmp_path, tiny_config, reference):
    out = tmp_path / "resumed"
    part = run_sweep(tiny_config(), out, max_trials=40, progress=False, log=quiet)
    assert not part.complete and 40 <= part.n_run < reference.n_planned
    assert len(part.results) == part.n_run
    rest = run_sweep(tiny_config(), out, progress=False, log=quiet)
    assert rest.complete and rest.n_skipped == part.n_run and rest.n_run == reference.n_planned - part.n_run
    assert rest.results["trial_id"].is_unique
    pd.testing.assert_frame_equal(det(rest.results), det(reference.results), check_exact=True)
    # consolidated in plan order, independent of how the work was split
    assert list(rest.results["trial_id"]) == list(reference.results["trial_id"])


def test_crash_mid_sweep_then_resume(tmp_path, tiny_config, reference):
    out = tmp_path / "crashed"
    calls = []

    def boom(done, pending):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed after the third chunk

    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_config(), out, on_chunk=boom, progress=False, log=quiet)
    stored = ResultStore(out).load()
    assert 0 < len(stored) < reference.n_planned and stored["trial_id"].is_unique
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["runs"][-1]["status"] == "interrupted"
    res = run_sweep(tiny_config(), out, progress=False, log=quiet)
    assert res.n_skipped == len(stored) and res.complete
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)


def test_other_seeds_change_the_draws(tmp_path, tiny_config, reference):
    cfg = tiny_config()
    cfg["seeds"] = [7]
    cfg["codec"]["codebook_sizes"] = [16]
    res = run_sweep(cfg, tmp_path / "s7", progress=False, log=quiet)
    ref = reference.results
    a = res.results[res.results["ch_rate"] == 0.3].sort_values(["image", "method"])
    b = ref[(ref["ch_rate"] == 0.3) & (ref["seed"] == 0) & (ref["codebook_size"] == 16)]
    b = b.sort_values(["image", "method"])
    assert len(a) == len(b) and not set(a["trial_id"]) & set(b["trial_id"])
    assert (a["lost_indices"].to_numpy() == b["lost_indices"].to_numpy()).all()  # same count …
    assert not np.array_equal(a["index_error_ratio"].to_numpy(), b["index_error_ratio"].to_numpy())  # … other positions


def test_changed_config_refuses_the_old_folder(tiny_config, reference):
    cfg = tiny_config()
    cfg["seeds"] = [0, 1, 2]
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(cfg, reference.out, progress=False, log=quiet)


def small(tiny_config):
    cfg = tiny_config()
    cfg["codec"]["codebook_sizes"] = [16]
    cfg["images"]["limit"] = 1
    return cfg


@pytest.fixture(scope="module")
def ref_subset(tmp_path_factory, tiny_config):
    """The rows of the one-image, one-size sweep, computed in this process (once: three tests compare with it)."""
    return run_sweep(small(tiny_config), tmp_path_factory.mktemp("one") / "one", progress=False, log=quiet).results


def test_two_worker_threads_give_identical_rows(tmp_path, tiny_config, ref_subset):
    base = ref_subset
    res = run_sweep(small(tiny_config), tmp_path / "w2", workers=2, progress=False, log=quiet)
    assert res.complete
    pd.testing.assert_frame_equal(det(res.results), det(base), check_exact=True)
    assert list(res.results["trial_id"]) == list(base["trial_id"])


def test_dask_local_cluster(tmp_path, tiny_config, ref_subset):
    pytest.importorskip("dask.distributed")
    base = ref_subset
    res = run_sweep(
        small(tiny_config),
        tmp_path / "dask",
        executor="dask",
        workers=2,
        progress=False,
        log=quiet,
        dask_cluster_kwargs={"processes": False},
    )
    assert res.complete and res.n_run == len(base)
    pd.testing.assert_frame_equal(det(res.results), det(base), check_exact=True)


def test_plots_from_results(reference):
    from experiments.plots import make_plots

    rep = make_plots(reference.out, formats=("png",), dpi=50)
    names = {p.stem for p in rep.files}
    assert {"lpips_vs_loss", "fec_vs_concealment", "burst_effect", "rate_distortion"} <= names
    assert any(n.startswith("grid_") for n in names)
    for p in rep.files:
        assert p.exists() and p.stat().st_size > 500
    assert (reference.out / "plots" / "README.txt").exists()


def test_plots_skip_what_the_data_cannot_support(tmp_path, reference):
    from experiments.plots import make_plots

    df = reference.results
    one = df[(df["channel_label"] == "bernoulli(p=0.2)") & (df["codebook_size"] == 16) & (df["fec"] == "none")]
    store = ResultStore(tmp_path / "one")
    store.append(one.to_dict("records"))
    rep = make_plots(tmp_path / "one", formats=("png",), dpi=50)
    text = " ".join(rep.skipped)
    for fig in ("lpips_vs_loss", "fec_vs_concealment", "burst_effect", "rate_distortion"):
        assert fig in text
    assert "failed" not in text


def test_mean_ci_is_the_t_interval():
    from scipy import stats

    from experiments.plots import mean_ci

    v = [0.1, 0.3, 0.2, 0.4]
    m, lo, hi, n = mean_ci(v + [math.nan])
    h = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) / 2
    assert n == 4 and math.isclose(m, 0.25) and math.isclose(hi - m, h) and math.isclose(m - lo, h)
    assert mean_ci([0.5])[1:3] == (0.5, 0.5)


def test_progress_line(capsys):
    import io

    buf = io.StringIO()
    bar = progress_bar(10, stream=buf)
    bar.update(5)
    line = buf.getvalue()
    assert "5/10 trials" in line and "50.0%" in line and "ETA" in line


def test_cli_sweep_and_plot(tmp_path, tiny_config, capsys):
    import yaml

    from experiments.cli import main

    cfg = small(tiny_config)
    cfg["channels"] = [{"model": "index_loss", "rate": [0.0, 0.2, 0.4]}]
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "cli"
    assert main(["sweep", str(f), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "mean lpips_alex" in text and "latent_avg" in text and "complete" in text
    assert main(["plot", str(out), "--formats", "png"]) == 0
    assert (out / "plots" / "lpips_vs_loss.png").stat().st_size > 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**cfg, "fec": [{"n": 3, "k": 5}]}))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "fec[0]" in err and "1 ≤ k < n ≤ 255" in err


def test_transformer_methods_from_path_templates(tmp_path, tiny_config):
    """ar / bidir run with models named by concealment.models (tiny random GPTs: plumbing, not quality)."""
    import torch

    from codec.conceal import GPT, GPTConfig, save_transformer

    torch.manual_seed(0)
    for kind, causal in (("ar", True), ("bidir", False)):
        gpt = GPT(GPTConfig(vocab_size=17, block_size=256, n_layer=1, n_head=2, n_embd=32, causal=causal)).eval()
        save_transformer(tmp_path / f"gpt_{kind}_16.pt", gpt)
    cfg = small(tiny_config)
    cfg["channels"] = [{"model": "index_loss", "rate": [0.25]}]
    cfg["seeds"] = [0]
    cfg["concealment"] = {
        "methods": ["ar", "bidir", "none"],
        "models": {k: str(tmp_path / f"gpt_{k}_{{size}}.pt") for k in ("ar", "bidir")},
    }
    res = run_sweep(cfg, tmp_path / "gpt", progress=False, log=quiet)
    df = res.results.set_index("method")
    assert res.complete and list(df.index) == ["ar", "bidir", "none"]
    n = round(0.25 * df["num_indices"].iloc[0])
    assert (df["lost_indices"] == n).all()
    # the wrong indices are the lost ones each method did not recover (received indices untouched)
    for m in ("ar", "bidir", "none"):
        assert df.loc[m, "index_error_ratio"] == pytest.approx(
            n / df["num_indices"].iloc[0] * (1 - df.loc[m, "concealed_exact_ratio"])
        )
    assert np.isfinite(df["lpips_alex"]).all()


def test_structural_metrics_can_be_switched_off(tmp_path, tiny_config, ref_subset):
    base = ref_subset
    cfg = small(tiny_config)
    cfg["metrics"]["structural"] = False
    res = run_sweep(cfg, tmp_path / "nostruct", progress=False, log=quiet).results
    assert "ssim" not in res.columns and "ssim" in base.columns
    keys = ["image", "channel_label", "fec", "method", "seed"]
    keys = [k for k in keys if k in res.columns]
    a, b = res.sort_values(keys).reset_index(drop=True), base.sort_values(keys).reset_index(drop=True)
    for col in ("lpips_alex", "psnr", "lpips_alex_vs_lossfree", "loss_ratio"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    bad = tiny_config()
    bad["metrics"]["structural"] = "yes"
    with pytest.raises(Exception, match="metrics.structural"):
        run_sweep(bad, tmp_path / "bad", progress=False, log=quiet)

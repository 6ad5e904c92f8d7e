"""``vqsim bench``: the quick bench through the real CLI, section isolation, helpers."""
from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from experiments import bench  # noqa: E402
from experiments.cli import main  # noqa: E402

ALL = list(bench.SECTIONS)


def _positive_numbers(summary: dict) -> None:
    assert summary, "empty summary"
    for k, v in summary.items():
        assert isinstance(v, (int, float)) and not isinstance(v, bool), (k, v)
        assert math.isfinite(v) and v > 0, (k, v)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick bench of every section on CPU, 1 torch thread (restored afterwards)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:
        rc = main(["bench", "--quick", "--device", "cpu", "--threads", "1", "--only", ",".join(ALL),
                   "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return rc, json.loads(out.read_text())


def test_quick_bench_has_every_section_with_positive_numbers(quick):
    rc, res = quick
    assert rc == 0
    assert list(res["sections"]) == ALL
    for name, sec in res["sections"].items():
        assert "error" not in sec, (name, sec.get("error"))
        _positive_numbers(sec["summary"])
        assert sec["elapsed_s"] > 0
    m = res["machine"]
    assert m["torch_threads"] == 1 and m["device"] == "cpu" and m["cpu_cores"] >= 1
    assert m["torch"] == torch.__version__ and m["cpu_model"] and m["date"]
    assert res["config"]["quick"] is True and res["config"]["repeats"] == 1


def test_quick_bench_results_are_consistent(quick):
    _, res = quick
    s = res["sections"]
    codec = s["codec"]
    H, W = codec["image_size"]
    assert (H, W) == (256, 384) and codec["index_map"] == [H // 16, W // 16]
    for c in codec["coders"].values():  # bpp is 8·bytes / pixels
        assert c["bpp"] == pytest.approx(8 * c["bytes"] / (H * W))
    conceal = s["conceal"]
    assert conceal["all_equal"]  # batched AR reproduces the naive result
    for r in conceal["ar"]:
        assert r["ratio"] == pytest.approx(r["naive_s"] / r["fast_s"])
        assert r["n_lost"] == round(r["fraction"] * math.prod(conceal["map_shape"]))
    for code in s["fec"]["erasure"].values():
        assert code["recovered_ok"] and code.get("zfec_ok", True)
    assert s["fec"]["inpacket_rs"]["corrected_ok"]
    for m in s["channels"]["models"].values():  # 10^6 draws: empirical loss near the stationary rate
        assert abs(m["empirical_loss"] - m["stationary_loss"]) < 0.01
    sim = s["simpy"]
    assert sim["packets"] == 10 ** 4 and 0.97 * sim["packets"] < sim["delivered"] < sim["packets"]
    # paced at 9 Mbit/s: the simulated span is at least n·8·size / pacing
    assert sim["simulated_s"] >= (sim["packets"] - 1) * 8 * sim["packet_bytes"] / sim["pacing_bps"]
    train = s["train"]  # bf16 / channels-last steps follow the fp32 gradient on the same batch
    from codec.metrics import get_lpips  # and the cached metric nets were left in their layout

    assert all(p.is_contiguous() for net in ("alex", "vgg") for p in get_lpips(net, device="cpu").parameters())
    assert train["batch"] == 2 and train["crop"] == 64
    assert train["settings"]["fp32_cl"]["grad_cosine_vs_fp32"] > 0.9999  # a layout change only
    for name in ("bf16", "bf16_cl"):
        assert 0.95 < train["summary"][f"grad_cosine_{name}"] <= 1.0 + 1e-9
        assert train["summary"][f"speedup_{name}"] == pytest.approx(
            train["settings"]["fp32"]["step_s"] / train["settings"][name]["step_s"])
    trial = s["trial"]
    for m, d in trial["methods"].items():  # the old and the new code path decode the same pixels
        assert d["pixels_identical"] and trial["summary"][f"{m}_pixels_identical"] == 1
        assert d["max_metric_difference"] < 1e-5  # float32 SSIM vs the former float64 one
        for path in ("before", "after"):
            t = d[path]
            assert t["min_s"] <= t["median_s"] <= t["max_s"]
            assert sum(t["parts_median_s"].values()) <= 1.05 * t["max_s"]
        assert trial["summary"][f"{m}_speedup"] == pytest.approx(d["before"]["median_s"] / d["after"]["median_s"])


def test_failing_section_is_recorded_and_the_rest_runs(monkeypatch, capsys):
    def boom(cfg):
        raise RuntimeError("simulated failure")

    monkeypatch.setitem(bench.SECTIONS, "fec", boom)
    rc = main(["bench", "--quick", "--device", "cpu", "--only", "channels,fec"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "RuntimeError: simulated failure" in out and "Bernoulli_ratio" in out
    res = bench.run_bench(bench.BenchConfig.make(quick=True, device="cpu"), ["fec", "channels"])
    assert res["sections"]["fec"]["error"] == "RuntimeError: simulated failure"
    _positive_numbers(res["sections"]["channels"]["summary"])


def test_parse_only_and_bad_options(capsys):
    assert bench.parse_only(None) == ALL
    assert bench.parse_only("trial, codec") == ["codec", "trial"]  # SECTIONS order
    with pytest.raises(bench.BenchError, match="unknown bench section"):
        bench.parse_only("codec,gpu")
    assert main(["bench", "--only", "nope"]) == 2
    assert "unknown bench section" in capsys.readouterr().err
    assert main(["bench", "--quick", "--repeats", "0", "--only", "channels"]) == 2
    assert "repeats" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda", "--only", "channels"]) == 2
        assert "cuda" in capsys.readouterr().err


def test_time_calls_counts_warmup_and_repeats():
    calls = []
    ts = bench.time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(ts) == 3 and all(t >= 0 for t in ts)
    assert bench.median_s(lambda: None, 3) >= 0


def test_bench_image_is_resized_to_the_requested_size():
    img, src = bench.load_bench_image((64, 96))
    assert img.shape == (64, 96, 3) and img.dtype.name == "uint8" and src


def test_format_table_lists_every_summary_metric(quick):
    _, res = quick
    table = bench.format_table(res)
    for _name, sec in res["sections"].items():
        for key in sec["summary"]:
            assert key in table
    assert res["machine"]["cpu_model"] in table


def test_benchmark_ar_small():
    from codec.conceal import GPT

    torch.manual_seed(0)  # a small random causal GPT: vocab 64 codewords + [mask], block 64
    m = GPT(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32, causal=True)
    with torch.no_grad():
        m.pos_emb.normal_(0.0, 0.02)
    res = bench.benchmark_ar(model=m.eval(), fractions=(0.3,), shape=(12, 20), window=8)
    (r,) = res
    assert r["equal"] and r["n_lost"] == 72 and r["naive_s"] > 0 and r["fast_s"] > 0
    assert r["ratio"] == pytest.approx(r["naive_s"] / r["fast_s"])
    assert r["tokens_fast"] < r["tokens_naive"]

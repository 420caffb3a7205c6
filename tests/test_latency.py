"""Tests of igkd_lib.bench.latency, igkd_lib.bench.variants and igkd_lib.book.plots.latency (no timing asserted)."""
import json

import pytest
import torch
from torch import nn

from igkd_lib import models
from igkd_lib.bench import latency
from igkd_lib.bench.variants import check_equal, fold_batchnorm, randomise_batchnorm, variants
from igkd_lib.config import make_config


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tests check values, not speed, and the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"teacher": randomise_batchnorm(models.teacher(), 1), "student": randomise_batchnorm(models.student(5), 2)}


@pytest.fixture(scope="module")
def example():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_fold_batchnorm_exact_and_complete(nets, example, name):
    model = nets[name]
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.inference_mode():
        reference, output = model(example), folded(example)
    assert (output - reference).abs().max().item() <= 1e-4
    assert models.count_parameters(folded) < models.count_parameters(model)


def test_fold_pair_matches_formula():
    conv, norm = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
    randomise_batchnorm(nn.Sequential(conv, norm))
    sequence = nn.Sequential(conv, norm).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = sequence(x)
        folded = fold_batchnorm(sequence)
        assert isinstance(folded[1], nn.Identity) and folded[0].bias is not None
        assert torch.allclose(folded(x), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_every_variant_equals_eager(nets, example, name):
    found = variants(nets[name], example, compile=False)
    assert {"eager", "channels_last", "bn_folded", "bn_folded_channels_last"} <= set(found)
    assert "onnxruntime" in found, found.unavailable
    assert found.unavailable["compiled"].startswith("unavailable:")
    report = check_equal(found, example)
    assert all(r["equal"] for r in report.values()), report


@pytest.mark.slow
def test_compiled_variant_equals_eager_or_is_reported():
    model = randomise_batchnorm(models.student(17))
    x = torch.rand(1, 3, 32, 32)
    found = variants(model, x, onnx=False, compile_timeout=120)
    if "compiled" in found:
        assert check_equal(found, x)["compiled"]["equal"]
    else:
        assert found.unavailable["compiled"].startswith("unavailable:")


def test_check_equal_can_fail(nets, example):
    model = nets["student"]
    report = check_equal({"eager": model, "wrong": lambda x: model(x) + 1e-2}, example)
    assert report["eager"]["equal"] and not report["wrong"]["equal"]
    with pytest.raises(ValueError, match="eager"):
        check_equal({"other": model}, example)


def test_measure_returns_sane_fields():
    model = models.student(17)
    result = latency.measure(model, 4, "cpu", repeats=5, warmup=1, threads=1)
    assert result["q1_ms"] <= result["median_ms"] <= result["q3_ms"]
    assert result["median_ms"] > 0 and result["iqr_ms"] >= 0
    assert result["throughput"] == pytest.approx(4 * 1e3 / result["median_ms"])
    assert result["threads"] == 1 and result["batch_size"] == 4 and result["repeats"] == 5
    assert "CPU" in result["device"] and "1 threads" in result["device"]  # labelled while timing


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_bad_batch_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="batch_size"):
        latency.measure(models.student(17), bad, repeats=1, warmup=0)


def test_bad_repeats_and_threads_are_clear_errors():
    with pytest.raises(ValueError, match="repeats"):
        latency.measure(models.student(17), 1, repeats=0)
    with pytest.raises(ValueError, match="threads"):
        latency.measure(models.student(17), 1, repeats=1, threads=0)


def test_threads_restored_after_measure():
    before = torch.get_num_threads()
    latency.measure(models.student(17), 1, repeats=1, warmup=0, threads=1)
    assert torch.get_num_threads() == before


def test_cold_forward_fields_and_order():
    result = latency.cold_forward(models.student(15), models.student(17), order="student_first")
    assert result["teacher_ms"] > 0 and result["student_ms"] > 0
    assert result["speedup"] == pytest.approx(result["teacher_ms"] / result["student_ms"])
    with pytest.raises(ValueError, match="order"):
        latency.cold_forward(models.student(17), models.student(17), order="both")


@pytest.fixture(scope="module")
def small_sweep():
    config = make_config("smoke", device="cpu")
    return latency.sweep(config, batch_sizes=(1, 2), repeats=2, warmup=0, cuts=(5, 17), threads=1, progress=False)


def test_sweep_rows_and_ratio(small_sweep):
    table = small_sweep
    assert len(table) == 3 * 2 and set(table.batch_size) == {1, 2}
    teacher = table[table.model == "teacher"].iloc[0]
    assert teacher.parameters == 2_236_682 and teacher.macs > 0
    student = table[table.model == "student cut 5"].iloc[0]
    assert student.parameters == models.STUDENT_PARAMETERS[5]
    ratio = latency.student_teacher_ratio(table, cut=5)
    assert ratio["macs_ratio"] == pytest.approx(teacher.macs / student.macs)
    assert 1.2 < ratio["macs_ratio"] < 2.0  # the student keeps the high-resolution blocks
    with pytest.raises(ValueError, match="cut"):
        latency.student_teacher_ratio(table, cut=9)


def test_save_results_writes_csv_and_provenance(small_sweep, tmp_path):
    config = make_config("smoke", device="cpu")
    path = latency.save_results(small_sweep, config, folder=tmp_path, stem="cpu_test")
    assert path.exists() and path.with_suffix(".json").exists()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["profile"] == "smoke" and meta["threads"] == [1] and "commit" in meta


def test_plots_and_paper_table(small_sweep):
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from igkd_lib.book.plots import latency as plots

    figure = plots.plot_sweep(small_sweep, caption="test")
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in figure.axes)
    frame = pd.DataFrame({"model": ["teacher", "teacher", "student", "student"], "status": "ok",
                          "variant": ["eager", "onnxruntime"] * 2, "median_ms": [8.0, 2.7, 5.5, 1.9],
                          "q1_ms": [7.9, 2.6, 5.4, 1.8], "q3_ms": [8.1, 2.8, 5.6, 2.0]})
    bars = plots.plot_variants(frame)  # issue 15: one latency axis, so the ONNX teacher is read against the student
    assert bars.axes[0].get_ylim() == bars.axes[1].get_ylim()
    cold = latency.cold_forward(models.teacher(), models.student(5))
    table = plots.paper_comparison(small_sweep, cold, cut=5)
    assert table.iloc[0]["teacher_ms"] == 140.0 and "device" in table
    assert table.speedup.iloc[-1] == pytest.approx(latency.student_teacher_ratio(small_sweep, 5)["speedup"])


def test_compile_that_takes_too_long_is_reported_not_raised():
    torch._dynamo.reset()  # an earlier compilation of the same class would be reused within the deadline
    x = torch.rand(1, 3, 32, 32)
    found = variants(models.student(17), x, onnx=False, compile_timeout=1e-4)  # far below even a cached compile
    assert "compiled" not in found
    reason = found.unavailable["compiled"]
    assert reason.startswith("unavailable:") and "TimeoutError" in reason
    assert check_equal(found, x)["eager"]["equal"]  # what remains still works

"""igkd_lib.campaign.engine: a probe's figures become config overrides, the first ingested choice stays,
and a window trains with the committed choice."""
from pathlib import Path

import torch

from igkd_lib.campaign import engine, window
from igkd_lib.campaign.results import WindowResults
from igkd_lib.config import make_config


def _probe(grouped=500.0, serial=100.0, compiled=None):
    trainers = [{"design": "single, sync-free", "layout": None, "students_images_per_s": 90.0},
                {"design": "wide N=8 grouped", "layout": "grouped", "students_images_per_s": grouped},
                {"design": "wide N=4 serial", "layout": "serial", "students_images_per_s": serial}]
    rows = [{"train_compile": "none", "ran": "none", "students_images_per_s": 500.0}]
    for name, (ran, speed) in (compiled or {}).items():
        rows.append({"train_compile": name, "ran": ran, "students_images_per_s": speed})
    return {"trainers": trainers, "compile": rows}


def test_the_defaults_win_unless_something_measures_faster():
    assert engine.choose(_probe(), "cuda", "w1")["settings"] == {}
    assert engine.choose(_probe(grouped=80.0), "cuda", "w1")["settings"] == {"wide_layout": "serial"}
    assert engine.choose(_probe(grouped=80.0), "cpu", "w1")["settings"] == {}  # serial is the CPU's default


def test_a_compiled_step_needs_the_margin_and_must_have_run_as_itself():
    fast = engine.choose(_probe(compiled={"compile": ("compile", 540.0), "cudagraph": ("cudagraph", 600.0)}),
                         "cuda", "w1")
    assert fast["settings"] == {"train_compile": "cudagraph"} and "train_compile=cudagraph: 600" in fast["basis"][1]
    slight = engine.choose(_probe(compiled={"compile": ("compile", 515.0)}), "cuda", "w1")
    assert slight["settings"] == {}  # 3 % is within the probe's noise
    fell_back = engine.choose(_probe(compiled={"cudagraph": ("none", 900.0)}), "cuda", "w1")
    assert fell_back["settings"] == {}  # it measured eager


def test_the_graph_engine_needs_the_margin_over_the_fastest_compile_choice():
    probe = _probe(compiled={"cudagraph": ("cudagraph", 600.0)})
    probe["engines"] = [{"design": "graph engine", "ran": "cudagraph", "members": 8, "students_images_per_s": 660.0}]
    chosen = engine.choose(probe, "cuda", "w1")
    assert chosen["settings"] == {"train_engine": "graph"} and "graph engine: 660" in chosen["basis"][-1]
    assert "train_engine" not in engine.choose(probe, "cpu", "w1")["settings"]  # CPU: it runs eagerly there
    probe["engines"][0]["students_images_per_s"] = 615.0  # 2.5 % faster: within the probe's noise
    assert engine.choose(probe, "cuda", "w1")["settings"] == {"train_compile": "cudagraph"}
    probe["trainers"].append({"design": "graph N=8", "layout": "grouped", "engine": "graph",
                              "students_images_per_s": 9e9})  # the graph rows never choose a wide layout
    assert engine.choose(probe, "cuda", "w1")["basis"][0].startswith("fastest wide design: wide N=8 grouped")


def test_the_first_ingested_engine_stays(tmp_path):
    assert engine.read_engine(tmp_path, "paper") is None and engine.read_engine(None, "paper") is None
    first = {"settings": {"train_compile": "compile"}, "window": "w1", "basis": []}
    assert "from window w1" in engine.keep_engine(tmp_path, "paper", first)
    said = engine.keep_engine(tmp_path, "paper", {"settings": {}, "window": "w2", "basis": []})
    assert said == "kept the engine of window w1 (this one chose {})"
    assert engine.read_engine(tmp_path, "paper") == first


def test_a_window_trains_with_the_committed_engine(tmp_path):
    engine.keep_engine(tmp_path / "results", "smoke",
                       {"settings": {"wide_layout": "grouped"}, "window": "w1", "basis": []})
    options = window.WindowOptions(out=tmp_path / "out", work=tmp_path / "work", teacher_weights=tmp_path / "t.pt",
                                   resume_dir=tmp_path / "resume", results_dir=tmp_path / "results")
    config = make_config("smoke", device="cpu", cache_dir=str(tmp_path))
    results = WindowResults(Path(options.out), {"window": "w2", "probe": _probe(grouped=1.0)})
    used = window._engine(config, options, results, torch.device("cpu"))  # its probe would choose serial
    assert used.wide_layout == "grouped" and results.meta["layout"] == "grouped"
    assert results.meta["engine"]["window"] == "w1" and results.meta["config"]["wide_layout"] == "grouped"

"""igkd_lib.campaign.engine: a probe's figures become config overrides, the first ingested choice stays,
and a window trains with the committed choice."""
from pathlib import Path

import pytest
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


def test_the_teacher_engine_follows_its_own_measurement():
    probe = _probe()
    assert "teacher_engine" not in engine.choose(probe, "cuda", "w1")["settings"]  # an installed teacher: no rows
    probe["teacher"] = [{"engine": "loop", "ran": "none", "images_per_s": 10_000.0},
                        {"engine": "graph", "ran": "cudagraph", "images_per_s": 41_000.0}]
    chosen = engine.choose(probe, "cuda", "w1")
    assert chosen["settings"] == {"teacher_engine": "graph"}
    assert "teacher training: graph engine 41000 (ran cudagraph) vs loop 10000 images/s" in chosen["basis"]
    assert engine.check_engine(chosen, "engine.json") is chosen
    assert "teacher_engine=graph" in chosen["candidates"]
    assert "teacher_engine" not in engine.choose(probe, "cpu", "w1")["settings"]  # eager there: nothing to gain
    probe["teacher"][1]["images_per_s"] = 10_300.0  # 3 % faster: within the probe's noise
    assert "teacher_engine" not in engine.choose(probe, "cuda", "w1")["settings"]
    with pytest.raises(ValueError, match="settings.teacher_engine='fast' is not allowed"):
        engine.check_engine({**chosen, "settings": {"teacher_engine": "fast"}}, "engine.json")


def test_the_first_ingested_engine_stays(tmp_path):
    assert engine.read_engine(tmp_path, "paper") is None and engine.read_engine(None, "paper") is None
    first = {"settings": {"train_compile": "compile"}, "window": "w1", "basis": [], "candidates": engine.candidates()}
    assert "from window w1" in engine.keep_engine(tmp_path, "paper", first)
    said = engine.keep_engine(tmp_path, "paper", {"settings": {}, "window": "w2", "basis": [],
                                                  "candidates": engine.candidates()})
    assert said == "kept the engine of window w1 (this one chose {})"
    assert engine.read_engine(tmp_path, "paper") == first


def test_a_choice_made_among_other_candidates_is_probed_again_and_replaced(tmp_path):
    from igkd_lib.campaign import prepare

    old = {"settings": {"train_compile": "cudagraph"}, "window": "w1", "basis": []}  # before candidates were kept
    engine.keep_engine(tmp_path, "paper", old)
    (tmp_path / "paper" / "windows").mkdir(parents=True)
    (tmp_path / "paper" / "windows" / "w1.json").write_text('{"probe": {}}')
    assert not engine.current(old) and prepare.probe_needed(tmp_path)  # probed, but among other candidates
    new = engine.choose(_probe(), "cuda", "w2")
    assert engine.current(new) and new["candidates"] == engine.candidates()
    assert "layout=member" in new["candidates"] and "engine=graph" in new["candidates"]
    said = engine.keep_engine(tmp_path, "paper", new)
    assert said == "engine defaults from window w2, in place of window w1's {'train_compile': 'cudagraph'} (chosen " \
                   "among other candidates)"
    assert engine.read_engine(tmp_path, "paper") == new and not prepare.probe_needed(tmp_path)
    assert engine.keep_engine(tmp_path, "paper", old).startswith("kept the engine of window w2")  # never back


def test_the_graph_engine_may_win_in_the_member_major_layout_and_is_accepted_at_ingest():
    probe = _probe(compiled={"cudagraph": ("cudagraph", 600.0)})
    probe["engines"] = [{"design": "graph engine", "ran": "cudagraph", "members": 8, "layout": "grouped",
                         "students_images_per_s": 700.0},
                        {"design": "graph engine, member-major", "ran": "cudagraph", "members": 8, "layout": "member",
                         "students_images_per_s": 900.0}]
    chosen = engine.choose(probe, "cuda", "w1")
    assert chosen["settings"] == {"train_engine": "graph", "wide_layout": "member"}
    assert engine.check_engine(chosen, "window.json: engine") is chosen
    probe["engines"][1]["students_images_per_s"] = 650.0  # the grouped graph engine is the faster one
    assert engine.choose(probe, "cuda", "w1")["settings"] == {"train_engine": "graph"}
    with pytest.raises(ValueError, match=r"settings.train_engine='rows' is not allowed"):
        engine.check_engine({**chosen, "settings": {"train_engine": "rows"}}, "window.json: engine")


def test_a_window_trains_with_the_committed_engine(tmp_path):
    engine.keep_engine(tmp_path / "results", "smoke", {"settings": {"wide_layout": "grouped"}, "window": "w1",
                                                        "basis": [], "candidates": engine.candidates()})
    options = window.WindowOptions(out=tmp_path / "out", work=tmp_path / "work", teacher_weights=tmp_path / "t.pt",
                                   resume_dir=tmp_path / "resume", results_dir=tmp_path / "results")
    config = make_config("smoke", device="cpu", cache_dir=str(tmp_path))
    results = WindowResults(Path(options.out), {"window": "w2", "probe": _probe(grouped=1.0)})
    used = window._engine(config, options, results, torch.device("cpu"))  # its probe would choose serial
    assert used.wide_layout == "grouped" and results.meta["layout"] == "grouped"
    assert results.meta["engine"]["window"] == "w1" and results.meta["config"]["wide_layout"] == "grouped"
    stale = {"settings": {"wide_layout": "grouped"}, "window": "w0", "basis": []}  # chosen among other candidates
    (tmp_path / "results" / "smoke" / engine.ENGINE_FILE).write_text(__import__("json").dumps(stale))
    results = WindowResults(Path(options.out), {"window": "w3", "probe": _probe(grouped=1.0)})
    used = window._engine(config, options, results, torch.device("cpu"))  # this window's own probe decides
    assert results.meta["layout"] == "serial" and results.meta["engine"]["window"] == "w3"


def _fake_gpu_probe(tmp_path, monkeypatch, fail=(), graph_speed=1.0):
    """The probe on a pretend CUDA device with faked measurements (``fail``: what raises; eager wide trains 100
    students·images/s, the graph engine ``graph_speed``); what each call was asked."""
    from igkd_lib.bench import campaign as bench_campaign
    from igkd_lib.bench import teacher_engines

    calls = {"run": [], "engines": [], "teacher": [], "compile": []}

    def fake_compile(config, members, **kw):
        calls["compile"].append({"members": members, **kw})
        return [{"train_compile": c, "ran": c, "members": members, "layout": kw["layout"],
                 "students_images_per_s": 100.0 if c == "none" else 140.0} for c in kw["choices"]]

    def fake_run(config, **kw):
        calls["run"].append(kw)
        if kw["layouts"][0] in fail:
            raise RuntimeError(f"{kw['layouts'][0]} does not run here")
        return [{"design": f"wide N={n} {layout}", "students": n, "layout": layout, "engine": "wide",
                 "students_images_per_s": float(n), "device_type": "cuda"}
                for layout in kw["layouts"] for n in kw["sizes"]]

    def fake_engines(config, members, **kw):
        calls["engines"].append({"members": members, **kw})
        if kw["designs"][0] in fail:
            raise RuntimeError("capture failed")
        return [{"design": kw["designs"][0], "members": members, "students_images_per_s": graph_speed,
                 "ran": "cudagraph", "layout": "grouped"}]

    def fake_teacher(config, steps, engines):
        calls["teacher"].append((steps, engines))
        if engines[0] in fail:
            raise RuntimeError("no fused SGD here")
        return [{"engine": engines[0], "images_per_s": 1.0, "ran": "cudagraph"}]

    monkeypatch.setattr(bench_campaign, "run", fake_run)
    monkeypatch.setattr(bench_campaign, "ratio_lines", lambda rows: [])
    monkeypatch.setattr(bench_campaign, "engine_lines", lambda rows, today: [])
    monkeypatch.setattr(bench_campaign, "compile_rows", fake_compile)
    monkeypatch.setattr(bench_campaign, "engine_rows", fake_engines)
    monkeypatch.setattr(teacher_engines, "rows", fake_teacher)
    monkeypatch.setattr(teacher_engines, "lines", lambda rows: [])
    monkeypatch.setattr(window, "resolve_device", lambda choice: torch.device("cuda"))
    options = window.WindowOptions(out=tmp_path / "out", work=tmp_path / "work", teacher_weights=tmp_path / "t.pt",
                                   resume_dir=tmp_path / "resume", results_dir=tmp_path / "results")
    return window._probe(make_config("smoke", device="cpu", cache_dir=str(tmp_path)), options, teacher=True), calls


def test_a_gpu_probe_measures_the_candidates_and_nothing_else(tmp_path, monkeypatch):
    """On CUDA the probe measures the layouts, sizes and compile choices the engine is chosen among (the figures
    are faked here: what is checked is what would be measured), and no 1x1-kernel sweep."""
    from igkd_lib.bench import campaign as bench_campaign

    probe, calls = _fake_gpu_probe(tmp_path, monkeypatch)
    assert probe["pointwise"] is None and probe["failed"] == []
    assert [c["layouts"] for c in calls["run"]] == [("grouped",), ("member",)] and engine.PROBE_LAYOUTS == (
        "grouped", "member")
    assert [c["singles"] for c in calls["run"]] == [True, False]  # the single runs once
    assert all(c["sizes"] == engine.PROBE_SIZES and c["graph_sizes"] == () for c in calls["run"])
    assert all(c["steps"] == engine.PROBE_STEPS == 24 for c in calls["run"])  # 40 by default: it must fit 60 s
    assert calls["compile"] == [{"members": 32, "steps": 24, "choices": (choice,), "layout": "grouped"}
                                for choice in engine.PROBE_COMPILES]  # the graph engine (1) could not beat it
    assert [c["designs"] for c in calls["engines"]] == [(bench_campaign.GRAPH,), (bench_campaign.GRAPH_MEMBER,)]
    assert calls["teacher"] == [(24, ("loop",)), (24, ("graph",))]  # the unfinished teacher's engines
    compiles = [c for c in engine.candidates() if c.startswith("compile")]
    assert compiles == [f"compile={c}" for c in engine.PROBE_COMPILES]


def test_a_design_that_fails_on_the_device_is_left_out_and_the_window_goes_on(tmp_path, monkeypatch, capsys):
    """The GPU paths first run in a window: one that raises is recorded and left out of the choice."""
    from igkd_lib.bench import campaign as bench_campaign

    probe, _ = _fake_gpu_probe(tmp_path, monkeypatch, fail=("member", bench_campaign.GRAPH_MEMBER, "graph"))
    assert [f["what"] for f in probe["failed"]] == ["wide member layout", bench_campaign.GRAPH_MEMBER,
                                                   "teacher graph engine"]
    assert [row["design"] for row in probe["engines"]] == [bench_campaign.GRAPH]
    assert [row["engine"] for row in probe["teacher"]] == ["loop"] and "capture failed" in capsys.readouterr().err
    assert "teacher_engine" not in engine.choose(probe, "cuda", "w1")["settings"]  # only the loop was measured
    probe, _ = _fake_gpu_probe(tmp_path, monkeypatch, fail=("grouped", "member"))
    chosen = engine.choose(probe, "cuda", "w1")  # nothing wide ran: the defaults, for this window only
    assert chosen["settings"] == {} and not engine.current(chosen) and probe["engines"] == []


def test_a_compiled_step_is_not_measured_once_the_graph_engine_is_out_of_its_reach(tmp_path, monkeypatch):
    """Compiling has added at most 1.40x over eager on the H200: a graph engine at 1.6x eager (more than 1.5 x the 5 %
    margin) needs no compiled rival, which saves the probe's longest part."""
    probe, calls = _fake_gpu_probe(tmp_path, monkeypatch, graph_speed=160.0)
    assert [c["choices"] for c in calls["compile"]] == [("none",)]
    assert probe["skipped"][0]["what"] == "train_compile=cudagraph" and "1.60x eager" in probe["skipped"][0]["why"]
    chosen = engine.choose(probe, "cuda", "w1")
    assert chosen["settings"] == {"train_engine": "graph"}
    assert any(line.startswith("train_compile=cudagraph not measured") for line in chosen["basis"])
    probe, calls = _fake_gpu_probe(tmp_path, monkeypatch, graph_speed=150.0)  # 1.5x: compiling could still win
    assert [c["choices"] for c in calls["compile"]] == [("none",), ("cudagraph",)] and probe["skipped"] == []

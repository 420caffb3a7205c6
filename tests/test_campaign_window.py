"""The campaign window end to end on the CPU (--tiny: the device's code path at smoke size), then ingest.

Runs with the registry-free imports of the device machine: pandas, scipy, captum, matplotlib and
seaborn are blocked in the window's process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from igkd_lib.campaign.ingest import read_runs
from igkd_lib.data.cifar10 import find_offline_copy

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("pandas", "scipy", "captum", "matplotlib", "seaborn")
_RUN = ("import sys; sys.modules.update({name: None for name in %r}); from igkd_lib.cli import main; "
        "sys.exit(main(sys.argv[1:]))" % (BLOCKED,))


def _campaign(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IGKD_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", _RUN, "campaign", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(find_offline_copy() is None, reason="the offline CIFAR-10 copy is not beside the repository")
def test_tiny_window_then_ingest(tmp_path):
    out, work, results = tmp_path / "out", tmp_path / "work", tmp_path / "results"
    common = ["--work", str(work), "--results", str(results)]
    run = _campaign("--tiny", "--probe", "--budget-s", "1800", "--max-runs", "2", "--out", str(out),
                    "--commit", "abc123", *common)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.rstrip().splitlines()[-1].startswith("budget (s)")  # the summary is printed last
    assert "runs finished" in run.stdout and "students·images/s" in run.stdout
    meta = json.loads((out / "window.json").read_text())
    assert meta["tiny"] and meta["commit"] == "abc123" and meta["precision"] == "fp32" and meta["trainer"] == "wide"
    assert meta["teacher"]["status"] == "finished" and meta["summary"]["runs finished"] == 2
    probe = meta["probe"]  # the kernel and trainer measurements, made with the window's blocked imports
    assert [row["members"] for row in probe["pointwise"]] == [1, 2]
    assert [row["design"] for row in probe["trainers"]] == ["single, per-step sync", "single, sync-free",
                                                            "wide N=1 serial", "wide N=2 serial",
                                                            "wide N=1 member", "wide N=2 member",
                                                            "graph N=1", "graph N=2"]
    assert [row["design"] for row in probe["engines"]] == ["graph engine", "graph engine, member-major"]
    assert "probe: graph engine (serial) / " in run.stdout
    assert "probe: graph engine, member-major (member) / " in run.stdout
    assert meta["layout"] == "serial" and probe["compile"][0]["layout"] == "serial"
    assert meta["engine"]["window"] == meta["window"] and meta["engine"]["settings"] == {}  # the CPU's defaults won
    assert [row["train_compile"] for row in probe["compile"]] == ["none"] and "probe: N=1:" in run.stdout
    # the teacher was unfinished: the probe timed its two engines; on a CPU the loop stays (nothing to capture)
    assert [row["engine"] for row in probe["teacher"]] == ["loop", "graph"]
    assert "probe: teacher training: graph engine (ran none) / loop = " in run.stdout
    assert meta["teacher"]["engine"] == "loop" and "teacher_engine=graph" in meta["engine"]["candidates"]
    assert len(meta["teacher"]["epoch_seconds"]) == 1  # the tiny teacher's one epoch, trained in this window
    targets = {row["figure"]: row for row in meta["targets"]}  # the GPU bar, reported (here for a CPU)
    assert targets["probe (s)"]["value"] == meta["spent"]["probe"] and "the GPU trainer's targets (a CPU" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["runs.jsonl", "studies.jsonl", "teacher.json", "teacher.pt",
                                                     "window.json"]
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["row"]["method"], r["row"]["status"]) for r in runs] == [("baseline", "complete"), ("kd", "complete")]
    assert all(len(r["log"]) == 1 and len(r["row"]["weights_sha256"]) == 64 for r in runs)
    # both Table 1 students measured on the device for chapter 8 (smoke's sizes: 8 probe images, 100 at severity 5)
    studies = [json.loads(line) for line in (out / "studies.jsonl").read_text().splitlines()]
    assert [s["run_key"] for s in studies] == [r["row"]["run_key"] for r in runs]
    assert meta["studies"]["n_probe"] == 8 and meta["studies"]["severities"] == [5] and meta["studies"]["student_s"] > 0
    assert all(s["agreement"]["n_images"] == 8 and len(s["robustness"]) == 6 * 2 for s in studies)  # 6 versions

    refused = _campaign("--ingest", str(out))  # a tiny window never goes into the committed results
    assert refused.returncode == 2 and "tiny=True does not match this command" in refused.stderr
    refused = _campaign("--ingest", str(out), "--tiny")
    assert refused.returncode == 2 and "--results DIR" in refused.stderr
    common += ["--tiny"]
    ingested = _campaign("--ingest", str(out), *common)
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    assert "runs_added: 2" in ingested.stdout and "studies_added: 2" in ingested.stdout
    assert (work / "teacher.pt").is_file()
    assert len((results / "smoke" / "studies_robustness.csv").read_text().splitlines()) == 1 + 2 * 12
    assert "the GPU trainer's targets (a CPU rehearsal" in ingested.stdout and "probe (s): " in ingested.stdout
    assert json.loads((results / "smoke" / "engine.json").read_text()) == meta["engine"]  # later windows apply it
    card = json.loads((work / "teacher.json").read_text())
    assert "device_test_accuracy" in card and "float32 CPU" in card["measured_on"]
    rows = read_runs(results / "smoke" / "runs.csv")
    assert sorted(r["run_key"] for r in rows) == sorted(r["row"]["run_key"] for r in runs)
    again = _campaign("--ingest", str(out), *common)
    assert again.returncode == 0 and "runs_added: 0" in again.stdout and "studies_added: 0" in again.stdout
    assert len(read_runs(results / "smoke" / "runs.csv")) == 2

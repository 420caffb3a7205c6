"""igkd_lib.campaign.targets: the GPU trainer's targets read from what a window measured, "not measured" where it
measured nothing."""
from igkd_lib.campaign.targets import TARGETS, readable_rows, target_lines, target_rows, warmup_s


def _run(*seconds):
    return {"row": {}, "log": [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]}


def test_warm_up_is_the_first_epoch_against_the_median_of_the_later_ones():
    assert warmup_s([40.0, 5.0, 7.0, 6.0]) == 34.0
    assert warmup_s([5.0]) is None and warmup_s([]) is None


def test_the_targets_come_from_the_probe_the_runs_and_the_teacher_epochs():
    probe = {"engines": [{"design": "graph engine", "students_images_per_s": 61_000.0},
                         {"design": "graph engine, member-major", "students_images_per_s": 70_000.0},
                         {"design": "today's design", "students_images_per_s": 99_000.0}],
             "teacher": [{"engine": "loop", "images_per_s": 12_000.0}, {"engine": "graph", "images_per_s": 39_000.0}]}
    meta = {"probe": probe, "teacher": {"epoch_seconds": [30.0, 2.0, 2.0]}}
    rows = target_rows(meta, {"a": _run(14.0, 3.0, 3.0), "b": _run(9.0, 3.0), "c": _run(3.0)}, {"probe": 58.0})
    assert [row["figure"] for row in rows] == [figure for figure, _, _ in TARGETS]
    assert [row["value"] for row in rows] == [70_000.0, 39_000.0, 58.0, 11.0, 28.0]  # today's design is not the engine
    assert [row["met"] for row in rows] == [True, False, True, False, False]
    lines = target_lines(rows, tiny=False)
    assert "teacher's graph engine, images/s (probe, second epoch): 39,000.0 (target >= 40,000)  not met" in lines


def test_a_window_without_a_probe_or_epochs_says_not_measured():
    rows = target_rows({"teacher": {"status": "installed"}}, {"a": _run(5.0)}, {})
    assert [row["value"] for row in rows] == [None] * len(TARGETS) and all(row["met"] is None for row in rows)
    lines = target_lines(rows, tiny=True)
    assert "(a CPU rehearsal" in lines[1] and all("not measured (target" in line for line in lines[3:])


def test_only_rows_of_the_written_form_are_read_back():
    rows = target_rows({}, {}, {"probe": 12.0})
    assert readable_rows(rows) == rows
    assert readable_rows([{"figure": "x", "value": "fast", "target": ">= 1", "met": True}, 7, *rows[:1]]) == rows[:1]
    assert readable_rows({"figure": "x"}) == [] and readable_rows(None) == []

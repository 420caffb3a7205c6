"""igkd_lib.training.teacher_graph: the teacher's graph engine trains the loop's run (CPU, float64), and a run moves
between the engines at any epoch."""
import dataclasses

import pytest
import torch
from conftest import run_differences

from igkd_lib.config import ConfigError, make_config
from igkd_lib.data.augment import draws_batch, random_crop_flip, to_float
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.training.cuda_graph import GraphedStep
from igkd_lib.training.teacher import AveragedTeacherRecipe, TeacherRecipe, train_teacher
from igkd_lib.training.teacher_graph import teacher_epoch_draws, teacher_trainer, train_teacher_graph

# float64: the engines differ only in the order of roundings (the padded last batch's masked BatchNorm and loss)
RTOL, ATOL = 1e-9, 1e-10
CPU = torch.device("cpu")
# 40 images in batches of 16: two full steps and a padded last batch of 8, every epoch. A small rate: at 0.05 this
# tiny run is chaotic (a 1e-13 change of the initial weights grows to 1e-4 in two epochs), and rounding alone fails it
RECIPE = TeacherRecipe(epochs=2, batch_size=16, lr=0.005, weight_decay=5e-4, warmup=0.3, seed=3,
                       resolutions=((0, 16), (1, 32)))


@pytest.fixture(scope="module")
def data():
    train, test = load_splits(make_config("smoke", n_train=40, n_test=40))
    return train, test.subset(torch.arange(8))


def _assert_same_run(got, expected):
    assert [row["epoch"] for row in got.log] == [row["epoch"] for row in expected.log]
    worst = run_differences(got, expected, RTOL, ATOL)
    assert max(worst.values()) <= 1.0, worst


def test_the_epoch_draws_are_the_loops_step_by_step_draws():
    """The shuffle, then each step's crops and flips: the loop's generator consumed in the loop's order."""
    n, batch = 50, 16
    ahead = teacher_epoch_draws(n, batch, 4, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    order = torch.randperm(n, generator=generator)
    assert torch.equal(ahead["order"], order)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    for start in range(0, n, batch):  # the loop: random_crop_flip on each step's images with the epoch's generator
        rows = slice(start, start + batch)
        step = {key: value[rows] for key, value in ahead.items() if key != "order"}
        expected = random_crop_flip(to_float(images[rows]), padding=4, generator=generator)
        assert torch.equal(draws_batch(images[rows], None, step, padding=4, p=0.0, blend=0.0), expected)


@pytest.mark.slow
def test_the_graph_engine_trains_the_loops_run(data, float64):
    """Weights, BatchNorm statistics, losses, accuracies of every epoch: the padded last batch, dropout,
    the warm-up-cosine rates from the device-side schedule, SGD-Nesterov, the recipe's resizing (16 px, then the
    paper's 32 px)."""
    train, test = data
    loop = train_teacher(RECIPE, train, test, CPU, progress=False)
    graph = train_teacher_graph(RECIPE, train, test, CPU, progress=False)
    _assert_same_run(graph, loop)
    assert graph.info["trainer"] == "graph" and graph.info["compile"] == "none"
    assert all(row["trainer"] == "graph" for row in graph.log)
    norms = [type(m) for m in graph.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and set(norms) == {torch.nn.BatchNorm2d}  # an ordinary teacher comes back, not the masked layers


@pytest.mark.slow
def test_a_run_moves_between_the_engines_at_any_epoch(data, float64, tmp_path):
    """The loop's checkpoint resumed by the graph engine, and the graph engine's by the loop: the run ends where an
    uninterrupted run ends."""
    train, test = data
    recipe = dataclasses.replace(RECIPE, epochs=3)
    whole = train_teacher(recipe, train, test, CPU, progress=False)
    checkpoint = tmp_path / "teacher.pt"
    train_teacher(recipe, train, test, CPU, checkpoint=checkpoint, progress=False, stop_after=1)
    train_teacher_graph(recipe, train, test, CPU, checkpoint=checkpoint, progress=False, stop_after=1)
    saved = torch.load(checkpoint, weights_only=True)
    assert isinstance(saved["optimizer"]["param_groups"][0]["lr"], float)  # the loop's form
    resumed = train_teacher(recipe, train, test, CPU, checkpoint=checkpoint, progress=False)
    assert ["trainer" in row for row in resumed.log] == [False, True, False]
    _assert_same_run(resumed, whole)


def test_engines_and_recipes_that_are_not_allowed_are_named(data, tmp_path):
    with pytest.raises(ValueError, match="teacher_engine='eager' is not allowed; allowed: loop, graph"):
        teacher_trainer("eager")
    assert teacher_trainer("graph") is train_teacher_graph and teacher_trainer("loop") is train_teacher
    with pytest.raises(ValueError, match="AveragedTeacherRecipe is not allowed"):
        train_teacher_graph(AveragedTeacherRecipe(epochs=1), *data, CPU, progress=False)
    with pytest.raises(ConfigError, match="teacher_engine"):
        make_config("smoke", teacher_engine="fast")


def test_a_graphed_step_runs_eagerly_off_cuda_and_counts_its_warm_up_per_key():
    calls = []
    step = GraphedStep(calls.append, CPU, warmups=lambda key: 1 if key else 2)
    for key in (False, False, False, True, True):
        step(key)
    assert calls == [False, False, False, True, True] and step.ran == "none" and not step.graphs
    assert step.eager_runs == {False: 3, True: 2}

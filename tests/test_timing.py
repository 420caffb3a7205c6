"""igkd_lib.timing: the one timer."""
import time

import torch

from igkd_lib.timing import Stopwatch, synchronize


def test_stopwatch_counts_the_time_since_it_started():
    watch = Stopwatch(torch.device("cpu"))
    time.sleep(0.05)
    first = watch.seconds
    assert 0.04 < first < 5 and watch.seconds >= first
    synchronize(None)  # nothing to wait for off CUDA

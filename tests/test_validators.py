"""igkd_lib.validators: one set of checks, each naming the parameter and what is allowed."""
import numpy as np
import pytest

from igkd_lib.config import ConfigError
from igkd_lib.validators import check_choice, check_int, check_number, require


def test_check_int_accepts_whole_numbers_in_range_only():
    assert check_int("n", 3, 1) == 3 and check_int("n", np.int64(4), 1, 18) == 4
    for bad, allowed in ((0, "an integer >= 1"), (True, "an integer >= 1"), (2.0, "an integer >= 1"),
                         ("3", "an integer >= 1")):
        with pytest.raises(ValueError, match=f"n={bad!r} is not allowed; allowed: {allowed}"):
            check_int("n", bad, 1)
    with pytest.raises(ValueError, match=r"cut=19 is not allowed; allowed: an integer in \[1, 18\]"):
        check_int("cut", 19, 1, 18)


def test_check_number_bounds_open_and_closed_and_refuses_nan_and_bools():
    assert check_number("p", 1, 0, 1) == 1.0 and check_number("p", np.float32(0.5), 0, 1) == 0.5
    with pytest.raises(ValueError, match=r"allowed: a number in \[0, 1\]"):
        check_number("p", 1.5, 0, 1)
    with pytest.raises(ValueError, match="allowed: a number > 0"):
        check_number("temperature", 0, 0, low_open=True)
    with pytest.raises(ValueError, match=r"allowed: a number in \[0, 1\)"):
        check_number("dropout", 1.0, 0, 1, high_open=True)
    for bad in (float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="is not allowed"):
            check_number("p", bad, 0, 1)


def test_choice_and_require_raise_the_error_asked_for():
    assert check_choice("method", "kd", ("kd", "ig")) == "kd"
    with pytest.raises(ValueError, match="method='x' is not allowed; allowed: kd, ig"):
        check_choice("method", "x", ("kd", "ig"))
    with pytest.raises(ConfigError, match="allowed: a directory path"):
        require(False, "cache_dir", "", "a directory path", ConfigError)

"""igkd_lib.config: profiles, overrides by name, and clear errors for bad values."""
import pytest

from igkd_lib.config import PROFILES, Config, ConfigError, make_config, parse_override


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_builds(profile):
    config = make_config(profile)
    assert isinstance(config, Config) and config.profile == profile


def test_paper_profile_is_the_papers_recipe():
    c = make_config("paper")
    assert (c.temperature, c.alpha, c.p, c.blend) == (2.5, 0.01, 0.1, 0.5)
    assert (c.ig_steps, c.ig_method, c.ig_target) == (50, "gausslegendre", "label")
    assert (c.student_epochs, c.student_batch_size, c.student_lr) == (100, 64, 1e-3)
    assert (c.teacher_epochs, c.teacher_batch_size, c.teacher_lr, c.teacher_weight_decay, c.teacher_warmup) == (
        100, 256, 1e-2, 1e-2, 0.3)
    assert (c.n_train, c.n_test, len(c.seeds)) == (50_000, 10_000, 10)


def test_overrides_by_name_and_from_strings():
    c = make_config("smoke", p="0.25", seeds="[0, 1, 2]", flip="false", ig_steps="12", temperature=4)
    assert (c.p, c.seeds, c.flip, c.ig_steps, c.temperature) == (0.25, (0, 1, 2), False, 12, 4.0)
    assert make_config("smoke", seeds="3,4").seeds == (3, 4)
    assert c.replace(alpha=0.5).alpha == 0.5 and c.replace(alpha=0.5).p == 0.25


@pytest.mark.parametrize("field, value, words", [
    ("p", 1.5, "p=1.5"), ("alpha", -0.1, "alpha"), ("temperature", 0, "temperature"),
    ("ig_steps", 0, "ig_steps"), ("n_train", -5, "n_train"), ("n_test", 20_000, "n_test"),
    ("device", "tpu", "device"), ("ig_method", "simpson", "gausslegendre"), ("blend", 2, "blend"),
    ("student_cut", 4, "student_cut"), ("map_alignment", "random", "aligned"),
    ("teacher_logits", "clean", "teacher_logits='clean'.*online, online_clean, cached, official"),
])
def test_out_of_range_values_name_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words):
        make_config("smoke", **{field: value})


@pytest.mark.parametrize("field, value", [("ig_steps", "many"), ("p", "high"), ("flip", "maybe"),
                                          ("seeds", "[a]"), ("n_train", 2.5)])
def test_wrong_types_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"{field}=.*wrong type"):
        make_config("smoke", **{field: value})


def test_unknown_field_and_profile():
    with pytest.raises(ConfigError, match="unknown config field.*tempreature"):
        make_config("smoke", tempreature=2)
    with pytest.raises(ConfigError, match="profile='huge'.*smoke"):
        make_config("huge")


def test_parse_override():
    assert parse_override("p=0.3") == ("p", "0.3")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("p")


def test_config_is_frozen():
    with pytest.raises(Exception):
        make_config("smoke").p = 0.3


def test_ig_chunk_is_left_to_the_device_and_batchnorm_recalibration_only_on_small_profiles():
    assert all(make_config(profile).ig_chunk == 0 for profile in PROFILES)
    assert make_config("quick", ig_chunk="96").ig_chunk == 96
    with pytest.raises(ConfigError, match="ig_chunk=-1.*0: the device's default"):
        make_config("smoke", ig_chunk=-1)
    assert make_config("smoke").bn_recalibrate and make_config("quick").bn_recalibrate
    assert not make_config("paper").bn_recalibrate  # the paper did not
    assert make_config("quick", bn_recalibrate="false").bn_recalibrate is False


def test_every_field_belongs_to_a_group_that_the_keys_derive_from():
    from dataclasses import fields

    from igkd_lib.config import FIELD_GROUPS, KEY_DEFAULTS_LEFT_OUT, group_fields

    grouped = {name for names in FIELD_GROUPS.values() for name in names}
    assert {f.name for f in fields(Config)} == grouped  # a new field must be placed (else a key may miss it)
    assert set(KEY_DEFAULTS_LEFT_OUT) <= grouped
    assert group_fields("student", "teacher").count("crop_padding") == 1
    with pytest.raises(ValueError, match="allowed: runtime"):
        group_fields("nonsense")


def test_group_key_leaves_out_the_declared_defaults_only():
    quick = make_config("quick")
    key = quick.group_key("maps", "student")
    assert "map_views" not in key and "map_source" not in key and key["bn_recalibrate"] is True
    assert "bn_recalibrate" not in make_config("paper").group_key("student")
    assert make_config("quick", map_source="sobel").group_key("maps")["map_source"] == "sobel"


def test_each_profile_has_its_plans_and_the_cpu_variant_where_it_differs():
    from igkd_lib.config import PLANS

    for name in PROFILES:
        config = make_config(name)
        assert set(config.plan("ablation")) == {"p_values", "temperatures", "alphas", "blends", "seeds", "controls",
                                                 "faults"}
        assert config.plan("latency")["batch_sizes"][0] == 1
    paper = make_config("paper")
    assert 256 in paper.plan("latency")["batch_sizes"] and 256 not in paper.plan("latency", "cpu")["batch_sizes"]
    assert paper.plan("paper_teacher") and not make_config("quick").plan("paper_teacher")
    assert set(PLANS) == set(PROFILES)
    with pytest.raises(ValueError, match="name='nonsense' is not allowed"):
        paper.plan("nonsense")


def test_chapter_2_samples_the_maps_only_for_the_paper_profile_on_a_cpu():
    assert make_config("paper").plan("maps", "cpu") == {"sample": 256}
    assert make_config("paper").plan("maps", "cuda") == {"sample": None}
    assert all(make_config(p).plan("maps", "cpu") == {"sample": None} for p in ("smoke", "quick"))

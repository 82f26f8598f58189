"""The Config dataclass: presets round-trip through JSON, bad fields are refused, old configs still load."""

from __future__ import annotations

import json

import pytest

from glmc_core.config import PRESETS, Config, get_preset
from glmc_core.errors import GLMCError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    cfg = get_preset(name)
    again = Config.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.preset == name


def test_unknown_fields_are_refused_with_a_suggestion():
    with pytest.raises(GLMCError, match=r"unknown configuration field\(s\): gama \(did you mean gamma\?\)"):
        Config.from_dict({"gama": 2.0})
    with pytest.raises(GLMCError, match="unknown configuration field"):
        get_preset("digits-lt").replace(epoch=3)


@pytest.mark.parametrize("field,value,message", [("batch_size", 1, "batch size"), ("epochs", 0, "epochs"),
                                                 ("cutmix_label", "box", "cutmix_label"), ("beta", 0.0, "beta"),
                                                 ("few_threshold", 500, "few_threshold"),
                                                 ("stop_gradient", "maybe", "stop_gradient")])
def test_out_of_range_values_name_the_field(field, value, message):
    with pytest.raises(GLMCError, match=message):
        get_preset("digits-lt").replace(**{field: value})


def test_values_are_coerced_to_the_field_types():
    cfg = Config.from_dict({"epochs": "3", "lr": "0.5", "deterministic": "yes", "stop_gradient": 0})
    assert (cfg.epochs, cfg.lr, cfg.deterministic, cfg.stop_gradient) == (3, 0.5, True, False)
    with pytest.raises(GLMCError):
        Config.from_dict({"epochs": 2.5})


def test_a_config_written_before_stop_gradient_loads_with_the_method_default():
    saved = get_preset("cifar10-lt-if100").to_dict()
    del saved["stop_gradient"]  # config.json / checkpoints written before the field existed
    cfg = Config.from_dict(saved)
    assert cfg.stop_gradient is True and cfg == get_preset("cifar10-lt-if100")


def test_replace_returns_a_copy():
    cfg = get_preset("digits-lt")
    other = cfg.replace(method="ce", gamma=0.0)
    assert (cfg.method, cfg.gamma) == ("glmc", 1.0) and (other.method, other.gamma) == ("ce", 0.0)


def test_the_quick_cifar_preset_is_the_recipe_the_search_found():
    """cifar10-lt-quick must stay the configuration benchmarks/quick_recipe_search.py measured over three seeds."""
    import dataclasses
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import quick_recipe_search as search
    finally:
        sys.path.pop(0)
    searched = dataclasses.asdict(search.recipe_config("r1000-e30-k1-lr05", "glmc", 0, None, 200, "runs"))
    preset = dataclasses.asdict(get_preset("cifar10-lt-quick", seed=0, device="cpu", progress=False, out="runs",
                                           run_name=searched["run_name"]))
    assert {k: (v, preset[k]) for k, v in searched.items() if k != "preset" and preset[k] != v} == {}

"""Property-based tests (hypothesis) for what users type: split lists, configs, ``--set`` overrides.

Whatever the input, the parsers either return well-formed values or raise a one-line
:class:`GLMCError`; they never crash with another exception, and valid input round-trips."""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmc_core import cli
from glmc_core.config import PRESETS, Config, _coerce, get_preset
from glmc_core.data import parse_split_list
from glmc_core.data.formats import _inside_root
from glmc_core.errors import GLMCError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = {f.name: f for f in fields(Config)}
DEFAULTS = Config()

# str.splitlines() breaks lines at all of these, so they cannot be part of a path.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # any encodable text
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6)


_TMP = tempfile.TemporaryDirectory()  # removed when the test session ends


def write(text: str | bytes) -> Path:
    """The text as ``list.txt`` (one file, rewritten for each example)."""
    path = Path(_TMP.name) / "list.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# ------------------------------------------------------------------------------ split lists
paths = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=LINE_BREAKS), min_size=1,
                max_size=30).map(str.strip).filter(lambda p: p and not p.startswith("#") and _inside_root(p))
# (paths that leave the data root, absolute, '..', '~', are refused: tests/test_data_formats.py)
entries = st.lists(st.tuples(paths, st.integers(0, 5000)), min_size=1, max_size=20)


@SETTINGS
@given(entries, st.sampled_from([" ", "\t", "  "]), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_split_list_round_trip(items, sep, newline, blank_lines):
    lines = [f"{p}{sep}{label}" for p, label in items]
    text = (newline * 2 if blank_lines else newline).join(lines) + newline
    got_paths, got_labels = parse_split_list(write(text))
    assert got_paths == [p for p, _ in items]
    assert got_labels.tolist() == [label for _, label in items] and got_labels.dtype.kind == "i"


@SETTINGS
@given(st.one_of(texts.map(str), st.binary(max_size=200)), st.none() | st.integers(1, 50))
def test_split_list_never_crashes(content, num_classes):
    try:
        got_paths, got_labels = parse_split_list(write(content), num_classes)
    except GLMCError as exc:
        assert "\n" not in str(exc)
        return
    assert len(got_paths) == len(got_labels) > 0
    assert (got_labels >= 0).all() and (num_classes is None or (got_labels < num_classes).all())
    assert all(p and p == p.strip() for p in got_paths)


@SETTINGS
@given(entries, st.integers(1, 20))
def test_split_list_labels_must_fit_the_class_count(items, num_classes):
    path = write("".join(f"{p} {label}\n" for p, label in items))
    if max(label for _, label in items) < num_classes:
        assert parse_split_list(path, num_classes)[1].max() < num_classes
    else:
        with pytest.raises(GLMCError, match="out of range"):
            parse_split_list(path, num_classes)


# --------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = get_preset(name)
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)) | texts, json_values, max_size=6))
def test_from_dict_returns_a_valid_config_or_one_line_error(data):
    try:
        cfg = Config.from_dict(data)
    except GLMCError as exc:
        assert "\n" not in str(exc)
        return
    assert cfg.validate() is cfg
    for key in data:  # every given field took a value of the field's type
        value, default = getattr(cfg, key), getattr(DEFAULTS, key)
        assert value is None or default is None or isinstance(value, type(default))
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


@SETTINGS
@given(st.sampled_from(sorted(FIELDS)), json_values)
def test_coerce_gives_the_field_type_or_refuses(key, value):
    default = getattr(DEFAULTS, key)
    try:
        out = _coerce(key, value, default)
    except GLMCError as exc:
        assert key in str(exc) and "\n" not in str(exc)
        return
    if out is None:
        return
    if default is not None:
        assert type(out) is type(default)
    if isinstance(out, float):
        assert math.isfinite(out)


@SETTINGS
@given(st.sampled_from([k for k, f in FIELDS.items() if isinstance(getattr(DEFAULTS, k), (bool, int, float))]),
       st.data())
def test_cli_text_of_a_value_coerces_back_to_it(key, data):
    default = getattr(DEFAULTS, key)
    if isinstance(default, bool):
        value = data.draw(st.booleans())
    elif isinstance(default, int):
        value = data.draw(st.integers(-10**12, 10**12))
    else:
        value = data.draw(st.floats(allow_nan=False, allow_infinity=False))
    assert _coerce(key, str(value), default) == value


# ------------------------------------------------------------------------------ --set parsing
keys = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="="), max_size=20)


@SETTINGS
@given(keys, texts)
def test_set_splits_at_the_first_equals_sign(key, value):
    assert cli._kv(f"{key}={value}") == (key.strip().replace("-", "_"), value.strip())


@SETTINGS
@given(keys)
def test_set_without_equals_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expects key=value"):
        cli._kv(text)


@SETTINGS
@given(st.lists(texts, min_size=1, max_size=3))
def test_any_set_flags_give_a_config_or_one_line_error(values):
    argv = ["train", "--preset", "digits-lt"] + [a for v in values for a in ("--set", v)]
    try:
        cfg = cli._train_config(cli.build_parser().parse_args(argv))
    except GLMCError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(cfg, Config) and cfg.validate() is cfg


@SETTINGS
@given(st.integers(1, 10**6), st.floats(1e-6, 10.0), st.booleans())
def test_set_values_reach_the_config(epochs, gamma, deterministic):
    args = cli.build_parser().parse_args(["train", "--preset", "digits-lt", "--set", f"epochs={epochs}",
                                          "--set", f"gamma = {gamma!r}", "--set", f"deterministic={deterministic}"])
    cfg = cli._train_config(args)
    assert (cfg.epochs, cfg.gamma, cfg.deterministic) == (epochs, gamma, deterministic)

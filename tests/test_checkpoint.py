"""Checkpoints: atomic writes survive a full disk or an exception mid-write; loading is safe and
refuses truncated, foreign, unsafe or incompatible files with one line."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch

from glmc_core import checkpoint as ckpt
from glmc_core.checkpoint import FORMAT, check_compatible, load_checkpoint, require_training_state, save_checkpoint
from glmc_core.config import get_preset
from glmc_core.errors import GLMCError
from glmc_core.runs import open_run
from glmc_core.train import build_state


def tiny_config(**overrides):
    base = dict(image_size=8, test_per_class=5, epochs=2, device="cpu", progress=False, deterministic=True)
    return get_preset("digits-lt", **{**base, **overrides})


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.fixture
def state_dict():
    return {"config": {"model": "resnet8", "dataset": "digits"}, "epoch": 3, "classes": list("abc"),
            "model": {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(3)}}


def test_round_trip_keeps_tensors_and_format(tmp_path, state_dict):
    path = save_checkpoint(state_dict, tmp_path / "checkpoint.pt")
    back = load_checkpoint(tmp_path)  # a folder means its checkpoint.pt
    assert back["format"] == FORMAT and back["epoch"] == 3
    assert torch.equal(back["model"]["w"], state_dict["model"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def _partial_save(error):
    """A torch.save that writes half a checkpoint and then fails, like a disk filling up."""
    def save(obj, fh, *args, **kwargs):
        fh.write(b"PK\x03\x04" + b"\0" * 4096)
        raise error
    return save


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt(),
                                   RuntimeError("boom")], ids=["disk-full", "ctrl-c", "exception"])
def test_failed_write_keeps_previous_checkpoint(tmp_path, state_dict, monkeypatch, error):
    save_checkpoint(state_dict, tmp_path / "checkpoint.pt")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(ckpt.torch, "save", _partial_save(error))
    newer = {**state_dict, "epoch": 4}
    with pytest.raises(type(error)):
        save_checkpoint(newer, tmp_path / "checkpoint.pt")
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no stray temporary


def test_truncated_checkpoint_is_reported(tmp_path, state_dict):
    path = save_checkpoint(state_dict, tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GLMCError) as exc:
        load_checkpoint(path)
    assert "truncated or corrupt" in one_line(exc)


def test_damaged_middle_is_reported_as_corrupt(tmp_path, state_dict):
    path = save_checkpoint({**state_dict, "big": torch.zeros(20000)}, tmp_path / "checkpoint.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 3: len(data) // 3 + 2000] = os.urandom(2000)
    path.write_bytes(bytes(data))
    with pytest.raises(GLMCError) as exc:
        load_checkpoint(path)
    assert "truncated or corrupt" in one_line(exc)


def test_empty_and_missing_checkpoints(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(GLMCError, match="is empty"):
        load_checkpoint(tmp_path)
    with pytest.raises(GLMCError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


class _Payload:
    """Unpickling this would create a marker file: the weights-only loader must never run it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_arbitrary_objects_are_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    obj = {"format": FORMAT, "model": {}, "x": _Payload(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(GLMCError) as exc:
        load_checkpoint(path)
    text = one_line(exc)
    assert "refused" in text and "open" in text  # names the object it would have called
    assert not marker.exists()


def test_foreign_files_are_refused(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(GLMCError, match="is not a glmc checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "noise.pt").write_bytes(os.urandom(3000).replace(b"PK", b"pk"))
    with pytest.raises(GLMCError, match="is not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "noise.pt")


@pytest.mark.parametrize("change, message", [
    (dict(model="resnet20"), "holds a 'resnet8' model, not 'resnet20'"),
    (dict(num_classes=5), "was trained on 10 classes, this data set has 5"),
    (dict(dataset="cifar10"), "was trained on data set 'digits', not 'cifar10'"),
    (dict(classes=[str(c) for c in range(9)] + ["ten"]), "class 9 is '9' there, 'ten' here"),
])
def test_incompatible_checkpoints_are_refused(tmp_path, change, message):
    state = build_state(tiny_config())
    ck = {"format": FORMAT, **state.checkpoint_dict()}
    args = dict(model="resnet8", num_classes=10, dataset="digits", classes=[str(c) for c in range(10)])
    check_compatible(ck, **args)  # its own data set passes
    with pytest.raises(GLMCError) as exc:
        check_compatible(ck, **{**args, **change}, path="run/checkpoint.pt")
    assert message in one_line(exc)


def test_resuming_into_another_model_is_refused(tmp_path):
    ck = build_state(tiny_config()).checkpoint_dict()
    other = build_state(tiny_config(model="resnet20"))
    with pytest.raises(GLMCError, match="holds a 'resnet8' model, not 'resnet20'"):
        other.load_checkpoint_dict(ck)
    counts = build_state(tiny_config(imbalance_factor=5))
    with pytest.raises(GLMCError, match="other class counts"):
        counts.load_checkpoint_dict(ck)


def test_weights_only_files_cannot_be_resumed(tmp_path):
    save_checkpoint({"config": tiny_config().to_dict(), "epoch": 1, "model": {}}, tmp_path / "best.pt")
    with pytest.raises(GLMCError, match="holds no training state"):
        open_run(tmp_path / "best.pt")
    with pytest.raises(GLMCError, match="optimizer"):
        require_training_state({"config": {}, "model": {}})


def test_load_model_gives_the_saved_weights_and_refuses_other_data(tmp_path):
    state = build_state(tiny_config())
    save_checkpoint(state.checkpoint_dict(), tmp_path / "checkpoint.pt")
    model = ckpt.load_model(tmp_path / "checkpoint.pt", state.data)
    assert not model.training
    for (name, a), b in zip(model.state_dict().items(), state.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = build_state(tiny_config()).data
    other.classes = [str(c) for c in range(9)] + ["ten"]
    with pytest.raises(GLMCError) as exc:
        ckpt.load_model(tmp_path / "checkpoint.pt", other)
    assert "class 9 is '9' there, 'ten' here" in one_line(exc)


def test_a_checkpoint_written_before_the_stop_gradient_field_still_loads_and_resumes(tmp_path):
    """Checkpoints from before ``Config.stop_gradient`` existed have no such key: they load with the default."""
    state = build_state(tiny_config())
    ck = state.checkpoint_dict()
    del ck["config"]["stop_gradient"]  # as the earlier version wrote it
    save_checkpoint(ck, tmp_path / "checkpoint.pt")
    model = ckpt.load_model(tmp_path / "checkpoint.pt", state.data)
    assert torch.equal(model.fc.weight, state.model.fc.weight)
    loaded, cfg, _ = open_run(tmp_path / "checkpoint.pt", log=lambda m: None)
    assert cfg.stop_gradient is True and cfg == state.cfg
    resumed = build_state(cfg)
    resumed.load_checkpoint_dict(loaded)
    assert torch.equal(resumed.model.fc.weight, state.model.fc.weight)


def test_sigterm_or_ctrl_c_during_a_write_waits_for_the_checkpoint(tmp_path, state_dict, monkeypatch):
    """The CLI's handler defers an interrupt that arrives mid-write: the new checkpoint is complete, then it stops."""
    import signal

    from glmc_core import cli

    real_save = torch.save

    def save_with_a_signal(obj, fh, *a, **k):
        cli._on_signal(signal.SIGTERM, None)  # what the handler does when SIGTERM arrives here
        real_save(obj, fh, *a, **k)

    save_checkpoint(state_dict, tmp_path / "checkpoint.pt")
    newer = {**state_dict, "epoch": 2}
    monkeypatch.setattr(torch, "save", save_with_a_signal)
    with pytest.raises(cli.Terminated):
        save_checkpoint(newer, tmp_path / "checkpoint.pt")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2  # finished, not abandoned
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(KeyboardInterrupt):  # outside a write it stops at once
        cli._on_signal(signal.SIGINT, None)

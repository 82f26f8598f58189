"""Bad input everywhere a user types: one test per row of the table in docs/robustness.md.

Every mistake ends in exit status 2 and one line, ``glmc: error: ...``, that names the problem
(no traceback); guarded training stops cleanly on NaN, out-of-memory and a full disk."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glmc_core import checkpoint as ckpt
from glmc_core import cli
from glmc_core import train as train_mod
from glmc_core.checkpoint import load_checkpoint, save_checkpoint
from glmc_core.config import get_preset
from glmc_core.data import load_image_folder, parse_split_list
from glmc_core.errors import GLMCError
from glmc_core.train import NonFiniteLoss, fit


@pytest.fixture(autouse=True)
def _setup(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the default ./runs and ./data/cache land here, not in the repository
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and robust to shared CPUs
    yield
    torch.set_num_threads(before)


def run_cli(capsys, argv) -> tuple[int, list[str]]:
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def make_images(root: Path, layout: dict[str, dict[str, int]], size=(10, 10), mode="RGB") -> Path:
    """``layout = {"train": {"cat": 3}, "test": {...}}``: that many small PNGs per class folder."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, classes in layout.items():
        (root / split).mkdir(exist_ok=True)
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert(mode).save(
                    root / split / cls / f"{i}.png")
    return root


QUICK = ["--preset", "digits-lt", "--epochs", "1", "--device", "cpu", "--no-progress", "--set", "image_size=8",
         "--set", "test_per_class=5"]
FOLDER = ["--set", "dataset=imagefolder", "--set", "imbalance_factor=1", "--batch-size", "4"]
SPLITS = ["--set", "dataset=splitlist", "--set", "imbalance_factor=1", "--batch-size", "4",
          "--set", "train_list=train.txt", "--set", "test_list=test.txt"]
TREE = {"train": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}}


def _split_root(tmp_path: Path, train: str | bytes, test: str = "a/0.png 0\nb/0.png 1\n") -> Path:
    make_images(tmp_path / "root", {"": {"a": 3, "b": 3}})
    _file(tmp_path / "root" / "train.txt", train if isinstance(train, bytes) else train.encode())
    (tmp_path / "root" / "test.txt").write_text(test)
    return tmp_path / "root"


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _truncated_checkpoint(tmp_path: Path) -> Path:
    path = save_checkpoint({"model": {"w": torch.zeros(5000)}}, tmp_path / "run" / "checkpoint.pt")
    path.write_bytes(path.read_bytes()[:3000])
    return path


# (row id, argv built from tmp_path, what the one line says). Mirrors the table in docs/robustness.md.
ROWS = [
    # --- CLI flags
    ("unknown-flag", lambda t: ["train", *QUICK, "--epochz", "3"], "unrecognized arguments: --epochz 3"),
    ("not-a-number", lambda t: ["train", *QUICK, "--epochs", "three"], "argument --epochs: invalid int value"),
    ("zero-epochs", lambda t: ["train", *QUICK, "--epochs", "0"], "epochs must be at least 1, got 0"),
    ("checkpoint-every-zero", lambda t: ["train", *QUICK, "--set", "checkpoint_every=0"],
     "checkpoint_every must be at least 1 (epochs), got 0"),
    ("nan-lr", lambda t: ["train", *QUICK, "--lr", "nan"], "'lr' must be a finite number, got nan"),
    ("negative-lr", lambda t: ["train", *QUICK, "--lr", "-0.1"], "lr must be positive"),
    ("batch-of-one", lambda t: ["train", *QUICK, "--batch-size", "1"], "batch size must be at least 2, got 1"),
    ("no-preset", lambda t: ["train"], "train needs --preset NAME"),
    ("unknown-preset", lambda t: ["train", "--preset", "cifar11"], "unknown preset 'cifar11'"),
    ("unknown-model", lambda t: ["train", *QUICK, "--model", "resnet9"], "unknown model 'resnet9'"),
    ("unknown-method", lambda t: ["train", *QUICK, "--method", "glmx"], "unknown method 'glmx'"),
    ("unknown-device", lambda t: ["train", *QUICK, "--device", "tpu", "--out", t], "unknown device 'tpu'"),
    ("run-name-leaves-out", lambda t: ["train", *QUICK, "--out", t, "--run-name", "../escaped"],
     "run name '../escaped' is not a plain folder name: it must stay inside --out"),
    ("run-name-absolute", lambda t: ["train", *QUICK, "--out", t, "--run-name", t / "abs"],
     "is not a plain folder name"),
    ("run-name-dot-dot", lambda t: ["train", *QUICK, "--out", t, "--run-name", ".."], "is not a plain folder name"),
    ("preset-name-leaves-out", lambda t: ["train", *QUICK, "--out", t, "--set", "preset=../../x"],
     "run name '../../x' is not a plain folder name"),
    ("bad-choice", lambda t: ["train", *QUICK, "--loader", "gpu"], "argument --loader: invalid choice: 'gpu'"),
    ("resume-and-change", lambda t: ["train", "--resume", t, "--lr", "0.1"], "drop --lr"),
    # --- preset overrides (--set)
    ("set-without-equals", lambda t: ["train", *QUICK, "--set", "gamma"], "--set expects key=value, got 'gamma'"),
    ("set-unknown-field", lambda t: ["train", *QUICK, "--set", "gama=2"], "gama (did you mean gamma?)"),
    ("set-wrong-type", lambda t: ["train", *QUICK, "--set", "epochs=1.5"], "'epochs' must be a whole number"),
    ("set-not-a-bool", lambda t: ["train", *QUICK, "--set", "deterministic=maybe"], "must be true/false"),
    ("set-out-of-range", lambda t: ["train", *QUICK, "--set", "seed=-1"], "seed must be a whole number from 0"),
    ("set-bad-choice", lambda t: ["train", *QUICK, "--set", "augment=auto"], "augment must be cifar, imagenet"),
    ("image-size-absurd", lambda t: ["train", *QUICK, "--set", "image_size=100000"],
     "image_size must be from 8 to 1024, got 100000"),
    ("workers-absurd", lambda t: ["train", *QUICK, "--set", "num_workers=10000"],
     "num_workers must be from 0 to 256"),
    ("imbalance-below-one", lambda t: ["train", *QUICK, "--imbalance-factor", "0.5"], "must be at least 1"),
    ("imbalance-too-large", lambda t: ["train", *QUICK, "--imbalance-factor", "1000", "--out", t],
     "leaves the smallest class empty"),
    # --- data roots
    ("cifar-not-found", lambda t: ["train", "--preset", "cifar10-lt-if100", "--data-root", t / "none", "--out", t],
     "CIFAR-10 not found under"),
    ("root-missing", lambda t: ["train", *QUICK, *FOLDER, "--data-root", t / "none", "--out", t], "does not exist"),
    ("root-is-a-file", lambda t: ["train", *QUICK, *FOLDER, "--data-root", _file(t / "x.txt", b"hi"), "--out", t],
     "is a file but not a .zip"),
    ("corrupt-zip", lambda t: ["train", *QUICK, *FOLDER, "--data-root", _file(t / "d.zip", b"PK junk"), "--out", t],
     "is not a readable .zip file"),
    # --- image folders
    ("empty-folder", lambda t: ["train", *QUICK, *FOLDER, "--data-root", make_images(t / "d", {}), "--out", t],
     "no images found under"),
    ("no-test-split", lambda t: ["train", *QUICK, *FOLDER, "--data-root", make_images(t / "d", {"train": {"a": 2}}),
                                 "--out", t], "no test images found"),
    ("mismatched-classes",
     lambda t: ["train", *QUICK, *FOLDER, "--out", t, "--data-root",
                make_images(t / "d", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})],
     "only in train: ['b'], only in test: ['c']"),
    ("corrupt-image",
     lambda t: ["train", *QUICK, *FOLDER, "--out", t, "--data-root",
                _file(make_images(t / "d", TREE) / "train" / "a" / "bad.jpg", b"not an image").parents[2]],
     "corrupt or unreadable image file train/a/bad.jpg"),
    # --- split lists
    ("list-missing", lambda t: ["train", *QUICK, *SPLITS, "--data-root", _split_root(t, "a/0.png 0\n"), "--out", t,
                                "--set", "train_list=nope.txt"], "split list"),
    ("label-out-of-range", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                      _split_root(t, "a/0.png 0\nb/1.png 1\n", "a/2.png 0\nb/2.png 5\n")],
     "test.txt:2: label 5 is out of range 0..1"),
    ("negative-label", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                  _split_root(t, "a/0.png -1\n")], "train.txt:1: label -1 is out of range"),
    ("malformed-line", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                  _split_root(t, "a/0.png 0\nb/1.png\n")],
     "train.txt:2: expected 'relative/path label', got 'b/1.png'"),
    ("label-not-a-number", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                      _split_root(t, "a/0.png cat\n")], "train.txt:1: label 'cat' is not a whole"),
    ("list-path-dot-dot", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                     _split_root(t, "a/0.png 0\n../../secret.png 1\n")],
     "train.txt:2: path '../../secret.png' leaves the data root"),
    ("list-path-absolute", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                      _split_root(t, "a/0.png 0\n/etc/passwd 1\n")],
     "train.txt:2: path '/etc/passwd' leaves the data root"),
    ("list-path-home", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                  _split_root(t, "a/0.png 0\n~/x.png 1\n")], "leaves the data root"),
    ("image-missing", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                 _split_root(t, "a/0.png 0\nb/9.png 1\n")],
     "1 image file(s) of the split list are missing"),
    ("not-utf8", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root", _split_root(t, b"caf\xe9.png 0\n")],
     "train.txt is not UTF-8 text"),
    ("class-without-images", lambda t: ["train", *QUICK, *SPLITS, "--out", t, "--data-root",
                                        _split_root(t, "a/0.png 0\nb/0.png 2\n", "a/1.png 0\n")],
     "class(es) ['1'] have no training images"),
    # --- checkpoints
    ("checkpoint-missing", lambda t: ["evaluate", "--checkpoint", t / "none.pt"], "not found"),
    ("checkpoint-truncated", lambda t: ["evaluate", "--checkpoint", _truncated_checkpoint(t)],
     "is truncated or corrupt"),
    ("not-a-checkpoint", lambda t: ["evaluate", "--checkpoint", _file(t / "x.pt", b"hello " * 100)],
     "is not a PyTorch checkpoint"),
    ("resume-best-pt", lambda t: ["train", "--resume", save_checkpoint(
        {"config": {}, "model": {}}, t / "run" / "best.pt")], "holds no training state"),
    ("resume-not-a-run", lambda t: ["train", "--resume", t], "is not a run folder"),
    ("resume-missing", lambda t: ["train", "--resume", t / "none"], "nothing to resume"),
]


@pytest.mark.parametrize("build, expected", [(b, e) for _, b, e in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_row(tmp_path, capsys, build, expected):
    argv = build(tmp_path)
    rc, lines = run_cli(capsys, argv)
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("glmc: error: "), lines
    assert expected in lines[0]
    if argv[0] == "train" and "--resume" not in argv:  # a refused run leaves no run folder behind
        assert not list(tmp_path.glob("digits-lt-*")) and not (tmp_path / "runs").exists()


def test_cuda_asked_without_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, lines = run_cli(capsys, ["train", *QUICK, "--device", "cuda"])
    assert rc == 2 and "no CUDA GPU is available" in lines[-1]


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage: glmc" in capsys.readouterr().out


# ------------------------------------------------------------------ inputs that are fine but odd
def test_non_image_files_are_skipped_and_named(tmp_path, capsys):
    root = make_images(tmp_path / "d", TREE)
    _file(root / "train" / "a" / "notes.txt", b"hello")
    _file(root / "test" / "b" / ".DS_Store", b"\0")
    rc, lines = run_cli(capsys, ["train", *QUICK, *FOLDER, "--data-root", root, "--out", tmp_path / "runs"])
    assert rc == 0
    assert "data: skipped 2 non-image file(s) (first: " in "\n".join(lines)


def test_mixed_sizes_and_modes_are_converted(tmp_path):
    root = make_images(tmp_path / "d", {"train": {"a": 2}, "test": {"a": 1}}, size=(10, 10))
    make_images(tmp_path / "d", {"train": {"b": 2}, "test": {"b": 1}}, size=(31, 17), mode="L")
    Image.new("RGBA", (5, 40), (1, 2, 3, 4)).save(root / "train" / "a" / "rgba.png")
    Image.new("P", (12, 12)).save(root / "train" / "b" / "palette.gif")
    Image.new("I;16", (9, 9)).save(root / "test" / "a" / "deep.tif")
    src = load_image_folder(root, image_size=8, progress=False)
    assert src.train.images.shape == (6, 8, 8, 3) and src.train.images.dtype == np.uint8
    assert src.test.images.shape == (3, 8, 8, 3)
    assert src.classes == ["a", "b"]


def test_split_list_skips_blank_lines_comments_and_bom(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes("\ufeff# a comment\n\nimages/with space.jpg 1\r\n   \n\tb.png\t0\n".encode())
    paths, labels = parse_split_list(path)
    assert paths == ["images/with space.jpg", "b.png"] and labels.tolist() == [1, 0]


@pytest.mark.parametrize("label", ["1_0", "+1", "\u0661", "1.0", "0x1"])
def test_split_list_labels_are_plain_digits(tmp_path, label):
    path = tmp_path / "list.txt"
    path.write_text(f"a.png {label}\n")
    with pytest.raises(GLMCError, match="is not a whole number"):
        parse_split_list(path)


# ------------------------------------------------------------------------------ guarded training
def tiny_config(tmp_path, **overrides):
    base = dict(image_size=8, test_per_class=5, n_max=40, batch_size=16, epochs=3, device="cpu", progress=False,
                deterministic=True, out=str(tmp_path), run_name="r")
    return get_preset("digits-lt", **{**base, **overrides})


def test_exploding_lr_stops_with_epoch_and_step(tmp_path, capsys):
    rc, lines = run_cli(capsys, ["train", *QUICK, "--lr", "1e6", "--out", tmp_path, "--run-name", "r"])
    assert rc == 2
    assert lines[-1].startswith("glmc: error: the loss became nan at epoch 1, step ")
    assert load_checkpoint(tmp_path / "r")["epoch"] == 0  # the last good state: the untrained start


@pytest.mark.parametrize("every_step", [True, False], ids=["cpu-check", "device-check"])
def test_nan_in_a_later_epoch_keeps_the_previous_checkpoint(tmp_path, monkeypatch, every_step):
    real, calls = train_mod.step_loss, {"n": 0}

    def poisoned(method, model, batch, ctx):  # step 3 of epoch 2 (9 steps an epoch) turns NaN
        loss, terms = real(method, model, batch, ctx)
        calls["n"] += 1
        return (loss * float("nan"), terms) if calls["n"] == 9 + 3 else (loss, terms)

    monkeypatch.setattr(train_mod, "step_loss", poisoned)
    original = train_mod.train_one_epoch
    monkeypatch.setattr(train_mod, "train_one_epoch",
                        lambda *a, **k: original(*a, **k, check_every_step=every_step))
    with pytest.raises(NonFiniteLoss) as exc:
        fit(tiny_config(tmp_path), log=lambda m: None)
    assert "at epoch 2, step 3;" in str(exc.value)
    assert "checkpoint.pt still holds the last good epoch (1)" in str(exc.value)
    ck = load_checkpoint(tmp_path / "r")
    assert ck["epoch"] == 1 and all(torch.isfinite(t).all() for t in ck["model"].values() if t.is_floating_point())


def test_gpu_out_of_memory_gets_a_hint(monkeypatch, capsys):
    monkeypatch.setattr(train_mod, "fit", _raise(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")))
    rc, lines = run_cli(capsys, ["train", *QUICK])
    assert rc == 2 and len(lines) == 1
    assert "ran out of memory" in lines[0] and "--batch-size" in lines[0] and "--loader dataloader" in lines[0]


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


def test_other_runtime_errors_are_not_hidden(monkeypatch):
    monkeypatch.setattr(train_mod, "fit", _raise(RuntimeError("a real bug")))
    with pytest.raises(RuntimeError, match="a real bug"):
        cli.main(["train", *QUICK])


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    args = ["train", *QUICK, "--out", tmp_path, "--run-name", "r"]
    assert run_cli(capsys, args)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    rc, lines = run_cli(capsys, args)
    assert rc == 2 and lines == [f"glmc: error: run folder {tmp_path / 'r'} already exists; continue it with "
                                 f"--resume {tmp_path / 'r'} or choose another --run-name"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    _file(tmp_path / "f", b"a file")
    rc, lines = run_cli(capsys, ["train", *QUICK, "--out", tmp_path, "--run-name", "f"])
    assert rc == 2 and "already exists" in lines[0]


def test_full_disk_while_saving(tmp_path, capsys, monkeypatch):
    real = torch.save
    calls = {"n": 0}

    def save(obj, fh, *a, **k):  # the epoch-0 checkpoint fits, the next write does not
        calls["n"] += 1
        if calls["n"] > 1:
            fh.write(b"PK\x03\x04partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, fh, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", save)
    rc, lines = run_cli(capsys, ["train", *QUICK, "--out", tmp_path, "--run-name", "r"])
    assert rc == 2 and lines[-1] == "glmc: error: No space left on device"
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "r")["epoch"] == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]


def test_unwritable_output_folder(tmp_path, capsys):
    _file(tmp_path / "blocker", b"not a folder")
    rc, lines = run_cli(capsys, ["train", *QUICK, "--out", tmp_path / "blocker" / "runs"])
    assert rc == 2 and lines[-1].startswith("glmc: error: cannot create the run folder")


def test_interrupt_before_training_says_nothing_to_resume(monkeypatch, capsys):
    monkeypatch.setattr(train_mod, "fit", _raise(KeyboardInterrupt()))
    rc, lines = run_cli(capsys, ["train", *QUICK])
    assert rc == 130 and lines == ["glmc: interrupted (no run had started, so there is nothing to resume)"]


def test_checkpoint_one_liners_are_readable(tmp_path):
    """A user-facing message never carries torch's multi-paragraph text."""
    blob = io.BytesIO()
    torch.save({"format": ckpt.FORMAT, "x": Path("/etc")}, blob)
    _file(tmp_path / "c.pt", blob.getvalue())
    with pytest.raises(GLMCError) as exc:
        load_checkpoint(tmp_path / "c.pt")
    assert len(str(exc.value)) < 300 and "pathlib" in str(exc.value)


# ------------------------------------------------------------------------------ security (issue 14)
class _Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this would run code: here, create the marker file
        return (Path.touch, (self.marker,))


def _planted_cifar(tmp_path: Path) -> tuple[Path, Path]:
    """A data folder whose ``data_batch_1`` runs code when unpickled with ``pickle.load``."""
    import pickle

    evil, marker = tmp_path / "evil", tmp_path / "pwned"
    folder = evil / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": _Planted(marker), b"labels": [0]}, protocol=2))
    return evil, marker


def _checkpoint_pointing_at(tmp_path: Path, data_root: Path, training_state: bool) -> Path:
    cfg = get_preset("cifar10-lt-if100", data_root=str(data_root), model="resnet8")
    state = {"config": cfg.to_dict(), "model": {"w": torch.zeros(1)}, "classes": [str(i) for i in range(10)]}
    if training_state:
        state.update(optimizer={}, epoch=0, history=[], rng={})
    return save_checkpoint(state, tmp_path / "run" / "checkpoint.pt")


@pytest.mark.parametrize("command", ["evaluate", "resume", "finetune-maxnorm"])
def test_a_checkpoint_never_names_where_data_is_read(tmp_path, capsys, command):
    """A checkpoint that passes weights_only carries a config whose data_root points at planted pickles:
    the data are read from where the user says (--data-root, $GLMC_DATA_ROOT, ./data), not from there."""
    evil, marker = _planted_cifar(tmp_path)
    ck = _checkpoint_pointing_at(tmp_path, evil, training_state=True)
    argv = {"evaluate": ["evaluate", "--checkpoint", ck], "resume": ["train", "--resume", ck],
            "finetune-maxnorm": ["finetune-maxnorm", ck.parent, "--device", "cpu"]}[command]
    rc, lines = run_cli(capsys, argv)
    assert rc == 2 and len(lines) == 1, lines
    assert "CIFAR-10 not found under" in lines[0] and str(tmp_path / "data") in lines[0]
    if command != "finetune-maxnorm":
        assert "not followed" in lines[0] and "--data-root" in lines[0]
    assert not marker.exists()
    # Named by the user, the planted folder is read with the restricted unpickler: refused, nothing runs.
    rc, lines = run_cli(capsys, [*argv, "--data-root", evil])
    assert rc == 2 and len(lines) == 1 and "refused for safety" in lines[0], lines
    assert not marker.exists()


def test_analyze_never_takes_the_data_root_from_the_run_folder(tmp_path, capsys):
    evil, marker = _planted_cifar(tmp_path)
    ck = _checkpoint_pointing_at(tmp_path, evil, training_state=False)
    cfg = get_preset("cifar10-lt-if100", data_root=str(evil), model="resnet8")
    (ck.parent / "config.json").write_text(cfg.to_json())
    rc, lines = run_cli(capsys, ["analyze", ck.parent, "--no-umap", "--device", "cpu"])
    assert rc == 2 and len(lines) == 1 and "CIFAR-10 not found under" in lines[0], lines
    assert not marker.exists() and not (ck.parent / "analysis").exists()


# ------------------------------------------------------------------------- broken promises (issue 14)
@pytest.mark.parametrize("device, message", [
    ("meta", "--device meta is not a device glmc can train or evaluate on"),
    ("mps", "--device mps was asked for but Apple's MPS is not available here"),
    ("xpu", "--device xpu was asked for but no Intel GPU is available"),
    ("cuda:99", "--device cuda"),
])
def test_named_but_unavailable_devices(tmp_path, capsys, device, message):
    if device == "mps" and torch.backends.mps.is_available() or device == "xpu" and torch.xpu.is_available():
        pytest.skip(f"{device} is available here")
    for argv in (["train", *QUICK, "--device", device, "--out", tmp_path],
                 ["evaluate", "--checkpoint", _digits_checkpoint(tmp_path), "--device", device]):
        rc, lines = run_cli(capsys, argv)
        assert rc == 2 and len(lines) == 1 and message in lines[0], lines
    assert not list(tmp_path.glob("digits-lt-*"))


def test_data_root_of_an_unknown_user(tmp_path, capsys):
    rc, lines = run_cli(capsys, ["train", *QUICK, *FOLDER, "--data-root", "~no-such-user-glmc/d", "--out", tmp_path])
    assert rc == 2 and lines == ["glmc: error: cannot expand ~no-such-user-glmc/d: no such user (or no home folder); "
                                 "give the full path"]


def test_cpu_allocation_failure_is_one_line(monkeypatch, capsys, tmp_path):
    def fail(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(train_mod, "build_state", fail)
    rc, lines = run_cli(capsys, ["train", *QUICK, "--out", tmp_path])
    assert rc == 2 and len(lines) == 1 and "ran out of memory (a CPU allocation failed)" in lines[0], lines


def test_every_message_is_bounded(tmp_path, capsys):
    """A 10 MB label, a 1 MB flag: the one line stays short."""
    root = _split_root(tmp_path, "a/0.png " + "7" * 10_000_000 + "\n")
    for argv in (["train", *QUICK, *SPLITS, "--out", tmp_path, "--data-root", root],
                 ["train", *QUICK, "--" + "x" * 1_000_000],
                 ["train", *QUICK, "--set", "y" * 1_000_000 + "=1"]):
        rc, lines = run_cli(capsys, argv)
        assert rc == 2 and len(lines) == 1 and len(lines[0]) <= 2100, (len(lines), len(lines[0]))
    assert len(str(GLMCError("z" * 10**6))) <= 2000


def _write_large_split(root: Path, bad: bytes | None) -> Path:
    """A file-based (image_size > 64) split-list data set; ``bad``: the bytes of one damaged training image."""
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for c in range(2):
        for split, n in (("train", 4), ("test", 2)):
            for i in range(n):
                rel = f"img/{split}-{c}-{i}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (72, 72, 3), dtype=np.uint8)).save(root / rel)
                lines[split].append(f"{rel} {c}")
    if bad is not None:
        (root / "img" / "train-1-3.png").write_bytes(bad)
    for split in lines:
        (root / f"{split}.txt").write_text("\n".join(lines[split]) + "\n")
    return root


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("damage", ["truncated", "not-an-image", "bomb"])
def test_damaged_image_on_the_file_based_path_is_named_and_leaves_no_run_folder(tmp_path, capsys, workers, damage):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (72, 72, 3), dtype=np.uint8)).save(good, format="PNG")
    bad = {"truncated": good.getvalue()[:2000], "not-an-image": b"hello",
           "bomb": good.getvalue()[:16] + (30000).to_bytes(4, "big") * 2 + good.getvalue()[24:]}[damage]
    root = _write_large_split(tmp_path / "lt", bad)
    argv = ["train", "--preset", "imagenet-lt", "--data-root", root, "--set", "train_list=train.txt",
            "--set", "test_list=test.txt", "--set", "image_size=72", "--model", "resnet8", "--epochs", "1",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--set", f"num_workers={workers}",
            "--set", "warmup_epochs=0", "--set", "imbalance_factor=1", "--out", tmp_path / "runs", "--run-name", "r"]
    rc, lines = run_cli(capsys, argv)
    assert rc == 2, lines
    errors = [line for line in lines if line.startswith("glmc: error: ")]
    assert len(errors) == 1 and "img/train-1-3.png" in errors[0], lines
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "runs" / "r").exists()


def _digits_checkpoint(tmp_path: Path, change=None) -> Path:
    from glmc_core.methods import build_method_model

    cfg = get_preset("digits-lt", model="resnet8", image_size=8, test_per_class=5, device="cpu")
    state = {"config": cfg.to_dict(), "epoch": 1, "model": build_method_model(cfg, 10).state_dict(),
             "classes": [str(i) for i in range(10)]}
    if change:
        change(state)
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "config.json").write_text(cfg.to_json())
    return save_checkpoint(state, tmp_path / "run" / "best.pt")


@pytest.mark.parametrize("change, message", [
    (lambda s: s["model"].pop("fc.weight"), "weights 1 missing (first: fc.weight)"),
    (lambda s: s["model"].update({"fc.weight": torch.zeros(3, 3)}), "1 of another shape (first: fc.weight)"),
    (lambda s: s["model"].update({"extra.weight": torch.zeros(1)}), "1 unexpected (first: extra.weight)"),
    (lambda s: s["config"].update(method="ldam-drw"), "does not fit the 'resnet8' model and method"),
    (lambda s: s.pop("model"), "holds no model weights"),
    (lambda s: s.pop("config"), "holds no configuration"),
    (lambda s: s["config"].update(epochs="many"), "holds a configuration glmc cannot use"),
    (lambda s: s.update(classes=7), "holds a damaged class list"),
])
def test_checkpoints_that_do_not_fit_their_config(tmp_path, capsys, change, message):
    path = _digits_checkpoint(tmp_path, change)
    for argv in (["evaluate", "--checkpoint", path], ["analyze", path.parent, "--no-umap", "--device", "cpu"]):
        rc, lines = run_cli(capsys, argv)
        if argv[0] == "analyze" and ("config" in message or "method" in message):
            continue  # analyze reads the run's config.json, which is intact here
        errors = [line for line in lines if line.startswith("glmc: error: ")]  # analyze also logs progress
        assert rc == 2 and len(errors) == 1 and message in errors[0] and errors[0] == lines[-1], lines
        assert not (path.parent / "analysis").exists()


def test_resume_from_a_checkpoint_missing_parts_of_its_state(tmp_path, capsys):
    fit(tiny_config(tmp_path, epochs=2), log=lambda m: None, stop=lambda: True)  # stopped: epoch-0 checkpoint
    run = next(tmp_path.glob("*/checkpoint.pt")).parent
    ck = load_checkpoint(run)
    del ck["rng"]["numpy"]
    torch.save(ck, run / "checkpoint.pt")
    rc, lines = run_cli(capsys, ["train", "--resume", run])
    assert rc == 2 and len(lines) == 1 and "is missing parts of its training state" in lines[0], lines


@pytest.mark.parametrize("damage, message", [
    ({"config.json": b"\xff\xfe not json"}, "config.json is not valid JSON"),
    ({"summary.json": b"{ half"}, "summary.json is damaged"),
    ({"summary.json": b"[1, 2]"}, "summary.json is damaged"),
    ({"metrics.jsonl": b"[1, 2]\n{}\n"}, "metrics.jsonl:1 is not a metrics record"),
    ({"metrics.jsonl": b"\xff\xfe\n"}, "metrics.jsonl is damaged (not UTF-8 text)"),
    ({"metrics.jsonl": b"{\"epoch\": 1, \"top1\": 5}\n{broken\n{\"epoch\": 2, \"top1\": 5}\n"},
     "metrics.jsonl:2 is not a metrics record"),
])
def test_analyze_damaged_run_folders_is_one_line_and_writes_nothing(tmp_path, capsys, damage, message):
    path = _digits_checkpoint(tmp_path)
    for name, data in damage.items():
        (path.parent / name).write_bytes(data)
    rc, lines = run_cli(capsys, ["analyze", path.parent, "--no-umap", "--device", "cpu", "--out", tmp_path / "fig"])
    assert rc == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "fig").exists()

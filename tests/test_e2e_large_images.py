"""The large-image path end to end: split lists of files, per-image transforms, a DataLoader.

ImageNet-LT and iNaturalist are read this way (images stay files, ``image_size`` > 64); here a
tiny split-list data set of real PNG files stands in for them.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from glmc_core import get_preset
from glmc_core.data import FileSplit, prepare_data
from glmc_core.data.streams import LoaderStream
from glmc_core.errors import GLMCError
from glmc_core.train import fit


def _write_split_lists(root, counts=(6, 4, 2), test_per_class=2, size=80):
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for c, n in enumerate(counts):
        for split, k in (("train", n), ("test", test_per_class)):
            for i in range(k):
                rel = f"images/{split}/c{c}_{i}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                pixels = (rng.random((size, size + 10, 3)) * 60 + 60 * c).astype(np.uint8)  # not square on purpose
                Image.fromarray(pixels).save(root / rel)
                lines[split].append(f"{rel} {c}")
    (root / "train.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "test.txt").write_text("# a comment\n\n" + "\n".join(lines["test"]) + "\n")


def _cfg(root, tmp_path, **extra):
    settings = dict(data_root=str(root), train_list="train.txt", test_list="test.txt", image_size=72,
                    model="resnet8", epochs=3, batch_size=4, num_workers=0, warmup_epochs=2,
                    out=str(tmp_path / "runs"), run_name="large", progress=False, device="cpu")
    settings.update(extra)
    if settings["warmup_epochs"] >= settings["epochs"]:
        settings["warmup_epochs"] = 0
    return get_preset("imagenet-lt", **settings)


def test_split_list_images_stay_files_and_train(tmp_path):
    root = tmp_path / "lt"
    _write_split_lists(root)
    cfg = _cfg(root, tmp_path)
    data = prepare_data(cfg, progress=False)
    assert isinstance(data.train, FileSplit) and isinstance(data.test, FileSplit)  # not decoded into memory
    assert data.counts.tolist() == [6, 4, 2] and len(data.test) == 6
    state = fit(cfg, data=data, log=lambda _m: None)
    assert isinstance(state.stream, LoaderStream)  # per-image transforms through a DataLoader
    batch = next(iter(state.stream))
    assert batch["x_u1"].shape == (4, 3, 72, 72) and batch["x_r2"].shape == (4, 3, 72, 72)
    assert not np.allclose(batch["x_u1"].numpy(), batch["x_u2"].numpy())  # two random views
    assert [r["epoch"] for r in state.history] == [1, 2, 3]
    assert all(np.isfinite(r["total"]) for r in state.history)
    assert state.history[0]["lr"] == 0.05 and state.history[1]["lr"] == 0.1  # the preset's 0.1 after warm-up
    assert (tmp_path / "runs" / "large" / "summary.json").is_file()


def test_split_list_run_resumes(tmp_path):
    root = tmp_path / "lt"
    _write_split_lists(root, counts=(4, 2, 2))
    cfg = _cfg(root, tmp_path, epochs=1)
    fit(cfg, log=lambda _m: None)
    with pytest.raises(GLMCError, match="a location stored in a run is not followed"):  # the user names the data
        fit(resume=tmp_path / "runs" / "large", log=lambda _m: None)
    resumed = fit(resume=tmp_path / "runs" / "large", log=lambda _m: None,  # already finished: nothing to do
                  overrides={"data_root": str(root)})
    assert resumed.epoch == 1 and len(resumed.history) == 1

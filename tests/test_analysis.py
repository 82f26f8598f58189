"""Analysis API: run folders, evaluations that reproduce the logged metrics, UMAP cache, weight norms, tables."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_runs import tiny_runs  # noqa: F401 - a fixture

from glmc_core import analysis as A
from glmc_core.errors import GLMCError


def _fake_umap(features, random_state=0, **_):
    """A stand-in for UMAP (which costs ~15 s of import and JIT): the first two coordinates, shifted by the seed."""
    return np.asarray(features[:, :2], dtype=np.float32) + random_state


def test_load_history_skips_a_half_written_last_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "top1": 10.0}\n{"epoch": 2, "top1": 20.0}\n{"epoch": 3, "to')
    rows = A.load_history(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert A.load_history(tmp_path / "missing") == []


def test_load_run_refuses_a_folder_without_config(tmp_path):
    with pytest.raises(GLMCError, match="not a run folder"):
        A.load_run(tmp_path)


def test_subsample_is_seeded_sorted_and_without_repeats():
    a, b = A.subsample(1000, 100, 3), A.subsample(1000, 100, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 100 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, A.subsample(1000, 100, 4))
    assert np.array_equal(A.subsample(50, 100), np.arange(50))
    assert np.array_equal(A.subsample(50, None), np.arange(50))


def test_weight_norms_are_row_norms_of_both_heads():
    sd = {"fc.weight": torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "fc_cb.weight": torch.tensor([[1.0, 0.0], [0.0, 2.0]])}
    norms = A.weight_norms(sd)
    assert np.allclose(norms["fc"], [5.0, 1.0]) and np.allclose(norms["fc_cb"], [1.0, 2.0])


def test_trained_heads_follow_the_method():
    assert A.trained_heads("glmc") == ["fc", "fc_cb"]
    assert A.trained_heads("ce") == ["fc"]


def test_tables_render_every_row_and_column():
    rows = [{"run": "a", "method": "glmc", "top1": 50.0, "many": 70.25, "medium": None, "few": 10.0,
             "imbalance_factor": 100.0, "epoch": 3}]
    md = A.to_markdown(rows).splitlines()
    assert len(md) == 3 and "| a | glmc |" in md[2] and "70.25" in md[2] and "n/a" in md[2] and "| 100 |" in md[2]
    parsed = list(csv.DictReader(io.StringIO(A.to_csv(rows))))
    assert parsed[0]["many"] == "70.25" and parsed[0]["medium"] == ""


@pytest.mark.slow
def test_evaluation_reproduces_the_logged_metrics_of_the_best_epoch(tiny_runs):  # noqa: F811
    glmc_dir, _ = tiny_runs
    run = A.load_run(glmc_dir)
    assert run.finished and run.method == "glmc" and len(run.history) == 2
    ev = A.evaluate_run(run)
    logged = next(r for r in run.history if r["epoch"] == ev.epoch)
    assert ev.epoch == run.summary["best"]["epoch"]
    # best.pt holds the model of that epoch: predicting again gives exactly the logged numbers
    assert ev.top1 * 100 == pytest.approx(logged["top1"])
    for g in ("many", "medium", "few"):
        assert (ev.group_acc[g] is None) == (logged[g] is None)
        if logged[g] is not None:
            assert 100 * ev.group_acc[g] == pytest.approx(logged[g])
    n, c = len(ev.targets), ev.num_classes
    assert ev.features.shape[0] == n and ev.features.ndim == 2 and ev.confusion.sum() == n
    assert set(ev.norms) == {"fc", "fc_cb"} and ev.norms["fc"].shape == (c,)
    row = A.results_rows([ev])[0]
    assert row["run"] == "glmc" and row["top1"] == pytest.approx(logged["top1"])
    # the row also says how well the features and the confusion matrix separate the classes
    assert row["knn"] == pytest.approx(100 * A.knn_accuracy(ev.features, ev.targets, k=10))
    assert row["diagonal"] == f"{A.diagonal_rows(ev.confusion)}/{c}"
    # a Run (not evaluated) reports its best logged epoch: the same numbers
    assert A.results_rows([run])[0]["top1"] == pytest.approx(row["top1"])


@pytest.mark.slow
def test_last_checkpoint_and_missing_checkpoints(tiny_runs, tmp_path):  # noqa: F811
    glmc_dir, _ = tiny_runs
    ev = A.evaluate_run(glmc_dir, which="last")
    assert ev.epoch == 2 and ev.which == "last"
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((glmc_dir / "config.json").read_text())
    with pytest.raises(GLMCError, match="no checkpoint"):
        A.evaluate_run(bare)


@pytest.mark.slow
def test_umap_is_cached_per_checkpoint_epoch_and_seed(tiny_runs, monkeypatch):  # noqa: F811
    glmc_dir, _ = tiny_runs
    ev = A.evaluate_run(glmc_dir)
    monkeypatch.setattr(A, "umap_embedding", _fake_umap)
    idx, emb = A.run_umap(ev, max_points=40, random_state=1)
    cached = list(glmc_dir.glob("umap-*.npy"))
    assert len(cached) == 1 and f"-e{ev.epoch}-" in cached[0].name and emb.shape == (40, 2)

    def boom(*_a, **_k):
        raise AssertionError("the cached embedding should have been used")

    monkeypatch.setattr(A, "umap_embedding", boom)
    idx2, emb2 = A.run_umap(ev, max_points=40, random_state=1)
    assert np.array_equal(idx, idx2) and np.array_equal(emb, emb2)
    monkeypatch.setattr(A, "umap_embedding", _fake_umap)
    A.run_umap(ev, max_points=40, random_state=2)  # another seed: another file
    assert len(list(glmc_dir.glob("umap-*.npy"))) == 2
    for f in glmc_dir.glob("umap-*.npy"):
        f.unlink()


@pytest.mark.slow
def test_real_umap_is_repeatable():
    pytest.importorskip("umap")
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    x[30:] += 6.0  # two clusters
    a, b = A.umap_embedding(x, random_state=0), A.umap_embedding(x, random_state=0)
    assert a.shape == (60, 2) and np.allclose(a, b)
    # the two clusters stay apart: every point is nearer its own cluster's centre
    ca, cb = a[:30].mean(0), a[30:].mean(0)
    d = np.linalg.norm(a[:, None] - np.stack([ca, cb])[None], axis=2)
    assert (d[:30, 0] < d[:30, 1]).all() and (d[30:, 1] < d[30:, 0]).all()


def test_summary_json_is_read(tmp_path):
    from glmc_core import get_preset

    cfg = get_preset("digits-lt", epochs=30)
    (tmp_path / "config.json").write_text(cfg.to_json())
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 30, "top1": 1.0}) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps({"best": {"epoch": 30}}))
    run = A.load_run(tmp_path)
    assert run.finished and run.summary["best"]["epoch"] == 30 and run.name == tmp_path.name


def test_knn_accuracy_separates_clustered_from_random_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = np.eye(8)[:4] * 10
    clustered = centres[labels] + rng.normal(size=(200, 8))
    assert A.knn_accuracy(clustered, labels, k=5) > 0.95
    noise = rng.normal(size=(200, 8))
    assert A.knn_accuracy(noise, labels, k=5) < 0.5
    # chunking does not change the answer, and a point never votes for itself
    assert A.knn_accuracy(clustered, labels, k=5, chunk=7) == A.knn_accuracy(clustered, labels, k=5)
    pairs = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    assert A.knn_accuracy(pairs, np.array([0, 0, 1, 1]), k=1) == 1.0
    assert A.knn_accuracy(pairs, np.array([0, 1, 0, 1]), k=1) == 0.0
    with pytest.raises(GLMCError):
        A.knn_accuracy(np.ones((1, 2)), np.array([0]))


def test_weight_norm_ratio_is_largest_class_over_smallest():
    assert A.weight_norm_ratio(np.array([2.0, 1.0, 4.0]), np.array([50, 5, 10])) == pytest.approx(2.0 / 1.0)


def test_rank_correlation_diagonal_rows_and_group_flow():
    assert A.rank_correlation([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert A.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert A.rank_correlation([1, 2, 3], [5, 5, 5]) == 0.0
    cm = np.array([[5, 1, 0], [4, 2, 0], [0, 1, 3]])
    assert A.diagonal_rows(cm) == 2
    ev = SimpleNamespace(groups=np.array(["many", "medium", "few"]), targets=np.array([2, 2, 2, 2, 0]),
                         preds=np.array([0, 0, 2, 1, 0]))
    assert A.group_flow(ev, "few", "many") == pytest.approx(0.5)
    assert A.group_flow(ev, "few", "medium") == pytest.approx(0.25)


def test_regrouped_evaluation_uses_other_thresholds_and_leaves_an_empty_group_without_accuracy(tmp_path):
    from glmc_core.config import get_preset

    run = A.Run(tmp_path, get_preset("digits-lt"), [])
    counts = np.array([5000, 139, 83, 50])
    ev = A.Evaluation(run, 1, "last", ["a", "b", "c", "d"], counts, np.array(["many", "medium", "medium", "few"]),
                      np.array([0, 1, 2, 3, 3]), np.array([0, 1, 0, 3, 2]), None, {})
    paper = ev.regrouped(100, 20)
    assert list(paper.groups) == ["many", "many", "medium", "medium"]
    assert paper.group_acc["few"] is None and paper.row()["few"] is None
    assert paper.group_acc["many"] == pytest.approx(1.0) and paper.group_acc["medium"] == pytest.approx(0.25)
    assert paper.top1 == ev.top1 and list(ev.groups) == ["many", "medium", "medium", "few"]  # the original unchanged


def test_evaluation_through_another_head_scores_its_predictions_and_names_it(tmp_path):
    from glmc_core.config import get_preset
    from glmc_core.errors import GLMCError

    run = A.Run(tmp_path / "glmc", get_preset("digits-lt"), [])
    targets = np.array([0, 0, 1, 1])
    heads = {"fc": np.array([0, 0, 0, 0]), "fc_cb": np.array([0, 1, 1, 1])}
    ev = A.Evaluation(run, 3, "last", ["a", "b"], np.array([9, 1]), np.array(["many", "few"]), targets,
                      heads["fc_cb"], None, {}, heads)
    fc = ev.through("fc")
    assert fc.top1 == pytest.approx(0.5) and ev.top1 == pytest.approx(0.75)  # the original unchanged
    assert fc.group_acc == {"many": pytest.approx(1.0), "medium": None, "few": pytest.approx(0.0)}
    assert fc.row()["run"] == f"{run.name} (head fc)" and ev.row()["run"] == run.name
    with pytest.raises(GLMCError, match="no predictions of the head 'u'"):
        ev.through("u")


def test_umaps_cached_in_one_folder_keep_two_sets_runs_of_the_same_name_apart(tmp_path, monkeypatch):
    from glmc_core.config import get_preset

    calls = []
    monkeypatch.setattr(A, "umap_embedding", lambda x, random_state=0: calls.append(1) or np.zeros((len(x), 2)))
    evs = []
    for set_name in ("set-a", "set-b"):  # the same run name, method and epoch in two sets
        run = A.Run(tmp_path / set_name / "glmc", get_preset("digits-lt"), [])
        evs.append(A.Evaluation(run, 60, "last", ["a", "b"], np.array([5, 1]), np.array(["many", "few"]),
                                np.array([0, 1, 1]), np.array([0, 1, 0]), np.ones((3, 4), np.float32), {}))
    for ev in evs + evs:
        A.run_umap(ev, max_points=None, cache_dir=tmp_path / "cache")
    assert len(calls) == 2 and len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_results_rows_of_runs_take_the_best_or_the_final_epoch(tmp_path):
    from glmc_core.config import get_preset

    run = A.Run(tmp_path, get_preset("digits-lt"), [{"epoch": 1, "top1": 50.0}, {"epoch": 2, "top1": 40.0}])
    assert A.results_rows([run])[0]["epoch"] == 1
    assert A.results_rows([run], epoch="final")[0]["top1"] == 40.0


@pytest.mark.slow
def test_shipped_test_outputs_give_the_same_evaluation_without_the_data(tiny_runs, tmp_path, monkeypatch):  # noqa: F811
    import shutil
    import zipfile

    for src in tiny_runs:
        d = tmp_path / src.name
        shutil.copytree(src, d)  # the session's tiny runs stay as they are
        run = A.load_run(d)
        with_features = run.method == "glmc"
        path = A.write_test_outputs(run, features=with_features)
        assert path == d / A.TEST_OUTPUTS and zipfile.is_zipfile(path)
        fresh = A.evaluate_run(run, which="last")
        with np.load(path, allow_pickle=False) as npz:  # plain arrays only: never a pickled object
            keys = set(npz.files)
            assert npz["labels"].dtype == np.uint8 and npz["pred"].dtype == np.uint8
        heads = {f"pred_{h}" for h in A.trained_heads(run.method)}
        assert keys == {"format", "epoch", "classes", "counts", "labels", "pred", "knn10", *heads} | (
            {"features"} if with_features else set())

        def no_data(*_a, **_k):
            raise AssertionError("the shipped outputs need no data")

        monkeypatch.setattr(A, "run_data", no_data)
        monkeypatch.setattr(A, "prepare_data", no_data)
        ev = A.evaluate_run(run, which="last", shipped=True)
        monkeypatch.undo()
        assert ev.source == "shipped" and fresh.source == "checkpoint"
        assert ev.epoch == fresh.epoch == (1 if run.method == "ce" else 2)
        assert np.array_equal(ev.targets, fresh.targets) and np.array_equal(ev.preds, fresh.preds)
        assert ev.classes == fresh.classes and np.array_equal(ev.counts, fresh.counts)
        assert list(ev.groups) == list(fresh.groups)
        assert set(ev.head_preds) == set(fresh.head_preds) == set(A.trained_heads(run.method))
        for h in ev.head_preds:
            assert np.array_equal(ev.head_preds[h], fresh.head_preds[h])
        assert all(np.allclose(ev.norms[h], fresh.norms[h]) for h in fresh.norms)
        row, fresh_row = ev.row(), fresh.row()
        assert row.pop("knn") == pytest.approx(fresh_row.pop("knn"), abs=100 / len(ev.targets) * 3) and row == fresh_row
        if with_features:
            assert ev.features.shape == fresh.features.shape
            assert np.array_equal(ev.features, fresh.features.astype(np.float16).astype(np.float32))
            assert ev.knn == pytest.approx(ev.shipped_knn)
        else:
            assert ev.features is None and ev.knn == ev.shipped_knn
            with pytest.raises(GLMCError, match="not shipped"):
                A.run_umap(ev)
        # another checkpoint (a run trained further) than the outputs': not used
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        np.savez(path, **{**arrays, "epoch": np.array(99, dtype=np.int32)})
        assert A.shipped_evaluation(run) is None
        assert A.evaluate_run(run, which="last", shipped=True).source == "checkpoint"
        assert A.shipped_evaluation(run, which="best") is None
        (d / "summary.json").unlink()
        with pytest.raises(GLMCError, match="not finished"):
            A.write_test_outputs(A.load_run(d))


def test_a_run_without_shipped_outputs_has_none(tmp_path):
    from glmc_core import get_preset

    (tmp_path / "config.json").write_text(get_preset("digits-lt").to_json())
    assert A.load_test_outputs(tmp_path) is None and A.shipped_evaluation(tmp_path) is None
    (tmp_path / A.TEST_OUTPUTS).write_bytes(b"not a zip")
    with pytest.raises(GLMCError, match="damaged"):
        A.load_test_outputs(tmp_path)

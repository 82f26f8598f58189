"""Figures: every plot builds from a tiny real run, draws what it says, and `glmc analyze` writes the PNGs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from matplotlib.figure import Figure
from tiny_runs import tiny_runs  # noqa: F401 - a fixture

from glmc_core import analysis as A
from glmc_core import plots as P
from glmc_core.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(epochs=4):
    return [{"epoch": e, "top1": 10.0 * e, "many": 20.0 * e, "medium": 5.0 * e, "few": None if e == 1 else 2.0 * e,
             "loss_c": 2.0 / e, "loss_cb": 1.5 / e, "loss_sim": -0.5 * e, "total": 1.0 / e, "alpha": 1 - (e / 4) ** 2,
             "lr": 0.1 / e} for e in range(1, epochs + 1)]


def _texts_overlap(fig: Figure, texts) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the layout is final only after a draw
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_learning_curves_draw_each_nonzero_loss_term_alpha_and_lr():
    fig = P.plot_learning_curves(_history())
    ax_loss, ax_alpha, ax_acc, ax_lr = fig.axes
    assert len(ax_loss.lines) == 4  # L_c, L_cb, L_sim, total
    assert np.allclose(ax_alpha.lines[0].get_ydata(), [1 - (e / 4) ** 2 for e in range(1, 5)])
    assert np.allclose(ax_lr.lines[0].get_ydata(), [0.1 / e for e in range(1, 5)])
    assert [line.get_label() for line in ax_acc.lines] == ["all", "many", "medium", "few"]
    ce = [dict(r, loss_cb=0.0, loss_sim=0.0) for r in _history()]  # CE logs zeros for the GLMC-only terms
    assert len(P.plot_learning_curves(ce).axes[0].lines) == 2
    empty = P.plot_learning_curves([])  # before the first epoch: the four panels, nothing drawn yet
    assert len(empty.axes) == 4 and not any(len(ln.get_xdata()) for ax in empty.axes for ln in ax.lines)


def test_group_curves_draw_into_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert P.plot_group_curves(_history(), ax=ax, label="GLMC") is fig
    P.plot_group_curves(_history(), ax=ax, label="CE", linestyle="--")
    assert len(ax.lines) == 8 and ax.lines[4].get_label() == "CE: all"


def test_confusion_rows_are_normalised_and_labelled():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])
    fig = P.plot_confusion(cm, ["cat", "dog", "emu"], counts=np.array([100, 10, 1]))
    ax = fig.axes[0]
    img = ax.images[0].get_array()
    assert np.allclose(img.sum(axis=1), [1, 1, 0]) and img[0, 0] == pytest.approx(0.8)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat (100)", "dog (10)", "emu (1)"]
    assert sorted(t.get_text() for t in ax.texts) == ["20", "50", "50", "80"]


def test_per_class_accuracy_is_plotted_against_counts_on_a_log_axis():
    counts = np.array([500, 100, 20, 5])
    per_class = [90.0, 50.0, None, 0.0]  # percent, as metrics.summarize gives it; None: no test images
    fig = P.plot_per_class_accuracy(per_class, counts, ["a", "b", "c", "d"], (20, 100))
    ax = fig.axes[0]
    line = ax.lines[-1]
    assert ax.get_xscale() == "log"
    assert list(line.get_xdata()) == [5, 20, 100, 500]
    np.testing.assert_array_equal(line.get_ydata(), [0.0, np.nan, 50.0, 90.0])
    group_words = [t for t in ax.texts if t.get_text() in ("few", "medium", "many")]
    assert len(group_words) == 3 and not _texts_overlap(fig, group_words)


def test_group_bars_label_every_bar():
    rows = [{"run": "glmc", "top1": 50.0, "many": 70.0, "medium": 45.0, "few": 30.0},
            {"run": "ce", "top1": 40.0, "many": 80.0, "medium": 30.0, "few": None}]
    ax = P.plot_group_bars(rows).axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:4] == [50.0, 70.0, 45.0, 30.0] and np.isnan(heights[7])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all (top-1)", "many", "medium", "few"]


def test_umap_scatter_colours_by_class_or_group():
    emb = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    groups = np.array(["many", "few", "few"])
    by_class = P.plot_umap(emb, labels, ["a", "b", "c"], groups, "class", counts=np.array([9, 3, 1])).axes[0]
    assert [t.get_text() for t in by_class.get_legend().get_texts()] == ["a (9)", "b (3)", "c (1)"]
    by_group = P.plot_umap(emb, labels, ["a", "b", "c"], groups, "group").axes[0]
    assert [t.get_text() for t in by_group.get_legend().get_texts()] == ["many (1 classes)", "few (2 classes)"]
    with pytest.raises(ValueError):
        P.plot_umap(emb, labels, ["a", "b", "c"], None, "group")


@pytest.mark.slow
def test_every_figure_builds_from_a_real_run(tiny_runs, tmp_path):  # noqa: F811
    evs = [A.evaluate_run(d) for d in tiny_runs]
    umaps = [(idx, ev.features[idx][:, :2]) for ev in evs for idx in [A.subsample(len(ev.targets), 50)]]
    glmc = evs[0]
    cfg = glmc.run.config
    figs = {
        "curves": P.plot_learning_curves(glmc.run.history),
        "confusion": P.plot_confusion(glmc.confusion, glmc.classes, glmc.counts),
        "per_class": P.plot_per_class_accuracy(100 * glmc.per_class, glmc.counts, glmc.classes,
                                               (cfg.few_threshold, cfg.many_threshold)),
        "norms": P.plot_weight_norms(glmc.norms, glmc.counts, glmc.classes),
        "bars": P.plot_group_bars(A.results_rows(evs)),
        "compare": P.plot_comparison(evs, umaps),
        "compare_per_class": P.plot_per_class_comparison(evs),
        "compare_norms": P.plot_weight_norm_comparison(evs),
    }
    for name, fig in figs.items():
        drawn = [ax for ax in fig.axes if ax.lines or ax.patches or ax.collections or ax.images]
        assert drawn, f"{name} draws nothing"
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == PNG_MAGIC
    # the CE run trained only fc: its norm panel shows one head
    assert len(figs["compare_norms"].axes[1].lines) == 1 and len(figs["compare_norms"].axes[0].lines) == 2
    # tick labels of the confusion matrix don't collide
    ax = figs["confusion"].axes[0]
    assert not _texts_overlap(figs["confusion"], ax.get_xticklabels())
    assert not _texts_overlap(figs["confusion"], ax.get_yticklabels())


@pytest.mark.slow
def test_glmc_analyze_writes_pngs_and_tables(tiny_runs, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(A, "umap_embedding", lambda f, random_state=0, **_: np.asarray(f[:, :2], dtype=np.float32))
    out = tmp_path / "report"
    assert main(["analyze", *map(str, tiny_runs), "--out", str(out), "--device", "cpu", "--max-points", "60"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    for name in ("glmc-curves.png", "glmc-confusion.png", "glmc-per-class.png", "glmc-weight-norms.png",
                 "ce-curves.png", "groups.png", "compare-per-class.png", "compare-weight-norms.png",
                 "compare-umap-confusion.png"):
        assert name in pngs
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["run"] for r in rows] == ["glmc", "ce"] and [r["method"] for r in rows] == ["glmc", "ce"]
    for r in rows:  # the evaluated checkpoints' feature kNN accuracy and dominant-diagonal rows
        assert 0 <= float(r["knn"]) <= 100 and r["diagonal"].endswith("/10"), r
    assert "| glmc | glmc |" in (out / "results.md").read_text()
    assert "files written" in capsys.readouterr().out
    for f in tiny_runs[0].glob("umap-*.npy"):
        f.unlink()


@pytest.mark.slow
def test_glmc_analyze_without_umap_and_default_out(tiny_runs, monkeypatch):  # noqa: F811
    def boom(*_a, **_k):
        raise AssertionError("--no-umap must not compute an embedding")

    monkeypatch.setattr(A, "umap_embedding", boom)
    assert main(["analyze", str(tiny_runs[1]), "--no-umap", "--device", "cpu"]) == 0
    out = tiny_runs[1] / "analysis"
    assert (out / "ce-curves.png").is_file() and not list(out.glob("*umap*"))


def test_glmc_analyze_refuses_a_non_run_folder(tmp_path, capsys):
    assert main(["analyze", str(tmp_path), "--no-umap"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glmc: error:") and "not a run folder" in err and err.count("\n") == 1


def test_one_palette_every_colour_code_lives_in_plots():
    """Hex colours are written once, in plots.py's palette; every other figure imports them."""
    import re
    from pathlib import Path

    package = Path(P.__file__).parent
    elsewhere = [f"{p.relative_to(package)}: {m}" for p in package.rglob("*.py") if p.name != "plots.py"
                 for m in re.findall(r"#[0-9a-fA-F]{6}\b", p.read_text(encoding="utf-8"))]
    assert elsewhere == []
    fig = P.plot_learning_curves(_history())
    drawn = {line.get_label(): line.get_color() for line in fig.axes[0].lines}
    assert drawn == {P.TERM_LABELS[k].plain: P.TERM_COLORS[k] for k in P.TERM_COLORS}  # as in notebook 03's terms


def test_tau_sweep_and_maxnorm_norms_draw_what_they_are_given():
    """Notebook 07's figures of a trained model: accuracy by group under logit adjustment, norms before/after."""
    from matplotlib.colors import to_rgb

    sweep = {"tau": np.array([0.0, 1.0]), "top1": np.array([50.0, 55.0]), "many": np.array([90.0, 80.0]),
             "medium": np.array([40.0, 50.0]), "few": np.array([np.nan, 30.0])}
    ax = P.plot_logit_adjustment_sweep(sweep).axes[0]
    assert [ln.get_label() for ln in ax.lines[:4]] == ["top1", "many", "medium", "few"]
    assert to_rgb(ax.lines[3].get_color()) == to_rgb(P.GROUP_COLORS["few"])
    ax = P.plot_norms_before_after([3.0, 2.0], [1.0, 1.0], 1.0).axes[0]
    assert [p.get_height() for p in ax.patches] == [3.0, 2.0, 1.0, 1.0]

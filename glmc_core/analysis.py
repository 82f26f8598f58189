"""What a trained run learned: features, predictions, UMAP, confusion, weight norms, result tables.

A run folder (see :mod:`glmc_core.train`) is read into a :class:`Run`; :func:`evaluate_run`
rebuilds its data and model, loads ``best.pt`` (or the last ``checkpoint.pt``) and keeps the
test set's targets, predictions and penultimate features in an :class:`Evaluation`. The
figures of :mod:`glmc_core.plots` and ``glmc analyze`` are drawn from these two objects.

A finished run can also carry its final checkpoint's test-set outputs in ``test_outputs.npz``
(:func:`write_test_outputs`: labels, the predicted classes of each trained head, optionally the
features in float16; never an image). :func:`shipped_evaluation` (or ``evaluate_run(...,
shipped=True)``) builds the same :class:`Evaluation` from that file and the checkpoint's weights,
without the data set: the shipped reference runs are shown that way where CIFAR-10 is missing.

The paper's Fig. 1/5 look at the same things: how the classifier's weight norms follow the
class counts (a head-biased classifier has larger norms for frequent classes) and how the
learned features of head and tail classes separate.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .checkpoint import saved_config
from .config import Config
from .data import GROUPS, LongTailData, prepare_data
from .data.longtail import shot_groups
from .errors import GLMCError
from .methods import METHOD_SPECS
from .metrics import confusion_matrix, format_number, group_accuracy, per_class_accuracy
from .runs import RunFolder, load_run_model

__all__ = ["Run", "Evaluation", "load_run", "load_history", "run_data", "evaluate_run",
           "TEST_OUTPUTS", "write_test_outputs", "load_test_outputs", "shipped_evaluation",
           "trained_heads", "subsample",
           "knn_accuracy", "weight_norm_ratio", "rank_correlation", "diagonal_rows", "group_flow",
           "umap_embedding", "run_umap", "weight_norms", "results_rows",
           "to_markdown", "to_csv", "EVAL_COLUMNS"]


@dataclass
class Run:
    """A run folder as read from disk: its config, per-epoch metrics and (if finished) summary."""

    path: Path
    config: Config
    history: list[dict] = field(default_factory=list)  # metrics.jsonl, one dict per epoch
    summary: dict | None = None  # summary.json, None while the run is unfinished
    name: str = ""  # a short label for tables and legends (the folder name)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def finished(self) -> bool:
        return bool(self.history) and self.history[-1]["epoch"] >= self.config.epochs

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path, writes=False)

    def checkpoint_path(self, which: str = "best") -> Path:
        """``best.pt`` (``which="best"``, falling back to the last checkpoint) or ``checkpoint.pt``."""
        return self.folder.checkpoint(which)


def load_history(path: str | os.PathLike) -> list[dict]:
    """Rows of ``metrics.jsonl``; a half-written last line (a run killed mid-write) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise GLMCError(f"{path} is damaged (not UTF-8 text); the run's checkpoint.pt still holds its history: "
                        f"'glmc train --resume' rewrites it") from None
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):  # a half-written last line (a run killed mid-write)
                break
            row = None
        if not (isinstance(row, dict) and isinstance(row.get("epoch"), int)
                and isinstance(row.get("top1"), (int, float))):
            raise GLMCError(f"{path}:{lineno} is not a metrics record (epoch, top1, ...); the file is damaged")
        rows.append(row)
    return rows


def load_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read a run folder (``config.json``, ``metrics.jsonl``, ``summary.json``)."""
    path = Path(path)
    if path.is_file():  # a checkpoint inside the run folder
        path = path.parent
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise GLMCError(f"{path} is not a run folder (no config.json); give the folder 'glmc train' wrote")
    try:  # the data location is never taken from the folder: see run_data
        cfg = saved_config(json.loads(cfg_path.read_text(encoding="utf-8")), cfg_path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GLMCError(f"{cfg_path} is not valid JSON") from None
    summary_path = path / "summary.json"
    summary = None
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = None
        if not isinstance(summary, dict):
            raise GLMCError(f"{summary_path} is damaged (not a JSON object); delete it (the run's "
                            f"metrics.jsonl and checkpoints are enough) or train the run again")
    return Run(path, cfg, load_history(path), summary, name or path.name)


def run_data(run: Run, data_root: str | None = None) -> LongTailData:
    """The run's long-tailed data set, rebuilt from its config, read from ``data_root`` (default
    ``$GLMC_DATA_ROOT`` or ``./data``: a location stored in a run folder is never followed)."""
    cfg = run.config if data_root is None else run.config.replace(data_root=data_root)
    return prepare_data(cfg, progress=False)


@dataclass
class Evaluation:
    """One checkpoint on the test set: targets, predictions and penultimate features."""

    run: Run
    epoch: int  # the checkpoint's epoch
    which: str  # "best" or "last"
    classes: list[str]
    counts: np.ndarray  # (C,) training images per class
    groups: np.ndarray  # (C,) many / medium / few
    targets: np.ndarray  # (N,)
    preds: np.ndarray  # (N,) through the method's inference head
    features: np.ndarray | None  # (N, D) encoder output r, the input of fc and fc_cb (None: not shipped)
    norms: dict[str, np.ndarray]  # "fc" / "fc_cb": (C,) L2 norm of each class's weight row
    head_preds: dict[str, np.ndarray] = field(default_factory=dict)  # (N,) per trained head ("fc", "fc_cb")
    shipped_knn: float | None = None  # the 10-NN accuracy written with the outputs (runs shipped without features)
    source: str = "checkpoint"  # "checkpoint" (predicted here) or "shipped" (read from test_outputs.npz)
    head: str | None = None  # None: ``preds`` from the method's inference head; else the head :meth:`through` chose
    _knn: float | None = field(default=None, init=False, repr=False, compare=False)  # computed once (seconds)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.targets, self.preds, self.num_classes)

    @property
    def per_class(self) -> np.ndarray:
        """(C,) accuracy of each class in [0, 1] (NaN for a class without test images)."""
        return per_class_accuracy(self.confusion)

    @property
    def top1(self) -> float:
        return float((self.targets == self.preds).mean())

    @property
    def group_acc(self) -> dict[str, float | None]:
        """Mean per-class accuracy in [0, 1] of many / medium / few."""
        return group_accuracy(self.per_class, self.groups)

    @property
    def knn(self) -> float:
        """Leave-one-out 10-nearest-neighbour accuracy in [0, 1] of the test features (:func:`knn_accuracy`);
        for a run shipped without its features, the value written with its outputs."""
        if self.features is None:
            if self.shipped_knn is None:
                raise GLMCError(f"{self.run.name}: no test features here (and no kNN accuracy shipped with them)")
            return self.shipped_knn
        if self._knn is None:
            self._knn = knn_accuracy(self.features, self.targets, k=10)
        return self._knn

    def regrouped(self, many_threshold: int, few_threshold: int) -> "Evaluation":
        """The same predictions with the classes grouped by other thresholds (many > ``many_threshold`` training
        images, few < ``few_threshold``), for example the paper's 100 / 20 beside a run's own split; a group no
        class falls in has no accuracy (None)."""
        groups = shot_groups(self.counts, many_threshold, few_threshold)
        out = dataclasses.replace(self, groups=groups)
        out._knn = self._knn
        return out

    def through(self, head: str) -> "Evaluation":
        """The same checkpoint scored through another of its trained heads (``"fc"`` or ``"fc_cb"`` of a cumulative
        method: GLMC predicts with ``fc_cb``, and ``through("fc")`` shows what its plain classifier learned). Its
        table row names the head beside the run."""
        if head not in self.head_preds:
            have = ", ".join(sorted(self.head_preds)) or "none"
            raise GLMCError(f"{self.run.name}: no predictions of the head {head!r} here (heads: {have})")
        out = dataclasses.replace(self, preds=self.head_preds[head], head=head)
        out._knn = self._knn  # the same features
        return out

    def row(self) -> dict:
        """One line of a results table (percentages), with how well the features and the confusion matrix
        show the classes: ``knn`` (%) and ``diagonal`` (rows whose largest entry is the diagonal)."""
        g = self.group_acc
        cfg = self.run.config
        has_knn = len(self.targets) > 1 and (self.features is not None or self.shipped_knn is not None)
        name = self.run.name if self.head is None else f"{self.run.name} (head {self.head})"
        return {"run": name, "method": cfg.method, "model": cfg.model, "dataset": cfg.dataset,
                "imbalance_factor": cfg.imbalance_factor, "epoch": self.epoch, "top1": 100 * self.top1,
                **{k: None if g[k] is None else 100 * g[k] for k in GROUPS},
                "knn": 100 * self.knn if has_knn else None,
                "diagonal": f"{diagonal_rows(self.confusion)}/{self.num_classes}"}


def evaluate_run(run: Run | str | os.PathLike, data: LongTailData | None = None, which: str = "best",
                 device: str | torch.device = "auto", data_root: str | None = None,
                 shipped: bool = False) -> Evaluation:
    """Load the run's checkpoint and predict the test set, keeping the features.

    ``shipped``: use the outputs written with the run (``test_outputs.npz``, see :func:`shipped_evaluation`)
    when they hold this checkpoint, without loading any data; else predict as usual.
    """
    run = run if isinstance(run, Run) else load_run(run)
    if shipped:
        ev = shipped_evaluation(run, which)
        if ev is not None:
            return ev
    return _predict_run(run, data, which, device, data_root)[0]


def _predict_run(run: Run, data: LongTailData | None, which: str, device, data_root: str | None = None
                 ) -> tuple[Evaluation, dict]:
    """The evaluation of the run's checkpoint (with each trained head's predictions) and the checkpoint."""
    from .train import predict, resolve_device

    loaded = load_run_model(run.path, which, data=data, data_root=data_root, device=resolve_device(str(device)))
    ck, data, model, device = loaded.checkpoint, loaded.data, loaded.model, loaded.device
    t, p, f = predict(model, data.test, run.config, data, device, features=True)
    head_preds = {model.inference_head: p}
    with torch.inference_mode():  # the other trained head, on the same features (in fp32, as predict's head)
        for head in trained_heads(run.config.method):
            if head not in head_preds and getattr(model, head, None) is not None:
                logits = getattr(model, head)(torch.from_numpy(f).to(device))
                head_preds[head] = logits.argmax(1).cpu().numpy()
    epoch = ck.get("epoch", 0)
    ev = Evaluation(run, epoch if isinstance(epoch, int) else 0, which, list(data.classes), np.asarray(data.counts),
                    np.asarray(data.groups), t, p, f, weight_norms(ck["model"]), head_preds)
    return ev, ck


# ------------------------------------------------------------------------ shipped test outputs
TEST_OUTPUTS = "test_outputs.npz"  # in a finished run folder: its final checkpoint's test-set outputs
_OUTPUTS_FORMAT = "glmc-test-outputs/1"


def _small_int(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.uint8 if a.max(initial=0) < 256 and a.min(initial=0) >= 0 else np.int16)


def write_test_outputs(run: Run | str | os.PathLike, data: LongTailData | None = None, features: bool = False,
                       device: str | torch.device = "cpu", data_root: str | None = None) -> Path:
    """Predict the test set with the run's final checkpoint (``checkpoint.pt``) and save what the notebooks'
    tables and figures need beside it, in ``RUN/test_outputs.npz``, so that they need no data set:

    * ``labels`` (N,) the test set's classes, ``pred`` (N,) the inference head's predicted classes,
      ``pred_fc`` / ``pred_fc_cb`` those of each head the method trains (:func:`trained_heads`);
    * ``features`` (N, D) float16, only with ``features=True`` (about 1 MB for 10,000 images of dimension 64);
    * ``knn10``: the leave-one-out 10-NN accuracy of the float16 features (what :func:`knn_accuracy` gives on
      the shipped features), so that a table can show it for a run shipped without them;
    * ``epoch`` of the checkpoint, ``classes``, ``counts`` (training images per class), ``format``.

    Only predicted classes, labels and features: never an image. The arrays are plain (no Python objects:
    ``np.load(path, allow_pickle=False)`` reads them) and LZMA-compressed inside the ``.npz`` zip. Refuses
    an unfinished run (no ``summary.json``): its checkpoint will still change.
    """
    run = run if isinstance(run, Run) else load_run(run)
    if run.summary is None:
        raise GLMCError(f"{run.path} is not finished (no summary.json): its test outputs would go stale")
    ev, _ = _predict_run(run, data, "last", device, data_root)
    f16 = ev.features.astype(np.float16)
    arrays = {"format": np.array(_OUTPUTS_FORMAT), "epoch": np.array(ev.epoch, dtype=np.int32),
              "classes": np.array(ev.classes), "counts": np.asarray(ev.counts, dtype=np.int32),
              "labels": _small_int(ev.targets), "pred": _small_int(ev.preds),
              **{f"pred_{h}": _small_int(p) for h, p in sorted(ev.head_preds.items())},
              "knn10": np.array(knn_accuracy(f16.astype(np.float32), ev.targets, k=10), dtype=np.float64)}
    if features:  # column-major: each feature's values lie together, which compresses better
        arrays["features"] = np.asfortranarray(f16)
    path = run.folder.file(TEST_OUTPUTS)
    tmp = path.with_name(f".{TEST_OUTPUTS}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value, allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())
    os.replace(tmp, path)
    return path


def load_test_outputs(run: Run | str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of ``RUN/test_outputs.npz`` (:func:`write_test_outputs`), or None when the run has none."""
    run = run if isinstance(run, Run) else load_run(run)
    path = run.folder.file(TEST_OUTPUTS)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GLMCError(f"{path} is damaged ({exc.__class__.__name__}); write it again with "
                        f"glmc_core.analysis.write_test_outputs") from None
    if str(out.get("format", "")) != _OUTPUTS_FORMAT:
        raise GLMCError(f"{path} is not a glmc test-outputs file ({_OUTPUTS_FORMAT} expected)")
    return out


def shipped_evaluation(run: Run | str | os.PathLike, which: str = "last") -> Evaluation | None:
    """The :class:`Evaluation` of the run's final checkpoint built from its shipped ``test_outputs.npz``,
    without any data set: labels and predicted classes from the file, groups from its class counts and the
    run's thresholds, weight norms from ``checkpoint.pt``, features when they were shipped (float16, else
    ``None``: :attr:`Evaluation.knn` then gives the shipped kNN accuracy). None when the run has no such file,
    or ``which`` is not ``"last"``, or the file is of another epoch than the checkpoint (a run trained further)."""
    run = run if isinstance(run, Run) else load_run(run)
    if which != "last":
        return None
    out = load_test_outputs(run)
    if out is None:
        return None
    epoch = int(out["epoch"])
    norms: dict[str, np.ndarray] = {}
    if run.folder.file("checkpoint.pt").is_file():
        ck, _ = run.folder.load("last")
        if ck.get("epoch") != epoch:
            return None
        norms = weight_norms(ck["model"])
    elif run.history and run.history[-1]["epoch"] != epoch:
        return None
    cfg = run.config
    counts = np.asarray(out["counts"], dtype=np.int64)
    labels = np.asarray(out["labels"], dtype=np.int64)
    heads = {k[len("pred_"):]: np.asarray(v, dtype=np.int64) for k, v in out.items() if k.startswith("pred_")}
    feats = out.get("features")
    return Evaluation(run, epoch, "last", [str(c) for c in out["classes"]], counts,
                      shot_groups(counts, cfg.many_threshold, cfg.few_threshold), labels,
                      np.asarray(out["pred"], dtype=np.int64),
                      None if feats is None else np.ascontiguousarray(feats, dtype=np.float32), norms, heads,
                      float(out["knn10"]) if "knn10" in out else None, "shipped")


def weight_norms(state_dict: dict) -> dict[str, np.ndarray]:
    """L2 norm of each class's weight vector in ``fc`` and ``fc_cb``: ``‖W_c‖`` for c = 1 … C.

    A classifier trained on long-tailed data grows larger norms for head classes, which
    biases its logits towards them; re-balancing (fc_cb, paper Sec. 3.3) counters this.
    """
    return {head: state_dict[f"{head}.weight"].float().norm(dim=1).cpu().numpy()
            for head in ("fc", "fc_cb") if f"{head}.weight" in state_dict}


def trained_heads(method: str) -> list[str]:
    """The classifier heads a method trains: both for cumulative methods, else only its inference head."""
    spec = METHOD_SPECS[method]
    return ["fc", "fc_cb"] if spec.cumulative else [spec.inference_head]


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 10, chunk: int = 1024) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of ``features`` (N, D): the share of points whose
    ``k`` nearest other points (cosine similarity) vote for their own label (ties: the smallest label).

    A number for "the features show class structure": chance is about the largest class's share,
    1.0 means every point sits among its own class.
    """
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels)
    n = len(x)
    if n < 2:
        raise GLMCError("knn_accuracy needs at least two points")
    k = max(1, min(int(k), n - 1))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    num_classes = int(y.max()) + 1
    correct = 0
    for start in range(0, n, chunk):
        sim = x[start:start + chunk] @ x.T
        rows = np.arange(sim.shape[0])
        sim[rows, start + rows] = -np.inf  # leave the point itself out
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((sim.shape[0], num_classes), dtype=np.int64)
        np.add.at(votes, (np.repeat(rows, k), y[nn].ravel()), 1)
        correct += int((votes.argmax(1) == y[start:start + chunk]).sum())
    return correct / n


def weight_norm_ratio(norms: np.ndarray, counts: np.ndarray) -> float:
    """‖W‖ of the class with the most training images over ‖W‖ of the class with the fewest."""
    norms, counts = np.asarray(norms, dtype=float), np.asarray(counts)
    return float(norms[counts.argmax()] / norms[counts.argmin()])


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (ties get their mean rank): +1 when ``y`` rises with ``x``."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return 0.0
    return float(spearmanr(x[keep], y[keep]).statistic)


def diagonal_rows(cm: np.ndarray) -> int:
    """How many rows (true classes) of a confusion matrix have their largest entry on the diagonal."""
    cm = np.asarray(cm)
    return int(sum(cm[i, i] >= cm[i].max() and cm[i].sum() > 0 for i in range(len(cm))))


def group_flow(ev: Evaluation, source: str = "few", target: str = "many") -> float:
    """Share (0–1) of the test images of ``source``-group classes predicted as a class of ``target``."""
    groups = np.asarray(ev.groups)
    src = np.isin(ev.targets, np.flatnonzero(groups == source))
    if not src.any():
        return float("nan")
    return float(np.isin(ev.preds[src], np.flatnonzero(groups == target)).mean())


def subsample(n_total: int, n: int | None, random_state: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` points, drawn without replacement (all when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(random_state).choice(n_total, size=n, replace=False))


def umap_embedding(features: np.ndarray, random_state: int = 0, n_neighbors: int = 15,
                   min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of ``features`` (N, D) → (N, 2); fixed ``random_state`` gives the same picture each time."""
    try:
        import umap  # imported here: it takes seconds (numba) and only this function needs it
    except ImportError:
        raise GLMCError("UMAP needs the umap-learn package: pip install 'glmc[notebooks]' "
                        "(or run 'glmc analyze --no-umap')") from None
    import warnings

    n_neighbors = max(2, min(n_neighbors, len(features) - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state,
                        n_jobs=1)  # a fixed random_state runs single-threaded anyway; saying so avoids a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(np.asarray(features, dtype=np.float32)), dtype=np.float32)


def run_umap(ev: Evaluation, max_points: int | None = 2000, random_state: int = 0,
             cache: bool = True, cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, embedding)`` of (a subsample of) the test features, cached in the run folder.

    The cache file name holds the checkpoint (best/last and its epoch), the test set size,
    the subsample size and the seed, so a later checkpoint never reuses an old picture.
    ``cache_dir`` keeps the cache elsewhere (a shipped run folder stays as it was shipped).
    """
    if ev.features is None:
        raise GLMCError(f"{ev.run.name}: its test features were not shipped, so there is no UMAP of them here; "
                        f"evaluate its checkpoint with the data (evaluate_run) for one")
    idx = subsample(len(ev.targets), max_points, random_state)
    kind = "-shipped" if ev.source == "shipped" else ""  # float16 features: not the same picture to the last bit
    name = f"umap-{ev.which}{kind}-e{ev.epoch}-t{len(ev.targets)}-n{len(idx)}-s{random_state}.npy"
    if cache_dir is not None:  # one folder for several sets' runs: the set (the run folder's parent) names them apart
        name = f"{Path(ev.run.path).parent.name}-{Path(ev.run.path).name}-{ev.run.config.method}-{name}"
    path = (Path(cache_dir) if cache_dir is not None else ev.run.path) / name
    if cache and path.is_file():
        emb = np.load(path)
        if emb.shape == (len(idx), 2):
            return idx, emb
    emb = umap_embedding(ev.features[idx], random_state)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp.npy")
            np.save(tmp, emb)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only run folder: no cache
    return idx, emb


# ------------------------------------------------------------------------------------ tables
_COLUMNS = ("run", "method", "model", "dataset", "imbalance_factor", "epoch", "top1", "many", "medium", "few")
# Columns of a table of evaluated checkpoints (glmc analyze): also the features' kNN accuracy and the diagonal rows.
EVAL_COLUMNS = _COLUMNS + ("knn", "diagonal")


def results_rows(items: Iterable[Evaluation | Run], epoch: str = "best") -> list[dict]:
    """One row per evaluation (its checkpoint) or run (its ``"best"`` or ``"final"`` epoch from ``metrics.jsonl``)."""
    rows = []
    for it in items:
        if isinstance(it, Evaluation):
            rows.append(it.row())
            continue
        if not it.history:
            raise GLMCError(f"{it.path} has no finished epoch yet")
        best = (it.history[-1] if epoch == "final" else
                max(it.history, key=lambda r: r.get("val_top1", r["top1"])))
        cfg = it.config
        rows.append({"run": it.name, "method": cfg.method, "model": cfg.model, "dataset": cfg.dataset,
                     "imbalance_factor": cfg.imbalance_factor, "epoch": best["epoch"],
                     **{k: best.get(k) for k in ("top1", *GROUPS)}})
    return rows


def _cell(v, column: str) -> str:
    if v is None:
        return format_number(v)
    if isinstance(v, float):
        return f"{v:.2f}" if column in ("top1", "knn", *GROUPS) else f"{v:g}"
    return str(v)


def to_markdown(rows: Sequence[dict], columns: Sequence[str] = _COLUMNS) -> str:
    """A GitHub-flavoured markdown table (accuracies in percent)."""
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if c in ("run", "method", "model", "dataset") else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def to_csv(rows: Sequence[dict], columns: Sequence[str] = _COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
    return buf.getvalue()

"""What a notebook trains with, chosen in one place: quick or full, which data, which device.

* :func:`quick_mode` is the one reading of ``$GLMC_QUICK`` (1/0, true/false, yes/no, on/off);
* :func:`env_data_root` the one reading of ``$GLMC_DATA_ROOT``;
* :func:`notebook_config` turns them into a :class:`~glmc_core.config.Config` and one line
  saying what it is (quick: a small ResNet-8 on a small subset, on the CPU; full: the preset,
  on the best device);
* :func:`notebook_setup` also loads the data once for the training notebooks (05–07), and
  falls back to scikit-learn's digits, saying so, when no CIFAR-10 copy is found;
* :func:`reference_runs` / :func:`reference_run` find the finished CPU reference runs shipped in
  ``reference_runs/`` (real CIFAR-10-LT, trained for tens of epochs), so that notebooks show results of
  models trained long enough instead of their quick live runs. Their curves come from ``metrics.jsonl`` and
  their tables and figures from the test-set outputs shipped with them (``test_outputs.npz``, written by
  :func:`write_reference_outputs`): no data set is needed to show them. The data they were trained on is
  loaded too when it is at hand;
* :func:`download_cifar10` is the notebooks' one download: torchvision's CIFAR-10 into ``data/`` when online.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, get_preset, parse_bool
from ..data import LongTailData, prepare_data
from ..errors import DataNotFound, DownloadFailed, GLMCError

__all__ = ["env_flag", "quick_mode", "env_data_root", "notebook_config", "NotebookSetup", "notebook_setup",
           "download_cifar10", "REFERENCE_SET", "PAPER_SET", "reference_runs_dir", "reference_set_dir",
           "ReferenceRuns", "reference_runs",
           "reference_run", "FEATURE_RUNS", "write_reference_outputs", "RunsInUse", "runs_in_use"]

# Quick CIFAR-10-LT for a 2-core CPU: a small ResNet on a few hundred images (n_max 300 at IF 100: 740 images).
_QUICK_CIFAR = dict(model="resnet8", n_max=300, test_per_class=100, batch_size=64, lr=0.05, weight_decay=5e-4)


def env_flag(name: str, default: bool) -> bool:
    """``$name`` read as a boolean (1/0, true/false, yes/no, on/off); ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return bool(default)
    try:
        return parse_bool(raw)
    except ValueError:
        raise GLMCError(f"environment variable {name} must be 1/0, true/false, yes/no or on/off, got {raw!r}") from None


def quick_mode(default: bool = True) -> bool:
    """Quick (minutes on a CPU) or full (the paper's recipe, a GPU job): ``$GLMC_QUICK`` overrides ``default``."""
    return env_flag("GLMC_QUICK", default)


def env_data_root(default: str | None = None) -> str | None:
    """Where CIFAR-10 is (a folder or ``.zip``): ``$GLMC_DATA_ROOT``, else ``default`` (None: the offline digits)."""
    return os.environ.get("GLMC_DATA_ROOT") or default


def use_repository_cache() -> None:
    """Run from a ``notebooks/`` folder with ``$GLMC_CACHE_DIR`` unset, point that variable at ``../data/cache``,
    so that decoded images land in the repository's git-ignored cache and never in ``notebooks/data``
    (where ``git add notebooks`` would pick them up). Called when ``glmc_core.notebook`` is imported, so every
    notebook's data, whichever function loads it, goes there."""
    if not os.environ.get("GLMC_CACHE_DIR") and os.path.basename(os.getcwd()) == "notebooks":
        os.environ["GLMC_CACHE_DIR"] = os.path.join(os.path.dirname(os.getcwd()), "data", "cache")


def notebook_config(quick: bool = True, epochs: int | None = None, data_root: str | None = None,
                    quick_epochs: int | None = None, offline: bool = False, **overrides) -> tuple[Config, str]:
    """The configuration a teaching notebook trains with, and one line saying what it is.

    ``$GLMC_QUICK`` overrides ``quick``; ``data_root`` (else ``$GLMC_DATA_ROOT``) selects the real
    CIFAR-10-LT (IF 100), otherwise the offline ``digits-lt`` preset is used.

    * quick: a small ResNet-8 on a small subset for a few epochs, on the CPU (minutes on a laptop);
    * full: the preset itself (for CIFAR-10-LT the paper's recipe, a GPU job) unless ``epochs`` is given.

    Run from a ``notebooks/`` folder it calls :func:`use_repository_cache` (as importing
    ``glmc_core.notebook`` does).
    ``epochs`` applies in both modes; ``quick_epochs`` only in quick mode (default 8 on digits, 3 on CIFAR).
    ``offline`` selects the digits whatever the data root says (the fallback when CIFAR-10 is missing).
    """
    quick = quick_mode(quick)
    use_repository_cache()
    root = None if offline else (data_root or env_data_root())
    settings: dict = {"progress": False, "device": "cpu" if quick else "auto"}
    if root:
        name = "cifar10-lt-if100"
        settings.update(data_root=root)
        if quick:
            settings.update(_QUICK_CIFAR, epochs=quick_epochs or 3)
    else:
        name = "digits-lt"
        if quick:
            settings.update(epochs=quick_epochs or 8)
    if epochs is not None:
        settings["epochs"] = epochs
    settings.update(overrides)
    cfg = get_preset(name, **settings)
    where = (f"real CIFAR-10-LT from {root}" if root else
             "the offline digits preset (scikit-learn's 8x8 digits, long-tailed; set GLMC_DATA_ROOT to use CIFAR-10)")
    mode = "QUICK mode (small model and subset, few epochs)" if quick else "FULL mode"
    note = f"Data: {where}. {mode}: model {cfg.model}, {cfg.epochs} epochs, imbalance factor {cfg.imbalance_factor:g}."
    return cfg, note


@dataclass
class NotebookSetup:
    """The data and base configuration a training notebook uses, and a sentence saying which."""

    cfg: Config  # GLMC; ``config("ce")`` gives the baseline on the same data
    data: LongTailData  # shared by every run of the notebook (loaded once)
    message: str
    tag: str  # "quick-cifar10", "quick-digits" or "full-cifar10": part of the run folder names

    def config(self, method: str = "glmc", **overrides) -> Config:
        return self.cfg.replace(method=method, run_name=f"nb-{self.tag}-{method}", **overrides)


def notebook_setup(quick: bool = True, data_root: str | None = None, runs: str = "runs", epochs: int | None = None,
                   seed: int = 0, progress: bool = True, offline: bool = False) -> NotebookSetup:
    """Data and settings for the training notebooks: :func:`notebook_config` (ResNet-8, 300 images in the
    largest class, IF 100: 300 … 3, 100 test images per class in quick mode), with the data loaded once,
    and the offline digits, said on screen, when no CIFAR-10 copy is found in quick mode. ``offline`` chooses the
    digits in quick mode whatever data is at hand (a notebook whose live runs must be long enough to mean something)."""
    common = dict(out=runs, seed=seed, progress=progress)
    quick = quick_mode(quick)
    if offline and quick:  # chosen, not a fallback: the digits train long enough on a CPU to show the method
        return _digits_setup(epochs, common, progress, missing=None)
    cfg, _ = notebook_config(quick, epochs, data_root, quick_epochs=6, **common)
    try:
        data = prepare_data(cfg, progress=progress)
        if cfg.dataset != "digits":
            msg = (f"CIFAR-10-LT (imbalance factor {cfg.imbalance_factor:g}) from {data.origin}: {len(data.train)} "
                   f"training images, {len(data.test)} test images, model {cfg.model}, {cfg.epochs} epochs on "
                   f"{cfg.device}.")
            return NotebookSetup(cfg, data, msg, f"{'quick' if quick else 'full'}-cifar10")
        reason = "no data root given"
    except GLMCError as exc:  # quick mode trains on the digits instead, whatever kept CIFAR-10 from loading
        if not quick:
            raise
        reason = exc.what if isinstance(exc, DataNotFound) else str(exc)
    return _digits_setup(epochs, common, progress, missing=reason)


def _digits_setup(epochs, common: dict, progress: bool, missing: str | None) -> NotebookSetup:
    """The quick live runs on the offline digits: chosen (``missing`` None), or because no CIFAR-10 copy was
    found (``missing`` says why); the message says which."""
    cfg, _ = notebook_config(True, epochs, quick_epochs=8, offline=True, **common)
    data = prepare_data(cfg, progress=progress)
    what = (f"scikit-learn's 8x8 handwritten digits, long-tailed (imbalance factor {cfg.imbalance_factor:g}): "
            f"{len(data.train)} training images, {len(data.test)} test images, model {cfg.model}, {cfg.epochs} epochs "
            f"on {cfg.device}")
    msg = (f"Live runs on the offline digits preset ({what})." if missing is None else
           f"NOTE: no CIFAR-10 copy was found ({missing}). Using the offline stand-in instead ({what}). Set DATA_ROOT "
           f"(or $GLMC_DATA_ROOT) to a CIFAR-10 folder or zip for the real thing.")
    return NotebookSetup(cfg, data, msg, "quick-digits")


def download_cifar10(root: str | os.PathLike | None = None, download: bool = True) -> str | None:
    """Fetch CIFAR-10 with torchvision into ``root`` (default the repository's ``data/``) when online, as
    ``glmc train --download`` does, and return ``root`` for ``DATA_ROOT``; None (said in one line) when offline.

    Nothing is fetched when ``download`` is false or when ``root`` already holds it (torchvision's
    ``cifar-10-batches-py``). torchvision's own progress output is kept off the notebook.
    """
    import contextlib
    import io
    import socket

    from ..data.formats import load_cifar

    root = Path(root) if root is not None else Path(__file__).resolve().parents[2] / "data"
    if not download:
        return None
    if (root / "cifar-10-batches-py").is_dir():
        print(f"CIFAR-10 is already in {root} (torchvision's format): DATA_ROOT = {str(root)!r}.")
        return str(root)
    print(f"Downloading CIFAR-10 (170 MB) with torchvision into {root} ... ", end="", flush=True)
    timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(30)  # offline, a name lookup or connection fails fast instead of hanging
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            load_cifar(root, 10, download=True, progress=False, lazy=True)
    except GLMCError as exc:
        cause = exc.cause if isinstance(exc, DownloadFailed) else str(exc)
        print(f"not downloaded (offline? {cause}): the notebooks show the reference runs from their shipped outputs.")
        return None
    finally:
        socket.setdefaulttimeout(timeout)
    print(f"done: DATA_ROOT = {str(root)!r}.")
    return str(root)


# ------------------------------------------------------------------------------ reference runs
REFERENCE_SET = "cifar10-lt-if100-resnet8"  # the shipped set: benchmarks/reference_runs.sh
PAPER_SET = "cifar10-lt-if100-resnet32-200ep"  # the paper's recipe for its 200 epochs: GLMC_REF_SET=paper200


def reference_runs_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of the shipped reference runs: ``root``, else ``$GLMC_REFERENCE_RUNS``, else
    ``<repository>/reference_runs/cifar10-lt-if100-resnet8`` (found from this file, so it works from
    ``notebooks/``, the repository root or a clean clone alike)."""
    if root is None:
        repo = Path(__file__).resolve().parents[2]
        root = os.environ.get("GLMC_REFERENCE_RUNS") or repo / "reference_runs" / REFERENCE_SET
    return Path(root)


def reference_set_dir(name: str) -> Path:
    """The folder of the shipped reference set ``name`` (:data:`REFERENCE_SET`, :data:`PAPER_SET`,
    ``"cifar10-lt-if100-resnet20"``): a sibling of :func:`reference_runs_dir`'s folder."""
    return reference_runs_dir().parent / name


@dataclass
class ReferenceRuns:
    """The finished reference runs, the data they were trained on when it is at hand, and a sentence saying which."""

    runs: dict = field(default_factory=dict)  # name -> analysis.Run, finished runs only
    data: LongTailData | None = None  # the runs' own data (whole CIFAR-10-LT training set, full test set), or None
    message: str = ""
    unfinished: list[str] = field(default_factory=list)  # run folders present but not finished (no summary.json)

    def __bool__(self) -> bool:
        return bool(self.runs)

    def __contains__(self, name: str) -> bool:
        return name in self.runs

    def __getitem__(self, name: str):
        return self.runs[name]

    def has(self, *names: str) -> bool:
        """True when every named run is finished and usable."""
        return all(n in self.runs for n in names)

    def evaluate(self, name: str, device: str = "cpu"):
        """The :class:`~glmc_core.analysis.Evaluation` of the run's final checkpoint: from its shipped test outputs
        (no data needed), else predicted again on the data when it is at hand."""
        from ..analysis import evaluate_run, shipped_evaluation

        ev = shipped_evaluation(self.runs[name])
        if ev is not None:
            return ev
        if self.data is None:
            raise GLMCError(f"the reference run {name} ships no test outputs of its final checkpoint and the data is "
                            f"not here: set GLMC_DATA_ROOT, or write them (glmc_core.notebook.setup."
                            f"write_reference_outputs)")
        return evaluate_run(self.runs[name], data=self.data, which="last", device=device)

    def describe(self, name: str) -> str:
        """What the run ``name`` is, read from its config and metrics: data, model, recipe, epochs, hours."""
        from ..analysis import load_test_outputs
        from ..metrics import format_number

        run = self.runs[name]
        c, h = run.config, run.history
        hours = sum(r.get("seconds", 0.0) for r in h) / 3600
        n_train = n_test = "?"
        if self.data is not None:
            n_train, n_test = len(self.data.train), len(self.data.test)
        else:
            try:
                out = load_test_outputs(run)
            except GLMCError:
                out = None
            if out is not None:
                n_train, n_test = int(out["counts"].sum()), len(out["labels"])
        final = h[-1] if h else {}
        dataset = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(c.dataset, c.dataset)
        return (f"{name}: method {c.method}, model {c.model}, {dataset}-LT imbalance factor "
                f"{c.imbalance_factor:g} ({n_train} training images, {n_test} test images), {len(h)} of {c.epochs} "
                f"epochs, batch {c.batch_size}, lr {c.lr:g}, weight decay {c.weight_decay:g}, seed {c.seed}, "
                f"on {c.device} in {hours:.1f} h; final top-1 {format_number(final.get('top1'), '.1f')} %")


def _run_data_root(data_root: str | None) -> str | None:
    root = data_root or env_data_root()
    return root if root and Path(root).exists() else None


def reference_runs(data_root: str | None = None, root: str | os.PathLike | None = None,
                   names: tuple[str, ...] | None = None, load_data: bool = True) -> ReferenceRuns:
    """The finished reference runs (``summary.json`` present), and the data they were trained on when it is here.

    Nothing here needs the data: the curves are in each run's ``metrics.jsonl`` and the final checkpoint's
    test-set outputs in its ``test_outputs.npz`` (:meth:`ReferenceRuns.evaluate`). With the real CIFAR-10 at hand
    (``data_root``, else ``$GLMC_DATA_ROOT``) and ``load_data``, it is loaded too (``.data``), for whatever a
    notebook computes beyond the shipped outputs. With no finished run the result is empty (falsy) and its
    ``message`` says why. Runs whose data settings differ from the first run's (dataset, imbalance factor,
    subset, groups) are left out, so that one set's runs compare on the same data.
    """
    from ..analysis import load_run

    folder = reference_runs_dir(root)
    if not folder.is_dir():
        return ReferenceRuns(message=f"no reference runs in {folder}: the notebook uses its live quick runs instead.")
    finished, unfinished = {}, []
    for d in sorted(p for p in folder.iterdir() if (p / "config.json").is_file()):
        if names is not None and d.name not in names:
            continue
        if not (d / "summary.json").is_file():
            unfinished.append(d.name)
            continue
        try:
            finished[d.name] = load_run(d)
        except (GLMCError, ValueError, json.JSONDecodeError):
            unfinished.append(d.name)
    if not finished:
        waiting = ", ".join(unfinished) or "none"
        return ReferenceRuns(message=f"no finished reference run in {folder} (unfinished: {waiting})"
                                     ": the notebook uses its live quick runs instead.", unfinished=unfinished)
    first = next(iter(finished.values()))
    usable = {}
    for name, run in finished.items():
        c = run.config
        same = (c.dataset == first.config.dataset and c.imbalance_factor == first.config.imbalance_factor
                and c.n_max == first.config.n_max and c.subset_seed == first.config.subset_seed
                and c.test_per_class == first.config.test_per_class
                and (c.many_threshold, c.few_threshold) == (first.config.many_threshold, first.config.few_threshold))
        (usable.__setitem__(name, run) if same else unfinished.append(name))
    data, where = None, "their test-set outputs ship with them, so no data set is needed to show them"
    data_root = _run_data_root(data_root) if load_data else None
    if data_root is not None:
        try:
            data = prepare_data(first.config.replace(data_root=data_root), progress=False)
            where = f"their data is here too ({data_root})"
        except GLMCError:
            where += f" (no CIFAR-10 copy was loaded from {data_root})"
    msg = (f"Reference runs from {folder}: {', '.join(usable)} (finished)"
           + (f"; not used yet: {', '.join(unfinished)}" if unfinished else "") + f"; {where}.")
    return ReferenceRuns(usable, data, msg, unfinished)


# The runs whose test features ship (float16, about 1 MB each): the ones notebook 06 draws a UMAP of.
# Every other finished run ships its labels, predicted classes and kNN accuracy (about 10 kB).
FEATURE_RUNS = {"cifar10-lt-if100-resnet8": ("glmc", "ce", "glmc-k1", "glmc-k1-lr05", "ce-lr05"),
                "cifar10-lt-if100-resnet20": ("glmc-k1-lr05", "ce"),
                PAPER_SET: ("glmc", "ce")}


def write_reference_outputs(data_root: str, sets: tuple[str, ...] | None = None, overwrite: bool = False,
                            device: str = "cpu", log=print) -> list[Path]:
    """Write ``test_outputs.npz`` (:func:`~glmc_core.analysis.write_test_outputs`) into every finished reference
    run of ``reference_runs/`` (``sets``: the set folders' names; default all), from its final checkpoint
    and the real test set at ``data_root``; with features for :data:`FEATURE_RUNS`. A folder without
    ``summary.json`` (still training) is left alone; one whose outputs already hold its final epoch is skipped
    unless ``overwrite``. Returns the files written. The one-off command is in ``reference_runs/README.md``."""
    from ..analysis import load_run, load_test_outputs, run_data, write_test_outputs

    base = reference_runs_dir().parent
    written = []
    for set_dir in sorted(p for p in base.iterdir() if p.is_dir() and (sets is None or p.name in sets)):
        runs = [load_run(d) for d in sorted(set_dir.iterdir()) if (d / "summary.json").is_file()]
        todo = []
        for run in runs:
            want = run.name in FEATURE_RUNS.get(set_dir.name, ())
            out = None if overwrite else load_test_outputs(run)
            if out is None or int(out["epoch"]) != run.history[-1]["epoch"] or ("features" in out) != want:
                todo.append((run, want))
        loaded: dict = {}  # the data of each distinct data setting, loaded once
        for run, want in todo:
            c = run.config
            key = (c.dataset, c.imbalance_factor, c.n_max, c.subset_seed, c.test_per_class, c.many_threshold,
                   c.few_threshold, c.image_size)
            data = loaded[key] if key in loaded else loaded.setdefault(key, run_data(run, data_root))
            path = write_test_outputs(run, data, features=want, device=device)
            log(f"{path}: {path.stat().st_size / 1e6:.2f} MB" + (" (with features)" if want else ""))
            written.append(path)
    return written


def reference_run(name: str, data_root: str | None = None, root: str | os.PathLike | None = None):
    """One finished reference run (an :class:`~glmc_core.analysis.Run`), or None when it is missing or unfinished."""
    refs = reference_runs(data_root, root, names=(name,), load_data=False)
    return refs.runs.get(name)


@dataclass
class RunsInUse:
    """The runs a notebook shows: the reference runs when they are finished, else its live quick runs."""

    data: LongTailData | None  # None: reference runs shown from their shipped outputs, without the data
    runs: dict  # name -> analysis.Run
    source: str  # "reference" or "live"
    which: str  # the checkpoint evaluated: "last" (the final epoch), for reference and live runs alike
    message: str
    reference: ReferenceRuns | None = None

    @property
    def is_reference(self) -> bool:
        return self.source == "reference"


def runs_in_use(methods: tuple[str, ...] = ("glmc", "ce"), quick: bool = True, data_root: str | None = None,
                runs: str = "runs", epochs: int | None = None, use_reference: bool = True,
                progress: bool = False, root: str | os.PathLike | None = None) -> RunsInUse:
    """The finished reference runs ``methods`` (named by their method) when all exist (``use_reference``), with
    their data when it is at hand (their shipped test outputs need none); otherwise the notebook's live runs of the
    same methods (trained, resumed or reused with :func:`~glmc_core.train.train_or_reuse`; in quick mode on the
    offline digits, as notebook 05 trains them), saying why. ``root``: the reference set's folder
    (default :func:`reference_runs_dir`; :func:`reference_set_dir` names the others)."""
    from ..analysis import load_run
    from ..train import train_or_reuse

    refs = reference_runs(data_root, root) if use_reference else ReferenceRuns(message="USE_REFERENCE is False.")
    if refs.has(*methods):
        lines = [refs.message, *(refs.describe(m) for m in methods)]
        return RunsInUse(refs.data, {m: refs[m] for m in methods}, "reference", "last", "\n".join(lines), refs)
    missing = [m for m in methods if m not in refs.runs]
    # quick live runs on the digits: the CIFAR-10 quick recipe is too short for GLMC's fc_cb to be trained
    setup = notebook_setup(quick=quick, data_root=data_root, runs=runs, epochs=epochs, progress=progress,
                           offline=quick_mode(quick))
    out = {m: load_run(train_or_reuse(setup.config(m), data=setup.data, log=print)) for m in methods}
    why = refs.message if not refs else f"the reference runs {', '.join(missing)} are not finished yet."
    msg = f"LIVE quick runs (no reference runs used: {why})\n{setup.message}"
    return RunsInUse(setup.data, out, "live", "last", msg, refs)  # the final epoch: never chosen on the test set

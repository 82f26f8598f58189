"""The ``glmc`` command (also ``python -m glmc_core``).

Every user mistake ends in one line on stderr, ``glmc: error: ...``, and exit status 2;
an interrupted run says how to resume it and exits 130.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from .config import METHODS, PRESETS, Config, describe_preset, get_preset
from .errors import GLMCError, defer_interrupt

__all__ = ["main", "build_parser"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler, a notebook kernel shutting down): stopped like Ctrl-C, exit status 143."""


def _on_signal(signum, _frame):
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if not defer_interrupt(exc):  # a checkpoint being written is finished first
        raise exc


def _install_signal_handlers() -> dict:
    """Ctrl-C and SIGTERM raise (deferred while a checkpoint is written); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):  # pragma: no cover - not settable here
            pass
    return previous


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise GLMCError(f"{message} (see '{self.prog} --help')")


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip().replace("-", "_"), v.strip()


def _number(kind, low=None, high=None, low_open=False):
    """An argparse type: a finite ``kind`` (int or float) in [low, high] (``low_open``: above ``low``)."""
    def parse(text: str):
        shown = text if len(text) <= 40 else text[:39] + "…"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {shown!r}") from None
        bound = ("" if low is None else f" {'>' if low_open else '>='} {low}") + \
                ("" if high is None else f"{' and' if low is not None else ''} <= {high}")
        if value != value or value in (float("inf"), float("-inf")) or \
                (low is not None and (value <= low if low_open else value < low)) or \
                (high is not None and value > high):
            what = "a whole number" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {shown!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


_SEED = _number(int, 0, 2**31 - 1)


def build_parser() -> argparse.ArgumentParser:
    """``glmc`` and its sub-commands; each sub-command's parser names the function that runs it (``args.func``)."""
    p = _Parser(prog="glmc", description="GLMC long-tailed recognition: train, evaluate, inspect data and presets.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for add in (_add_train, _add_evaluate, _add_presets, _add_data, _add_analyze, _add_compare, _add_finetune_maxnorm):
        add(sub)
    return p


# The train flags that set one Config field each, by that field (those a resumed run may take first, in the order
# the --resume help lists them). With --resume, only those whose field glmc_core.train.RESUME_OVERRIDES lets a
# resumed run change may be given: where the run goes on, not how it trains.
_FLAG_FIELDS = {"device": "device", "data_root": "data_root", "no_progress": "progress", "download": "download",
                "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "imbalance_factor": "imbalance_factor",
                "out": "out", "run_name": "run_name", "seed": "seed", "model": "model", "method": "method",
                "deterministic": "deterministic"}


def _flag_fields(args) -> dict:
    """The fields that the flags of :data:`_FLAG_FIELDS` set, None where not given (a switch sets its field only
    when given: ``--deterministic`` True, ``--no-progress`` False)."""
    values = {flag: getattr(args, flag) for flag in _FLAG_FIELDS}
    return {field: (not flag.startswith("no_") if values[flag] else None) if isinstance(values[flag], bool)
            else values[flag] for flag, field in _FLAG_FIELDS.items()}


def _resume_flags() -> list[str]:
    """The train flags a resumed run may take: those of :data:`_FLAG_FIELDS` whose field may change, and
    ``no_fast``, which picks the step that continues the run (``fit``'s ``fast``), not a config field."""
    from .train import RESUME_OVERRIDES

    return [flag for flag, field in _FLAG_FIELDS.items() if field in RESUME_OVERRIDES] + ["no_fast"]


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a preset (or resume a run)")
    t.add_argument("--preset", help="a preset name (see 'glmc presets')")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its last checkpoint (only "
                        f"{', '.join('--' + f.replace('_', '-') for f in _resume_flags())} may be given with it)")
    t.add_argument("--data-root", help="data folder or .zip (default: $GLMC_DATA_ROOT or ./data)")
    t.add_argument("--download", action="store_true", help="let torchvision download CIFAR into the data root")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--imbalance-factor", type=float)
    t.add_argument("--out", help="parent folder of run folders (default: runs)")
    t.add_argument("--run-name", help="name of the run folder (default: preset-method-time)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    t.add_argument("--seed", type=int)
    t.add_argument("--model", help="encoder: resnet8, resnet20, resnet32, resnet32-wide, resnet50, resnext50")
    t.add_argument("--method", help=f"one of: {', '.join(METHODS)}")
    t.add_argument("--loader", choices=("auto", "tensor", "dataloader"), default="auto",
                   help="batches from device tensors or from a DataLoader with PIL transforms (reference path)")
    t.add_argument("--no-fast", action="store_true",
                   help="eager reference step even on a GPU (default there: the captured fast step)")
    t.add_argument("--reference", action="store_true",
                   help="the reference path: --no-fast and --loader dataloader (PIL transforms, as the authors' code)")
    t.add_argument("--authors-quirks", action="store_true",
                   help="reproduce the authors' code: λ~Beta(1,1), CutMix label λ, per-image resampling, summed CE")
    t.add_argument("--deterministic", action="store_true", help="bit-for-bit repeatable runs (slower on a GPU)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--set", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set gamma=2 --set val_fraction=0.1")
    t.set_defaults(func=_cmd_train, default_of=t.get_default)  # default_of: what --resume checks flags against


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="evaluate a checkpoint on its data set's test split")
    e.add_argument("--checkpoint", required=True, help="a run folder (its checkpoint.pt), best.pt or checkpoint.pt")
    e.add_argument("--data-root", help="where the data set is now, if it moved")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--logit-adjust", type=_number(float, 0), metavar="TAU",
                   help="also score argmax(z - TAU*log prior) (post-hoc logit adjustment), side by side")
    e.set_defaults(func=_cmd_evaluate)


def _add_presets(sub) -> None:
    sub.add_parser("presets", help="list the presets and their settings").set_defaults(func=_cmd_presets)


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="per-class counts, imbalance factor and groups of a preset's data set")
    d.add_argument("--preset", required=True)
    d.add_argument("--data-root")
    d.add_argument("--imbalance-factor", type=float)
    d.set_defaults(func=_cmd_data)


def _add_analyze(sub) -> None:
    """``glmc analyze``: figures and tables of finished runs (see glmc_core/report.py)."""
    a = sub.add_parser("analyze", help="figures (PNG) and a results table for one or more run folders")
    a.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by 'glmc train'")
    a.add_argument("--out", help="where to write the figures (default: RUN_DIR/analysis for one run, "
                                 "./analysis for several)")
    a.add_argument("--umap", action=argparse.BooleanOptionalAction, default=True,
                   help="draw UMAP embeddings of the test features (needs umap-learn; cached in the run folder)")
    a.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to analyse")
    a.add_argument("--max-points", type=_number(int, 10), default=2000,
                   help="test images in each UMAP (a random subsample; at least 10)")
    a.add_argument("--data-root", help="where the data set is now, if it moved")
    a.add_argument("--device", default="auto")
    a.set_defaults(func=_cmd_analyze)


def _cmd_analyze(args) -> int:
    from pathlib import Path

    from .report import write_report

    out = args.out or (Path(args.run_dirs[0]) / "analysis" if len(args.run_dirs) == 1 else Path("analysis"))
    written = write_report(args.run_dirs, out, umap=args.umap, which=args.checkpoint, device=args.device,
                           max_points=args.max_points, data_root=args.data_root,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    print((Path(out) / "results.md").read_text(), end="")
    print(f"{len(written)} files written to {out}")
    return 0




def _add_compare(sub) -> None:
    """``glmc compare`` (beyond the paper, glmc_core.extras.compare)."""
    c = sub.add_parser("compare", help="train several methods on one preset and tabulate/plot the results")
    c.add_argument("--preset", required=True)
    c.add_argument("--set-name", default="ablation", help="ablation | baselines | all (default: ablation)")
    c.add_argument("--methods", help="comma-separated methods instead of a set, e.g. ce,glmc")
    c.add_argument("--epochs", type=_number(int, 1), help="override the preset's epochs (quick runs)")
    c.add_argument("--out", help="results and run folders (default: runs/compare-PRESET)")
    c.add_argument("--seed", type=_SEED, default=0)
    c.add_argument("--tau", type=_number(float, 0), action="append",
                   help="logit-adjustment τ ≥ 0 to report (repeatable; default 1)")
    c.add_argument("--data-root")
    c.add_argument("--device")
    c.add_argument("--set", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field for every method, e.g. --set model=resnet8")
    c.set_defaults(func=_cmd_compare)


def _add_finetune_maxnorm(sub) -> None:
    """``glmc finetune-maxnorm`` (beyond the paper, glmc_core.extras.maxnorm)."""
    m = sub.add_parser("finetune-maxnorm", help="fine-tune a run's classifier with weight decay + MaxNorm")
    m.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder")
    m.add_argument("--epochs", type=_number(int, 1), default=10)
    m.add_argument("--lr", type=_number(float, 0, low_open=True), default=0.01)
    m.add_argument("--weight-decay", type=_number(float, 0), default=0.1)
    m.add_argument("--delta", type=_number(float, 0, low_open=True),
                   help="absolute radius δ > 0 (default: relative, see --thresh)")
    m.add_argument("--thresh", type=_number(float, 0), default=0.1,
                   help="δ = min‖w‖ + thresh·(max‖w‖ − min‖w‖) (default 0.1)")
    m.add_argument("--per", choices=("step", "epoch"), default="step", help="project after every step or epoch")
    m.add_argument("--loss", choices=("cb", "ce"), default="cb", help="class-balanced (default) or plain CE")
    m.add_argument("--head", choices=("fc", "fc_cb"), help="default: the method's inference head")
    m.add_argument("--which", choices=("final", "best"), default="final", help="start from the final or best model")
    m.add_argument("--device")
    m.add_argument("--seed", type=_SEED, default=0)
    m.add_argument("--data-root", help="where the run's data set is (default: $GLMC_DATA_ROOT or ./data)")
    m.set_defaults(func=_cmd_finetune_maxnorm)


def _cmd_compare(args) -> int:
    from .extras.compare import markdown_table, run_comparison

    overrides = {"data_root": args.data_root, "device": args.device, **dict(args.set)}
    result = run_comparison(args.preset, methods=args.methods, set_name=args.set_name, epochs=args.epochs,
                            out=args.out, seed=args.seed, taus=tuple(args.tau or (1.0,)),
                            overrides={k: v for k, v in overrides.items() if v is not None})
    print(markdown_table(result))
    print(f"results: {result.out_dir}/results.md, results.csv, results.png")
    return 0


def _cmd_finetune_maxnorm(args) -> int:
    from .extras.maxnorm import finetune_maxnorm

    r = finetune_maxnorm(args.run_dir, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                         delta=args.delta, thresh=args.thresh, per=args.per, loss=args.loss, head=args.head,
                         which=args.which, device=args.device, seed=args.seed, data_root=args.data_root)
    print(_table({"before": r.summary["before"], f"MaxNorm (δ={r.delta:.3g})": r.summary["after"]}))
    print(f"written: {r.out_dir}")
    return 0


def _train_config(args) -> Config:
    overrides = _flag_fields(args)
    if args.no_fast or args.reference:
        overrides["fast"] = False
    for key, value in args.set:
        overrides[key] = value
    if not args.preset:
        raise GLMCError("train needs --preset NAME (see 'glmc presets') or --resume RUN_DIR")
    cfg = get_preset(args.preset, **overrides)
    return cfg.authors_quirks() if args.authors_quirks else cfg


def _resume_overrides(args) -> dict:
    """Config changes allowed when resuming; any other flag is refused (it would change the run)."""
    allowed = _resume_flags()
    given = [k for k, v in vars(args).items() if k not in ("command", "resume", *allowed) and v != args.default_of(k)]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise GLMCError(f"--resume continues a run with its own settings; drop {flags} (or start a new run)")
    fields = _flag_fields(args)
    return {f: fields[f] for f in (_FLAG_FIELDS[k] for k in allowed if k in _FLAG_FIELDS) if fields[f] is not None}


def _cmd_train(args) -> int:
    from .distributed import cleanup
    from .train import fit

    fast = False if (args.no_fast or args.reference) else None
    if args.resume:
        overrides = _resume_overrides(args)
        if _report_finished(args.resume):
            return 0
    try:
        if args.resume:
            state = fit(resume=args.resume, device=args.device, overrides=overrides, fast=fast)
        else:
            state = fit(_train_config(args), loader="dataloader" if args.reference else args.loader, fast=fast)
    except BaseException:
        cleanup(wait_for_peers=False)  # leave the torchrun process group, if any, without waiting on peers
        raise
    cleanup()  # every process finished: meet, then leave the process group
    if state.history and state.dist.is_main:
        last = state.history[-1]
        print(f"run folder: {state.run_dir}")
        print(_table({"final (epoch %d)" % last["epoch"]: last, "best (epoch %d)" % state.best["epoch"]: state.best}))
    return 0


def _report_finished(resume: str) -> bool:
    """A finished run kept without its training state (a shipped reference run): say it is finished, show its
    final and best epochs from its history, and load no data. False for anything else (fit resumes it)."""
    from .runs import finished_run_checkpoint

    found = finished_run_checkpoint(resume)
    if found is None:
        return False
    ck, run_dir = found
    print(f"{run_dir} already finished its {ck['epoch']} epochs; it is kept without its training state "
          f"(optimiser, random generators), so there is nothing to resume", file=sys.stderr)
    history = [r for r in ck.get("history") or [] if isinstance(r, dict) and "epoch" in r]
    if history:
        rows = {"final (epoch %d)" % history[-1]["epoch"]: history[-1]}
        best = ck.get("best")
        if isinstance(best, dict) and "epoch" in best:
            rows["best (epoch %d)" % best["epoch"]] = best
        print(f"run folder: {run_dir}")
        print(_table(rows))
    return True


def _table(rows: dict[str, dict]) -> str:
    from .metrics import format_number

    def f(v):
        return format_number(v, "6.2f")

    lines = [f"{'':<18} {'top-1':>6} {'many':>6} {'medium':>6} {'few':>6}"]
    for name, r in rows.items():
        lines.append(f"{name:<18} {f(r.get('top1'))} {f(r.get('many'))} {f(r.get('medium'))} {f(r.get('few'))}")
    return "\n".join(lines)


def _evaluation_checkpoint(path: str) -> str:
    """A run folder means its best model (``best.pt``), else its last checkpoint (``checkpoint.pt``)."""
    from .runs import checkpoint_file

    try:
        return str(checkpoint_file(path, "best"))
    except GLMCError:  # neither file: load_checkpoint says so, naming checkpoint.pt
        return str(Path(path) / "checkpoint.pt")


def _cmd_evaluate(args) -> int:
    from .runs import load_run_model
    from .train import evaluate, resolve_device

    run = load_run_model(_evaluation_checkpoint(args.checkpoint), data_root=args.data_root, progress=True,
                         device=lambda _cfg: resolve_device(args.device))  # the data: where the user says
    ck, cfg, data, model, device = run.checkpoint, run.config, run.data, run.model, run.device
    if args.logit_adjust is not None:  # plain and adjusted from the same logits
        from .extras.logit_adjustment import adjusted_key, evaluate_with_adjustment

        scores = evaluate_with_adjustment(model, data.test, cfg, data, device, (args.logit_adjust,))
        metrics = scores["plain"]
        rows = {f"epoch {str(ck.get('epoch'))[:12]}": metrics,
                f"LA τ={args.logit_adjust:g}": scores[adjusted_key(args.logit_adjust)]}
    else:
        metrics = evaluate(model, data.test, cfg, data, device)
        rows = {f"epoch {str(ck.get('epoch'))[:12]}": metrics}
    if args.json:
        print(json.dumps(metrics if args.logit_adjust is None else scores))
    else:
        print(_table(rows))
    return 0


def _cmd_presets(_args) -> int:
    for name in PRESETS:
        print(f"{name}\n    {describe_preset(name)}")
    return 0


def _cmd_data(args) -> int:
    from .data import prepare_data

    cfg = get_preset(args.preset, data_root=args.data_root, imbalance_factor=args.imbalance_factor)
    print(prepare_data(cfg).summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    previous = _install_signal_handlers()
    try:
        return _main(argv)
    finally:
        for sig, handler in previous.items():  # main() called from Python (tests, notebooks) leaves no trace
            signal.signal(sig, handler)


def _error(message: str) -> int:
    print(f"glmc: error: {GLMCError(message)}", file=sys.stderr)  # GLMCError: one line, bounded in length
    return 2


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`glmc presets | head`): stop quietly like other Unix tools. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
    except GLMCError as exc:
        print(f"glmc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C (130) or SIGTERM (143, 128 + 15), after any checkpoint write
        word, status = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        run_dir = getattr(exc, "run_dir", None)
        if run_dir is None:
            print(f"glmc: {word} (no run had started, so there is nothing to resume)", file=sys.stderr)
        else:
            print(f"glmc: {word}; {run_dir} keeps epoch {exc.epoch}: continue with "
                  f"'glmc train --resume {run_dir}'", file=sys.stderr)
        return status
    except MemoryError:
        return _error("out of memory; try a smaller --batch-size or a smaller --model")
    except OSError as exc:  # a full disk, a read-only folder, ...: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        return _error(f"{exc.strerror or exc}{where}")
    except ValueError as exc:
        if "null byte" in str(exc):  # a path with a NUL byte: the OS cannot even look it up
            return _error("a path given contains a NUL byte; give a real file or folder name")
        raise
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA, MPS) is a RuntimeError subclass
        text = str(exc).lower()
        if "can't allocate memory" in text or "defaultcpuallocator" in text or "not enough memory" in text:
            return _error(_CPU_OOM_HINT)  # torch's CPU allocator: a RuntimeError, not a MemoryError
        if "out of memory" in text:
            return _error(_OOM_HINT)
        raise


_CPU_OOM_HINT = ("the computer ran out of memory (a CPU allocation failed); try a smaller --batch-size or --model, "
                 "smaller images (--set image_size=...), or fewer DataLoader workers (--set num_workers=...)")
_OOM_HINT = ("the GPU ran out of memory; try a smaller --batch-size or --model, or --loader dataloader "
             "(the tensor path keeps the whole training set on the GPU; the DataLoader path keeps it in host memory)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

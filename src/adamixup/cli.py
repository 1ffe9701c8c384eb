"""The ``adamixup`` command line: thin — it parses, builds a config, calls the library.

Nothing heavy is imported before a command runs (``adamixup --help`` does not import torch). Every
mistake ends in one line on stderr and a non-zero exit: 2 for a bad option or config value, 1 for
bad data, files or runs, 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional

from . import __version__

DESCRIPTION = """\
AdaMixUp, MixUp and plain training (ERM): train, evaluate and compare from the command line.

examples:
  adamixup train                               AdaMixUp on the embedded mnist5k digits
  adamixup train --dataset cifar10 --data-root ~/data/cifar --method mixup
  adamixup train --resume runs/RUN --epochs 30 continue a run, here extended to 30 epochs
  adamixup evaluate runs/RUN                   test error and per-class errors of a saved run
  adamixup compare --methods erm,mixup,adamixup --seeds 3
  adamixup study run quick                     a study plan: runs into a ledger, resumable, then a report
  adamixup reid train --data-root ~/data/Market-1501-v15.09.15
"""
# options a resumed run may change; every other one is refused (the run keeps its saved settings)
RESUME_OPTIONS = ("epochs", "device", "quiet")


class CLIError(Exception):
    """A bad combination of options; exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (not the usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="mnist5k (default), digits, mnist, fashion_mnist, cifar10, cifar100, svhn, imagefolder")
    p.add_argument("--data-root", help="folder holding the dataset's files (nothing is downloaded)")
    p.add_argument("--config", help="a recipe: a YAML file or a shipped recipe name (list them with: adamixup recipes)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set lr=1e-3 --set mixer_args.alpha=0.4 (repeatable)")
    p.add_argument("--model", help="a model name: small_cnn, preact_resnet18, timm/<name> (e.g. timm/resnet18), "
                                   "torchvision/<name>")
    p.add_argument("--epochs", type=int, metavar="N", help="number of training epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, metavar="B", help="training batch size (default: the recipe's)")
    p.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="fp32 (default), or bf16 / fp16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster convolutions on GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    p.add_argument("--quiet", action="store_true", help="no progress bars: one line per epoch, for logs "
                                                        "(the default when stderr is not a terminal)")
    p.add_argument("--stop-on-divergence", action="store_true",
                   help="stop a run whose training loss grows far above its first step's (default: only warn)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="adamixup", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"adamixup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("train", help="train one model with ERM, MixUp or AdaMixUp")
    _common_train_args(p)
    p.add_argument("--method", help="the regularizer: erm, mixup, adamixup, ... (default: the recipe's, adamixup; "
                                    "list them with: adamixup methods)")
    p.add_argument("--seed", type=int, help="random seed of the run: weights, batches, augmentation (default 0)")
    p.add_argument("--run-dir", help="where the run writes (default: runs/<dataset>-<method>-seed<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its last checkpoint; only --epochs (to extend it), --device and "
                        "--quiet may be given with it")

    p = sub.add_parser("evaluate", help="test error and per-class errors of a saved run")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last",
                   help="which checkpoint: last (default) or best (lowest test error)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")

    p = sub.add_parser("compare", help="several methods over several seeds: a table like the paper's Table 1")
    _common_train_args(p)
    p.add_argument("--methods", default="erm,mixup,adamixup",
                   help="comma-separated methods to compare (default erm,mixup,adamixup; list them with: adamixup methods)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds per method: 0, 1, ..., N-1 (default 3)")
    p.add_argument("--out", help="output folder (default: runs/compare-<dataset>); a run already there is reused "
                                 "only if it was trained with the same settings, else trained again")

    sub.add_parser("recipes", help="list the shipped recipes")
    sub.add_parser("methods", help="list the methods (regularizers and the controls that isolate AdaMixUp's parts)")
    from .study.cli import add_parser as add_study_parser

    add_study_parser(sub)

    reid = sub.add_parser("reid", help="person re-identification: the strong baseline, with MixUp/AdaMixUp as tricks")
    rsub = reid.add_subparsers(dest="reid_command", metavar="REID_COMMAND", parser_class=Parser)
    p = rsub.add_parser("train", help="train on Market-1501, DukeMTMC-reID, MSMT17, CUHK01 or a generic layout")
    p.add_argument("--dataset", help="market1501 (default), dukemtmcreid, msmt17, cuhk01, generic")
    p.add_argument("--data-root", help="the dataset's folder (e.g. .../Market-1501-v15.09.15)")
    p.add_argument("--config", help="a re-ID recipe name or YAML file (default: bot; list them with: adamixup reid recipes)")
    p.add_argument("--method", help="regularizer of the ID loss: erm (default), mixup, adamixup, ... "
                                    "(list them with: adamixup methods)")
    p.add_argument("--recipe", help=argparse.SUPPRESS)  # the old name of --config, accepted for one release
    p.add_argument("--mixer", help=argparse.SUPPRESS)  # the old name of --method, accepted for one release
    p.add_argument("--pretrained", help="ImageNet weights: 'imagenet' (torchvision download) or a local .pth of torchvision's resnet50")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--epochs", type=int, metavar="N", help="number of training epochs (default: the recipe's, 120)")
    p.add_argument("--seed", type=int, help="random seed of the run (default 0)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="fp32 (default), or bf16 / fp16 autocast")
    p.add_argument("--workers", type=int, help="DataLoader worker processes decoding images")
    p.add_argument("--run-dir", help="where the run writes (default: runs/<dataset>-<method>-seed<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run; only --epochs (to extend it), --device and --quiet may be given with it")
    p.add_argument("--quiet", action="store_true", help="no progress bars: one line per epoch, for logs")
    p.add_argument("--stop-on-divergence", action="store_true",
                   help="stop a run whose training loss grows far above its first step's (default: only warn)")
    p = rsub.add_parser("evaluate", help="mAP / CMC / mINP of a saved run (or of exported features)")
    p.add_argument("run_dir", nargs="?", help="the run directory")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1 20, k2 6, λ 0.3)")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint: last (default) or best")
    p.add_argument("--features", help="a folder with query.npz and gallery.npz from: adamixup reid export")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    _add_target(p)
    p = rsub.add_parser("export", help="query and gallery features of a saved run to .npz files")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--out", help="output folder (default RUN_DIR/features, or RUN_DIR/features/cross-NAME with --dataset)")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint: last (default) or best")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    _add_target(p)
    p = rsub.add_parser("compare", help="several runs' ranked lists of the same queries side by side, and their metrics")
    p.add_argument("sources", nargs="+", metavar="LABEL=PATH",
                   help="a label and a run directory or exported feature folder, e.g. scratch=runs/a pretrained=runs/b")
    p.add_argument("--out", required=True, help="the picture to write (.png)")
    p.add_argument("--queries", help="the query indices to draw, comma-separated (default: the first 8)")
    p.add_argument("--topk", type=int, default=10, help="gallery images per row (default 10)")
    p.add_argument("--rerank", action="store_true", help="rank by k-reciprocal re-ranked distances")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint: last (default) or best")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    rsub.add_parser("recipes", help="list the shipped re-ID recipes (the strong baseline's ablation)")
    return parser


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="score another data set's query and gallery with the run's network and test-time "
                                     "settings (cross-data-set): market1501, dukemtmcreid, msmt17, cuhk01, generic")
    p.add_argument("--data-root", help="the folder of --dataset")
    p.add_argument("--set", action="append", default=[], metavar="dataset_args.KEY=VALUE",
                   help="the other data set's reader options, e.g. --set dataset_args.split=3 (repeatable)")


def _given(args: argparse.Namespace, names) -> List[str]:
    """The options among ``names`` (attribute names) that were given, as flags."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) not in (None, False, [])]


def _check_resume(args: argparse.Namespace, names) -> None:
    refused = _given(args, [n for n in names if n not in RESUME_OPTIONS])
    if refused:
        raise CLIError(f"--resume continues a run with its saved settings: only --epochs, --device and --quiet may "
                       f"change on a resumed run; drop {', '.join(refused)}")


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    from .train.config import parse_set

    values: Dict[str, Any] = {}
    for key in ("dataset", "data_root", "model", "epochs", "batch_size", "device", "precision", "method", "seed", "run_dir"):
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    for flag in ("quiet", "channels_last", "compile", "stop_on_divergence"):
        if getattr(args, flag, False):
            values[flag] = True
    set_values = parse_set(args.set)
    for key in ("model_args", "mixer_args", "dataset_args"):
        if key in set_values and key in values:
            values[key].update(set_values.pop(key))
    values.update(set_values)
    return values


def _config(args: argparse.Namespace, method: Optional[str] = None):
    from .classify.config import CLASSIFY_RECIPES, build_config

    recipe = args.config
    if recipe is None and args.dataset and (CLASSIFY_RECIPES / f"{args.dataset}.yaml").is_file():
        recipe = args.dataset  # a dataset's own recipe is the natural base
    if recipe is None and args.dataset is None:
        recipe = "mnist5k"
    overrides = _overrides(args)
    if method is not None:
        overrides["method"] = method
    return build_config(recipe, overrides)


TRAIN_OPTIONS = ("dataset", "data_root", "config", "set", "model", "epochs", "batch_size", "device", "precision",
                 "channels_last", "compile", "quiet", "stop_on_divergence", "method", "seed", "run_dir")


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        _check_resume(args, TRAIN_OPTIONS)
        from .classify import resume

        summary = _for_task("classification", args.resume, "resume",
                            lambda: resume(Path(args.resume), epochs=args.epochs, device=args.device, quiet=args.quiet))
    else:
        config = _config(args)
        from .classify import train

        summary = train(config)
    if summary:
        key = "val_error" if summary.get("eval_split") == "validation" else "test_error"
        print(f"{key.replace('_', ' ').replace('val ', 'validation ')} {summary['final_' + key]:.2f}% after "
              f"{summary['epochs_done']} epochs (best {summary['best_' + key]:.2f}% at epoch {summary['best_epoch']}); "
              f"{summary['train_seconds']:.0f}s; run directory {summary['run_dir']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .classify import evaluate

    result = _for_task("classification", args.run_dir, "evaluate",
                       lambda: evaluate(Path(args.run_dir), args.checkpoint, args.device))
    split = result["eval_split"]
    error = result["val_error" if split == "validation" else "test_error"]
    print(f"{result['dataset']} {split} set ({result['samples']} images), {args.checkpoint}.pt of epoch "
          f"{result['epoch']}: {split} error {error:.2f}%")
    print("| class | error (%) |\n|---|---:|")
    for name, err in result["per_class_error"].items():
        print(f"| {name} | {err:.2f} |")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise CLIError(f"--methods takes a comma-separated list of methods (adamixup methods lists them); got {args.methods!r}")
    if args.seeds < 1:
        raise CLIError(f"--seeds must be at least 1, got {args.seeds}")
    from .mixing import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise CLIError(f"--methods: unknown method {unknown[0]!r}; choose among {', '.join(METHODS)}")
    # the batch floor is that of the methods compared, not the recipe's own method
    floor = max(methods, key=lambda m: METHODS[m].min_batch)
    base = _config(args, method=floor)
    from .study import compare, table_markdown

    out = Path(args.out or f"runs/compare-{base.dataset}")
    rows = compare(base, methods, list(range(args.seeds)), out, log=lambda m: print(m, flush=True))
    print(table_markdown(rows))
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .mixing import METHODS

    for name, method in METHODS.items():
        print(f"{name:16s} {method.summary}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .study.cli import run

    return run(args)


def cmd_recipes(args: argparse.Namespace) -> int:
    import yaml

    from .classify.config import CLASSIFY_RECIPES, list_recipes

    names = list_recipes()
    width = max(map(len, names), default=0)
    for name in names:
        desc = (yaml.safe_load((CLASSIFY_RECIPES / f"{name}.yaml").read_text()) or {}).get("description", "")
        print(f"{name:{width}s}  {desc}")
    return 0


REID_TRAIN_OPTIONS = ("dataset", "data_root", "config", "method", "recipe", "mixer", "pretrained", "set", "epochs", "seed", "device",
                      "precision", "workers", "run_dir", "quiet", "stop_on_divergence")


def _renamed(args: argparse.Namespace, old: str, new: str) -> None:
    """An old re-ID flag name: accepted for one release, with a note (the same flag as in ``adamixup train``)."""
    value = getattr(args, old, None)
    if value is None:
        return
    if getattr(args, new, None) is not None:
        raise CLIError(f"--{old} is the old name of --{new}; give only --{new}")
    print(f"adamixup: note: --{old} is now --{new}, as in adamixup train; --{old} goes in the next release",
          file=sys.stderr)
    setattr(args, new, value)


def cmd_reid(args: argparse.Namespace) -> int:
    if args.reid_command is None:
        raise CLIError("adamixup reid needs a command: train, evaluate, export, compare or recipes")
    from .reid import task as reid
    from .train.config import parse_set

    if args.reid_command == "recipes":
        import yaml

        for name in reid.list_recipes():
            desc = (yaml.safe_load((reid.REID_RECIPES / f"{name}.yaml").read_text()) or {}).get("description", "")
            print(f"{name:20s} {desc}")
        return 0
    if args.reid_command == "train":
        _renamed(args, "mixer", "method")
        _renamed(args, "recipe", "config")
        if args.resume:
            _check_resume(args, REID_TRAIN_OPTIONS)
            summary = _for_task("reid", args.resume, "resume",
                                lambda: reid.resume(Path(args.resume), epochs=args.epochs, device=args.device, quiet=args.quiet))
        else:
            values: Dict[str, Any] = {}
            for key, attr in (("dataset", "dataset"), ("data_root", "data_root"), ("method", "method"),
                              ("pretrained", "pretrained"), ("epochs", "epochs"), ("seed", "seed"), ("device", "device"),
                              ("precision", "precision"), ("workers", "workers"), ("run_dir", "run_dir")):
                if getattr(args, attr) is not None:
                    values[key] = getattr(args, attr)
            for flag in ("quiet", "stop_on_divergence"):
                if getattr(args, flag):
                    values[flag] = True
            values.update(parse_set(args.set))
            summary = reid.train(reid.build_config(args.config or "bot", values))
        if summary:
            final = summary.get("final") or {}
            where = " (validation: held-out training persons)" if summary.get("validation_fraction") else ""
            print(f"mAP {final.get('mAP', float('nan')):.1f}%, rank-1 {final.get('rank1', float('nan')):.1f}%{where} after "
                  f"{summary['epochs_done']} epochs; run directory {summary['run_dir']}")
        return 0
    if args.reid_command == "compare":
        return _compare(args, reid)
    target = _target(args, parse_set)
    if args.reid_command == "evaluate":
        if args.features is not None:
            if target["dataset"] is not None:
                raise CLIError("--features scores exported features as they are; --dataset applies to a run directory")
            m = reid.evaluate_exported(Path(args.features), args.rerank, Path(args.run_dir) if args.run_dir else None)
        elif args.run_dir is None:
            raise CLIError("adamixup reid evaluate needs a run directory or --features DIR")
        else:
            m = _for_task("reid", args.run_dir, "evaluate",
                          lambda: reid.evaluate(Path(args.run_dir), args.checkpoint, args.rerank, args.device, **target))
            trained = f"; trained on {m['trained_on']} ({m['trained_root']})" if m["cross"] else ""
            print(f"scored on {m['dataset']} ({m['data_root']}){trained}; {args.checkpoint}.pt"
                  f"{', re-ranked' if args.rerank else ''}:")
        print("| mAP | rank-1 | rank-5 | rank-10 | rank-20 | mINP |\n|---:|---:|---:|---:|---:|---:|")
        print("| " + " | ".join(f"{m[k]:.1f}" for k in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")) + " |")
        return 0
    out = _for_task("reid", args.run_dir, "export",
                    lambda: reid.export(Path(args.run_dir), Path(args.out) if args.out else None, args.checkpoint,
                                        args.device, **target))
    print(f"wrote {out / 'query.npz'} and {out / 'gallery.npz'}")
    return 0


def _compare(args: argparse.Namespace, reid) -> int:
    sources: Dict[str, Path] = {}
    for item in args.sources:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise CLIError(f"{item!r}: give each run as LABEL=PATH, e.g. scratch=runs/cuhk01-erm-seed0")
        if label in sources:
            raise CLIError(f"the label {label!r} is given twice; give each run its own")
        sources[label] = Path(path)
    if not args.out.lower().endswith(".png"):
        raise CLIError(f"--out {args.out}: the picture is a PNG; name a file ending in .png")
    if args.topk < 1:
        raise CLIError(f"--topk {args.topk}: give 1 or more")
    try:
        queries = [int(q) for q in args.queries.split(",")] if args.queries else None
    except ValueError:
        raise CLIError(f"--queries {args.queries}: give query indices separated by commas, e.g. 0,5,9") from None
    try:
        metrics = reid.compare(sources, Path(args.out), args.checkpoint, args.rerank, args.device, queries, args.topk)
    except ValueError as err:  # a query index outside the query set
        raise CLIError(str(err)) from None
    print(f"| run | mAP | rank-1 | rank-5 | rank-10 | rank-20 | mINP |{' (re-ranked)' if args.rerank else ''}\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for label, m in metrics.items():
        print(f"| {label} | " + " | ".join(f"{m[k]:.1f}" for k in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")) + " |")
    print(f"wrote {args.out}")
    return 0


def _target(args: argparse.Namespace, parse_set) -> Dict[str, Any]:
    """``reid evaluate`` / ``export``: another data set to score (``--dataset``, ``--data-root``, ``--set dataset_args.*``)."""
    values = parse_set(getattr(args, "set", None) or [])
    other = sorted(set(values) - {"dataset_args"})
    if other:
        raise CLIError(f"--set {other[0]}: evaluating a saved run keeps its settings; only dataset_args.* "
                       "(the other data set's reader options) may be set")
    dataset, root = getattr(args, "dataset", None), getattr(args, "data_root", None)
    if (values or root) and dataset is None:
        raise CLIError("--data-root and --set dataset_args.* name another data set to score: give --dataset NAME too")
    return {"dataset": dataset, "data_root": root, "dataset_args": values.get("dataset_args")}


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "compare": cmd_compare, "recipes": cmd_recipes,
            "methods": cmd_methods, "study": cmd_study, "reid": cmd_reid}


def _ours(err: BaseException) -> bool:
    """An error this package raised on purpose: its message is a sentence meant for the user."""
    return isinstance(err, CLIError) or type(err).__module__.startswith("adamixup.")


def _is_config_error(err: BaseException) -> bool:
    """A mistake in what was asked for (exit status 2): a bad flag, config key or study plan."""
    config = sys.modules.get("adamixup.train.config")
    study = sys.modules.get("adamixup.study.errors")
    return (isinstance(err, CLIError) or (config is not None and isinstance(err, config.ConfigError))
            or (study is not None and isinstance(err, study.StudyError)))


def error_line(err: BaseException) -> str:
    """The one line ``adamixup`` prints for ``err``."""
    text = str(err).strip()
    if "Traceback (most recent call last)" in text:  # re-raised from a DataLoader worker: its last line is the error
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].isidentifier() else last
    if _ours(err) or isinstance(err, (ValueError, OSError)):
        # our messages are sentences (joined if one spans lines); a library's may carry a dump: keep its first line
        message = " ".join(text.split()) if _ours(err) else (text.splitlines() or [type(err).__name__])[0].strip()
        return f"adamixup: error: {message or type(err).__name__}"
    first = (text.splitlines() or [""])[0].strip()
    return (f"adamixup: error: unexpected {type(err).__name__}: {first} "
            "(set ADAMIXUP_TRACEBACK=1 to see where it came from)")


def interrupted_line(err: KeyboardInterrupt, args: argparse.Namespace) -> str:
    run_dir, resumable = getattr(err, "run_dir", None), getattr(err, "resumable", False)
    if run_dir is None:
        return "adamixup: interrupted"
    if not resumable:
        return f"adamixup: interrupted before the run's first checkpoint; nothing of {run_dir} was kept"
    if args.command == "compare":
        return (f"adamixup: interrupted in {run_dir}; run the same adamixup compare command to continue "
                "(finished runs are reused, this one resumed)")
    prefix = "adamixup reid train" if args.command == "reid" else "adamixup train"
    return f"adamixup: interrupted; continue the run with: {prefix} --resume {run_dir}"


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as the CLI's other messages: one line, no source echo."""
    print(f"adamixup: warning: {' '.join(str(message).split())}", file=file or sys.stderr, flush=True)


def _other_task(run_dir: Optional[str], this: str) -> Optional[str]:
    """The other task's name when ``run_dir`` is a run of it (its config.yaml reads as that task's)."""
    if not run_dir:
        return None
    from .train.rundir import RunDir

    if this == "classification":
        from .reid.task import config_from_dict
        other = "re-ID"
    else:
        from .classify import config_from_dict
        other = "classification"
    try:
        RunDir(run_dir).read_config(config_from_dict)
    except Exception:  # noqa: BLE001  not the other task's either: the first error stands
        return None
    return other


def _for_task(this: str, run_dir: Optional[str], verb: str, call):
    """``call()``; a config error on a run of the other task becomes a sentence naming the command that reads it."""
    from .train.config import ConfigError

    try:
        return call()
    except ConfigError:
        other = _other_task(run_dir, this)
        if other is None:
            raise
        command = {"re-ID": {"evaluate": "adamixup reid evaluate", "resume": "adamixup reid train --resume"},
                   "classification": {"evaluate": "adamixup evaluate", "export": "adamixup evaluate",
                                      "resume": "adamixup train --resume"}}[other].get(verb, "adamixup evaluate")
        raise CLIError(f"{run_dir} is a {other} run, not a {'re-ID' if this == 'reid' else 'classification'} run; "
                       f"`{command} {run_dir}` reads it") from None


def main(argv: Optional[List[str]] = None) -> int:
    import warnings

    warnings.showwarning = _one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return code
    except BrokenPipeError:  # the reader went away (`adamixup recipes | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as err:
        lead = "\n" if sys.stderr.isatty() else ""  # end a progress bar's line first
        print(lead + interrupted_line(err, args), file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  one line, never a traceback (unless asked for)
        if os.environ.get("ADAMIXUP_TRACEBACK") and not _ours(err):
            raise
        print(error_line(err), file=sys.stderr)
        return 2 if _is_config_error(err) else 1
    finally:
        distributed = sys.modules.get("adamixup.train.distributed")
        if distributed is not None:
            distributed.cleanup()


__all__ = ["main", "build_parser"]

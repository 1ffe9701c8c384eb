"""What a study needs to know about the task its runs train: classification or person re-ID.

A plan names its task (``task: classification``, the default, or ``task: reid``); everything else in
the study (plans, ledger, runner, statistics, report) is the same for both. A :class:`StudyTask`
says how a run's config is built from a recipe and overrides, what a fold or split means, how a run
trains (or resumes) in its scratch folder, what its record keeps as final metrics and which of
them the comparisons use.

- classification: recipes of ``adamixup train``; a fold is a stratified test fold of an embedded
  set (``fold``/``num_folds``); the score is the final test error (or validation error), lower is
  better.
- reid: recipes of ``adamixup reid train`` (``recipes/reid``); a fold is an identity split of the
  data set's protocol (``dataset_args.split`` of ``num_splits``, CUHK01); the score is the final
  mAP, higher is better, with rank-1/5/10, mINP, the CMC curve and, with ``rerank: true``, the
  re-ranked metrics beside it; with a validation selection, the mAP on held-out training identities
  (``val_mAP``; the other metrics are then theirs too).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

Trained = Tuple[Dict[str, Any], List[Dict[str, Any]], bool]  # (summary, per-epoch metrics, resumed?)


@dataclass(frozen=True)
class StudyTask:
    name: str
    metric: str                     # the final metric the comparisons use
    names: Dict[str, str]           # how the report names the metrics it scores on
    higher_is_better: bool
    columns: Tuple[str, ...]        # more final metrics the report's tables show, beside the metric
    build: Callable[[Optional[str], Dict[str, Any]], Any]   # (recipe, overrides) -> validated config
    fold_overrides: Callable[[int, int], Dict[str, Any]]     # (fold, num_folds) -> config keys
    train_or_resume: Callable[[Dict[str, Any], Path, str], Trained]
    final: Callable[[Dict[str, Any], List[Dict[str, Any]]], Dict[str, Any]]  # (summary, history) -> final metrics
    describe_folds: Callable[[Tuple[int, ...], int], str]  # (folds used, num_folds) -> words for the report
    pairing: str                    # what a seed and a fold decide, and what makes a pair (the report says it)
    validation_metric: Optional[str] = None  # the metric of runs scored on a held-out validation split, if any
    # (run folder, {label: target}, device) -> final metrics on test-only data sets, keyed cross_metric(label, name)
    score_cross: Optional[Callable[[Path, Dict[str, Dict[str, Any]], str], Dict[str, Any]]] = None

    @property
    def scores(self) -> Tuple[str, ...]:
        """The final metrics of which a whole record holds at least one."""
        return (self.metric,) + ((self.validation_metric,) if self.validation_metric else ())

    def score_key(self, validation: bool) -> str:
        """The final metric a run is scored on: with a held-out validation split, its metric."""
        return self.validation_metric if validation and self.validation_metric else self.metric


# --------------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------------
def _classification_build(recipe: Optional[str], overrides: Dict[str, Any]):
    from ..classify import build_config

    return build_config(recipe, overrides)


def _finished(run_dir: Path) -> Optional[Dict[str, Any]]:
    from ..train import RunDir

    summary = RunDir(run_dir).read_summary()
    return summary if summary is not None and summary.get("finished") else None


def _train_or_resume(config: Dict[str, Any], run_dir: Path, device: str, build: Callable, train: Callable,
                     resume: Callable) -> Trained:
    """Train ``config`` into the scratch folder ``run_dir``: read back a finished run, resume one with a
    checkpoint, else start anew (removing what a run killed before its first checkpoint left)."""
    import shutil

    from ..train import RunDir, read_metrics

    run_dir = Path(run_dir)
    summary = _finished(run_dir) if run_dir.is_dir() else None
    if summary is not None:
        return summary, read_metrics(run_dir), True
    if RunDir(run_dir).has_checkpoint():
        try:
            summary = resume(run_dir, device=device, quiet=True)
            if summary.get("finished"):
                return summary, read_metrics(run_dir), True
        except (ImportError, ValueError, RuntimeError, OSError) as err:  # a damaged checkpoint: start again
            print(f"{run_dir}: cannot be resumed ({type(err).__name__}: {err}); training it again", flush=True)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = build(None, {**config, "device": device, "quiet": True, "run_dir": None})
    return train(cfg, run_dir=run_dir), read_metrics(run_dir), False


def _classification_train(config: Dict[str, Any], run_dir: Path, device: str) -> Trained:
    from ..classify import resume, train

    return _train_or_resume(config, run_dir, device, _classification_build, train, resume)


def _classification_final(summary: Dict[str, Any], history: List[Dict[str, Any]]) -> Dict[str, Any]:
    last = history[-1] if history else {}
    return {
        "test_error": last.get("test_error", summary.get("final_test_error")),
        "train_error": last.get("train_error"),
        "val_error": last.get("val_error", summary.get("final_val_error")),
        "best_test_error": summary.get("best_test_error"), "best_epoch": summary.get("best_epoch"),
        "intrusion_acc": last.get("intrusion_acc"),
    }


def _stratified_folds(use: Tuple[int, ...], num: int) -> str:
    if len(use) == num:
        return f"{num} stratified folds, each the test fold once"
    return f"folds {', '.join(map(str, use))} of {num} stratified folds"


CLASSIFICATION = StudyTask(
    name="classification", metric="test_error", validation_metric="val_error",
    names={"test_error": "test error", "val_error": "validation error"}, higher_is_better=False, columns=(),
    build=_classification_build, fold_overrides=lambda fold, num: {"fold": fold, "num_folds": num},
    train_or_resume=_classification_train, final=_classification_final, describe_folds=_stratified_folds,
    pairing="The seed sets the initialization, the batch order and, for a training fraction below 1, which "
            "stratified subset is kept (the same for every method). A pair is two methods on the same data set, "
            "fold and seed.")


# --------------------------------------------------------------------------------------------------
# person re-ID
# --------------------------------------------------------------------------------------------------
def _reid_build(recipe: Optional[str], overrides: Dict[str, Any]):
    from ..reid.task import build_config

    return build_config(recipe, overrides)


def _reid_train(config: Dict[str, Any], run_dir: Path, device: str) -> Trained:
    from ..reid.task import resume, train

    return _train_or_resume(config, run_dir, device, _reid_build, train, resume)


REID_COLUMNS = ("rank1", "rank5", "rank10", "mINP", "rerank_mAP", "rerank_rank1", "rerank_mINP")
CROSS_SCALARS = ("mAP", "rank1", "rank5", "rank10", "mINP")


def cross_metric(label: str, name: str) -> str:
    """The record's key of a test-only data set's metric: ``cross:<label>:<name>``."""
    return f"cross:{label}:{name}"


def _reid_cross(run_dir: Path, targets: Dict[str, Dict[str, Any]], device: str) -> Dict[str, Any]:
    """The finished run's last checkpoint scored on each test-only data set (:func:`adamixup.reid.task.evaluate`)."""
    from ..reid.task import evaluate

    out: Dict[str, Any] = {}
    for label, t in targets.items():
        m = evaluate(run_dir, "last", device=device, dataset=t["dataset"], data_root=t["data_root"],
                     dataset_args=t.get("dataset_args"))
        out.update({cross_metric(label, k): m[k] for k in CROSS_SCALARS})
    return out


def _reid_final(summary: Dict[str, Any], history: List[Dict[str, Any]]) -> Dict[str, Any]:
    evals = [m for m in history if "mAP" in m]
    last = evals[-1] if evals else {}
    keys = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "cmc", "rerank_mAP", "rerank_rank1",
            "rerank_rank5", "rerank_rank10", "rerank_mINP", "rerank_cmc")
    final = {**{k: last[k] for k in keys if k in last}, "eval_epoch": last.get("epoch"),
             "intrusion_acc": history[-1].get("intrusion_acc") if history else None}
    if summary.get("validation_fraction") and "mAP" in final:  # scored on held-out training identities
        final["val_mAP"] = final.pop("mAP")
    return final


REID = StudyTask(
    name="reid", metric="mAP", validation_metric="val_mAP", names={"mAP": "mAP", "val_mAP": "validation mAP"},
    higher_is_better=True, columns=REID_COLUMNS,
    build=_reid_build, fold_overrides=lambda split, num: {"dataset_args": {"split": split, "num_splits": num}},
    train_or_resume=_reid_train, final=_reid_final, score_cross=_reid_cross,
    describe_folds=lambda use, num: f"identity splits {', '.join(map(str, use))} of the protocol's {num}",
    pairing="The seed sets the initialization and the PK batches; the split (the fold) sets which identities "
            "train and which are queried (the same for every method). A pair is two methods on the same data set, "
            "split and seed.")

TASKS: Dict[str, StudyTask] = {t.name: t for t in (CLASSIFICATION, REID)}


def get_task(name: Optional[str]) -> StudyTask:
    """The task of a plan or a record (``None``: classification, what records before tasks were)."""
    return TASKS[name or "classification"]

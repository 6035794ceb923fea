"""Evaluation: DM-Seg-mini targets, click simulator, metrics, baselines and the benchmark runner.

Typical use::

    from pge_sam.evaluate import RandomWalkerPredictor, run_benchmark
    result = run_benchmark({"random_walker": RandomWalkerPredictor}, "bench_out", quick=True)
    print(result.summary_path.read_text(encoding="utf-8"))

Heavy libraries (SimpleITK, scikit-image, matplotlib, the degradations) are
imported only when used.
"""

from .baselines import ClickPredictor, RandomWalkerPredictor, check_prompts
from .bench import BenchResult, bounding_box, csv_columns, run_benchmark, run_target
from .clicks import Click, farthest_point, next_click
from .datasets import Target, build_targets
from .metrics import CurveSummary, dice, iou, noc, summarize_curve
from .report import Report, load_results, write_report

__all__ = [
    "BenchResult",
    "Click",
    "ClickPredictor",
    "CurveSummary",
    "RandomWalkerPredictor",
    "Report",
    "Target",
    "bounding_box",
    "build_targets",
    "check_prompts",
    "csv_columns",
    "dice",
    "farthest_point",
    "iou",
    "load_results",
    "next_click",
    "noc",
    "run_benchmark",
    "run_target",
    "summarize_curve",
    "write_report",
]

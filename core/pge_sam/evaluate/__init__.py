"""Evaluation: DM-Seg-mini v2 targets, click simulator, metrics, baselines and the 2D and 3D runners.

Typical use::

    from pge_sam.evaluate import classical_predictors, run_benchmark
    result = run_benchmark(classical_predictors("ct"), "bench_out", modalities=("ct",), quick=True)
    print(result.summary_path.read_text(encoding="utf-8"))

The 3D protocol is :func:`pge_sam.evaluate.protocol3d.run_3d_benchmark`.

Heavy libraries (SimpleITK, scikit-image, matplotlib, the degradations) are
imported only when used.
"""

from .baselines import ClickPredictor, RandomWalkerPredictor, check_prompts
from .bench import BenchResult, bounding_box, csv_columns, run_benchmark, run_target
from .classical import classical_predictors
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
    "classical_predictors",
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

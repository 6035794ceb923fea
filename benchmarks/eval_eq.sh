#!/bin/bash
# Issue 17: test-split 2D runs, seeds 0-2, of the shipped pge_sam_tiny (v4) and the four equal-budget runs.
# Usage: benchmarks/eval_eq.sh LABEL MODEL ADAPTER   (one model; run two of these at once, one thread each)
cd "$(dirname "$0")/.."
LABEL=$1; MODEL=$2; ADAPTER=$3
for s in 0 1 2; do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/pge-sam bench --models $MODEL --adapter $ADAPTER --label $LABEL \
     --no-baseline --protocol 2d --seed $s --out bench-out/eq/${LABEL}_seed$s --fresh > bench-out/eq/${LABEL}_seed$s.log 2>&1
  echo "$LABEL seed $s done $(date)"
done

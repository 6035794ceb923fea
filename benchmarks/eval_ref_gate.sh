# Issue 16: sam_ref_tiny (with its inference gate) against its base sam_tiny on the DM-Seg-mini v2 test split,
# 3 seeds (about 25 min on the 2-core CPU); the table goes to bench-out/ref_gate_pooled/acceptance.md.
set -e
cd "$(dirname "$0")/.."
for S in 0 1 2; do
  .venv/bin/pge-sam bench --models sam_tiny --label sam_tiny_v6 --no-baseline --protocol 2d --seed $S --out bench-out/v6_seed$S
  .venv/bin/pge-sam bench --models sam_ref_tiny --label sam_ref_tiny --no-baseline --protocol 2d --seed $S --out bench-out/ref_gate_seed$S
done
.venv/bin/python benchmarks/ref_acceptance.py --base sam_tiny_v6 --new sam_ref_tiny --base-runs bench-out/v6_seed{0,1,2} --runs bench-out/ref_gate_seed{0,1,2} --out bench-out/ref_gate_pooled

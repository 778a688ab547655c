#!/usr/bin/env bash
# The device check: run from the repo root on the lent GPU machine with .whl (optuna and its
# dependencies, for Python 3.12) and .devcache (the h100 profile's prepared embedded data) carried.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD AUTORESEARCH_CACHE=$PWD/.devcache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, optuna; print('torch', torch.__version__, 'optuna', optuna.__version__)"
python3 benchmarks/gpu_study.py "$@" 2>&1 | tee "${OUT:-.}/gpu_study.log"

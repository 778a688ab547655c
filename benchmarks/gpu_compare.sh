#!/usr/bin/env bash
# On the lent GPU machine (after benchmarks/device_bundle.sh here): warm vs cold starts on the h100
# profile with the local executor, then a study with --executor ray. About 10 minutes.
set -u
S=$(date +%s)
el() { echo "== elapsed $(( $(date +%s) - S )) s"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
tar xJf .raybundle/ray.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD AUTORESEARCH_CACHE=$PWD/.devcache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, optuna, ray; print('torch', torch.__version__, 'optuna', optuna.__version__, 'ray', ray.__version__)"
el
G="benchmarks/gpu_study.py --budget 20 --eval-tokens 2097152 --baseline-runs 1"
timeout 130 python3 $G --trials 0 --no-warm --out $OUT/prewarm > $OUT/prewarm.log 2>&1; echo "prewarm exit $?"; grep -E "trained|util" $OUT/prewarm.log; el
for mode in warm no-warm; do
  # two baseline runs of the same (cached) graph: a DEPTH proposal would compile cold and swamp the difference
  timeout 150 python3 $G --trials 0 --baseline-runs 2 --$mode --out $OUT/$mode > $OUT/$mode.log 2>&1
  echo "$mode exit $?"; tail -6 $OUT/$mode.log; el
done
timeout 150 python3 $G --trials 1 --warm --executor ray --workers 1 --out $OUT/ray > $OUT/ray.log 2>&1; echo "ray exit $?"; tail -8 $OUT/ray.log; el

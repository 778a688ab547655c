#!/usr/bin/env bash
# Builds what the lent GPU machine lacks, for benchmarks/gpu_compare.sh (run from the repo root here):
#   .whl/        optuna + jsonschema and their missing needs, Python 3.12 wheels (the image has torch,
#                pyarrow, psutil, tiktoken, requests, pyyaml, click, msgpack, protobuf, attrs)
#   .raybundle/  ray, its 79 MB wheel stripped of Java, RLlib, Data, Train, Tune, Serve and the
#                dashboard's web build, as a 28 MB tar.xz (the carry limit is 64 MiB a call)
#   .devcache/   the h100 profile's prepared embedded data and tokenizer
# Then: run `bash benchmarks/gpu_compare.sh` there with carry [".whl", ".devcache", ".raybundle"].
set -euo pipefail
PY=${PY:-.venv/bin/python}
RAY=$($PY -c 'import ray; print(ray.__version__)')
PLAT="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
mkdir -p .whl .raybundle
$PY -m pip download -q --no-deps $PLAT -d .whl optuna alembic colorlog sqlalchemy mako \
    jsonschema referencing rpds-py jsonschema-specifications
tmp=$(mktemp -d)
$PY -m pip download -q --no-deps $PLAT -d "$tmp" "ray==$RAY"
(cd "$tmp" && unzip -q ray-*.whl && rm -rf ray/jars ray/rllib ray/data ray/train ray/tune ray/serve \
    ray/dashboard/client/build && tar cf - ray ray-*.dist-info | xz -6 -T2 > ray.tar.xz)
mv "$tmp/ray.tar.xz" .raybundle/ && rm -rf "$tmp"
tmp=$(mktemp -d) && cp autoresearch/harness/prepare.py "$tmp/"
(cd "$tmp" && AUTORESEARCH_CACHE="$OLDPWD/.devcache" "$OLDPWD/$PY" prepare.py --profile h100)
rm -rf "$tmp"
grep -qx "/.raybundle/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.raybundle/" >> .git/info/exclude; }
du -sh .whl .raybundle .devcache

#!/usr/bin/env bash
# Packaging check: build the sdist and, from it, a wheel (python -m build); install the
# wheel with its test extra into a fresh virtual environment outside the source tree;
# copy the tests and the examples they run into a scratch directory and run the suite
# there, against the installed gmploop. A file the sdist or the wheel forgets, or a test
# that leans on the checkout, fails here.
#
#   tools/check_wheel.sh [PYTHON] [PYTEST ARGS...]     (PYTHON defaults to python3)
#
# Takes a build (a minute or two) plus a full test run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
shift || true
work=$(mktemp -d)
echo "=== building with $python in $work"
"$python" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install -q build
"$work/build-env/bin/python" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log"; exit 1; }
ls -l "$work/dist"
wheel=$(ls "$work"/dist/*.whl)
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel[test]"
mkdir "$work/run"
cp -r "$root/tests" "$root/examples" "$root/pyproject.toml" "$work/run/"
find "$work/run" -name __pycache__ -prune -exec rm -rf {} +
cd "$work/run"
echo "=== gmploop under test: $("$work/venv/bin/python" -c 'import gmploop; print(gmploop.__file__)')"
"$work/venv/bin/python" -m pytest -p no:cacheprovider "$@"

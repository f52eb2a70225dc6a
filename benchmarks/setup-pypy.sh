#!/bin/sh
# Make the PyPy environment that "benchmarks/run.py" uses for the
# txrevproxy-pypy column: a PyPy venv at benchmarks/.venv-pypy (or the path
# given as $1) with txrevproxy installed from this checkout.
#
# cryptography 43.0.3 is the newest release with a binary wheel for PyPy 3.9;
# --only-binary keeps pip from trying (and failing) to build one from source.
# The checkout is copied first so that the build neither leaves build/ and
# *.egg-info in the working tree nor picks up stale files from them.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
venv=${1:-"$here/.venv-pypy"}

command -v pypy3 >/dev/null || {
    echo "pypy3 is missing: apt-get install pypy3 pypy3-venv" >&2
    exit 1
}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
tar -C "$repo" --exclude=.git --exclude='.venv*' --exclude=build --exclude='*.egg-info' \
    --exclude=results -cf - . | tar -C "$src" -xf -

pypy3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# One resolution for both, so that pyOpenSSL and Twisted resolve to releases
# that accept cryptography 43 instead of asking for a newer one to build.
"$venv/bin/python" -m pip install --quiet --only-binary cryptography \
    "cryptography==43.0.3" "$src"
echo "PyPy environment ready: $venv/bin/python"

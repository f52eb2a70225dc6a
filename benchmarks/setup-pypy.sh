#!/bin/sh
# Make the PyPy environment that "benchmarks/run.py" uses for the
# txrevproxy-pypy column: a PyPy venv at benchmarks/.venv-pypy (or the path
# given as $1) with txrevproxy installed from this checkout.
#
# cryptography 43.0.3, bcrypt 4.2.0 and Brotli 1.0.9 are the newest releases
# with binary wheels for PyPy 3.9 (constraints/pypy39.txt); --only-binary
# keeps pip from trying (and failing) to build them from source.
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
# The versions CI's PyPy run uses (constraints/pypy39.txt): cryptography
# 43.0.3, and the bcrypt and Brotli releases that still have PyPy 3.9
# wheels, so pip neither resolves a newer one nor tries to build one.
"$venv/bin/python" -m pip install --quiet --only-binary cryptography,bcrypt,brotli \
    -c "$repo/constraints/pypy39.txt" "$src"
echo "PyPy environment ready: $venv/bin/python"

#!/usr/bin/env bash
# Sets up the Python peers' virtual environment, benchmarks/peers/.venv, with
# the pinned packages of requirements.txt (torch is about 3 GB, once). Does
# nothing when the environment was already built from the same requirements
# (a stamp holds their SHA-256). Measures nothing.
#
#   benchmarks/peers/setup.sh        (PYTHON=python3.X to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
stamp=$venv/requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
if [[ ! -x $venv/bin/python ]]; then
  echo "peers setup: creating benchmarks/peers/$venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi
echo "peers setup: installing requirements.txt into benchmarks/peers/$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
echo "$want" > "$stamp"

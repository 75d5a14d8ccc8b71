#!/usr/bin/env bash
# Idempotent project set-up: .venv at the repository root with the pinned, tested stack.
#
# Fresh machine: creates .venv, installs uv into it, installs torch/torchvision (registry builds:
# pip would prefer a local torch+cpu wheel that no torchvision matches), builds mmcv 2.1.0 with its
# CPU ops once per machine into a wheel cache, then installs nf_plugins editable with everything.
# Repeat runs: a stamp of the pins makes this a no-op in well under a second.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"
py="$venv/bin/python"
constraints="$root/requirements/constraints.txt"
stamp="$venv/.nf_plugins_setup"
want=$(cat "$constraints" pyproject.toml tools/setup_env.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$py" ]; then
  exit 0
fi
start=$(date +%s)
log() { printf '[setup %3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

PYTHON=${PYTHON:-python3}
if [ ! -x "$py" ]; then
  log "creating $venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$venv"
fi
if [ ! -x "$venv/bin/uv" ]; then
  log "installing uv"
  "$py" -m pip install -q --disable-pip-version-check "uv==0.13.9"
fi
uv() { "$venv/bin/uv" pip "$@" --python "$py"; }

pin() { grep -E "^$1==" "$constraints"; }
log "installing $(pin torch) $(pin torchvision) and mmcv build requirements"
uv install -q -c "$constraints" torch torchvision setuptools wheel ninja packaging \
  numpy opencv-python-headless addict yapf "mmengine"

# mmcv 2.1.0 ships only a source distribution; its ops compile against the installed torch.
# The wheel is cached per machine (keyed by python and torch version) so the 6-17 min build runs once.
tv=$("$py" -c 'import sys, torch; v = sys.version_info; print(f"cp{v[0]}{v[1]}-torch{torch.__version__}")')
cache="${NF_PLUGINS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nf_plugins/wheels}/$tv"
mkdir -p "$cache"
mmcv_pin=$(pin mmcv)
if ! ls "$cache"/mmcv-"${mmcv_pin#mmcv==}"-*.whl >/dev/null 2>&1; then
  log "building $mmcv_pin with CPU ops into $cache (once per machine, ~6-17 min on 2 cores)"
  tmp=$(mktemp -d)
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$py" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps \
    "$mmcv_pin" -w "$tmp"
  mv "$tmp"/mmcv-*.whl "$cache"/   # rename within one filesystem only after a complete build
  rm -rf "$tmp"
fi
log "installing nf_plugins (editable) with mm, dev extras"
uv install -q -c "$constraints" --find-links "$cache" -e ".[mm,dev]"
# Byte-compile the installed packages once. Where PYTHONDONTWRITEBYTECODE is set (it is on this machine
# class), Python otherwise compiles torch, timm, mmengine and mmseg from source in every process:
# `import nf_plugins, mmseg, timm` took 13.4 s of CPU against 5.6 s compiled, paid by every tool run,
# torchrun rank and test worker. A file that does not compile (torch ships one in Python 3.12 syntax,
# never imported here) is reported, not fatal.
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
log "byte-compiling $site"
"$py" -m compileall -q -j 0 "$site" > /dev/null 2>&1 || log "compileall skipped files it cannot compile (torch has one in Python 3.12 syntax); Python compiles on import"
"$py" -c "import mmcv.ops, mmseg, timm, torchvision.ops; print('stack ok: torch', __import__('torch').__version__, 'timm', timm.__version__, 'mmcv', mmcv.__version__, 'mmseg', mmseg.__version__)"
echo "$want" > "$stamp"
log "done"

#!/usr/bin/env bash
# Install mmpyconv and the OpenMMLab 2.x stack it plugs into, in one command.
#
#   bash tools/install.sh
#
# Target environment: the virtualenv named by $MMPYCONV_VENV (default: .venv in the repository
# root), created if missing. To install into your own venv: MMPYCONV_VENV="$VIRTUAL_ENV" bash ...
# Idempotent: every step checks what is already there first. An existing torch is kept.
#
# The stack (see README): torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 with
# compiled ops, mmpretrain 1.2.0, mmdet 3.3.0, mmsegmentation 1.2.2, mmaction2 1.2.0.
# PyPI has mmcv 2.1.0 only as source: it is compiled here (about 20 minutes on 2 cores) unless a
# matching wheel is found in $PIP_FIND_LINKS or in this script's wheel cache
# ($MMPYCONV_WHEEL_CACHE, default ~/.cache/mmpyconv/wheels), where every wheel it builds is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
TOOLBOXES=(mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2 mmaction2==1.2.0)
OPENMIM_VERSION=0.3.9
# torch >= 2.6 needs setuptools >= 77; mmcv's setup.py and mmengine's `mmseg::` config
# inheritance need pkg_resources, which setuptools 81 dropped.
SETUPTOOLS_SPEC='setuptools>=77,<81'

step() { printf '\n==> [mmpyconv install] %s\n' "$*"; }
die() {
    printf '\nERROR [mmpyconv install]: %s\n' "$*" >&2
    printf 'Nothing after the failed step was installed; fix the cause and run %s again.\n' \
        "'bash tools/install.sh'" >&2
    exit 1
}
trap 'die "the command on line $LINENO failed (exit $?); see its output above."' ERR

VENV="${MMPYCONV_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
    step "creating virtualenv $VENV"
    python3 -m venv "$VENV" || die "could not create a virtualenv at $VENV (is python3-venv installed?)"
fi
"$PY" - <<'EOF' || die "Python 3.8-3.12 is required (mmcv 2.1.0 / mmengine 0.10.7)."
import sys
sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 12) else 1)
EOF
PIP=("$PY" -m pip)
step "target: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

WHEEL_CACHE="${MMPYCONV_WHEEL_CACHE:-$HOME/.cache/mmpyconv/wheels}"
mkdir -p "$WHEEL_CACHE"

have() { "$PY" -c "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- torch
# The distribution's version (2.14.1), not torch.__version__ (2.14.1+cu130), is what pip can pin.
torch_dist_version() { "$PY" -c 'from importlib.metadata import version; print(version("torch"))'; }
if have 'import torch'; then
    TORCH_HAVE="$(torch_dist_version)"
    step "keeping the installed torch $TORCH_HAVE"
else
    step "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION (several GB; a few minutes)"
    "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    TORCH_HAVE="$(torch_dist_version)"
fi
# Every later pip call pins the torch we have, so that no dependency swaps it.
TORCH_PIN="torch==$TORCH_HAVE"
if ! have 'import torchvision'; then
    step "installing a torchvision that matches torch $TORCH_HAVE"
    "${PIP[@]}" install "$TORCH_PIN" torchvision \
        || die "no torchvision matches torch $TORCH_HAVE; install one by hand, then rerun."
fi

step "build tools ($SETUPTOOLS_SPEC, wheel, ninja) and mmengine $MMENGINE_VERSION"
# mmengine and the rest of mmcv's runtime requirements go first: mmcv is installed with --no-deps
# below, and `import mmcv` (our check of a prebuilt wheel) needs them.
"${PIP[@]}" install -q "$TORCH_PIN" "$SETUPTOOLS_SPEC" wheel ninja numpy \
    "mmengine==$MMENGINE_VERSION" addict packaging Pillow pyyaml yapf

# ---------------------------------------------------------------- mmcv (full, compiled ops)
mmcv_ok() {
    "$PY" - <<EOF >/dev/null 2>&1
import mmcv, torch
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
from mmcv.ops import nms
nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
EOF
}

build_mmcv_wheel() {
    local work
    work="$(mktemp -d)"
    step "compiling mmcv $MMCV_VERSION from source: this takes about 20 minutes on 2 cores"
    "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    # torch >= 2.14's headers refuse C++17 (`C++20 or later compatible compiler is required`).
    sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-$MMCV_VERSION/setup.py"
    (cd "$work/mmcv-$MMCV_VERSION" && MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel --no-deps --no-build-isolation . -w "$WHEEL_CACHE/$1")
    rm -rf "$work"
}

if mmcv_ok; then
    step "mmcv $MMCV_VERSION with compiled ops is already installed"
else
    # A wheel from $PIP_FIND_LINKS or our cache is only trusted after its ops run on this torch.
    cache_dir="torch-$TORCH_HAVE"
    mkdir -p "$WHEEL_CACHE/$cache_dir"
    step "looking for a prebuilt mmcv $MMCV_VERSION wheel (pip says 'No matching distribution' if none)"
    if PIP_FIND_LINKS="${PIP_FIND_LINKS:-} $WHEEL_CACHE/$cache_dir" "${PIP[@]}" install --no-deps \
            --only-binary mmcv "mmcv==$MMCV_VERSION" && mmcv_ok; then
        step "mmcv $MMCV_VERSION installed from a prebuilt wheel"
    else
        step "no prebuilt mmcv $MMCV_VERSION wheel works with torch $TORCH_HAVE here"
        "${PIP[@]}" uninstall -y -q mmcv 2>/dev/null || true
        rm -f "$WHEEL_CACHE/$cache_dir"/mmcv-*.whl
        build_mmcv_wheel "$cache_dir"
        "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_CACHE/$cache_dir"/mmcv-"$MMCV_VERSION"-*.whl
        mmcv_ok || die "mmcv $MMCV_VERSION was built but its ops do not run; see the output above."
    fi
fi

# ---------------------------------------------------------------- OpenMMLab toolboxes
step "installing ${TOOLBOXES[*]}"
# mmcv's own requirements (addict, yapf, opencv...) came without --no-deps above; resolve them now.
# ftfy and regex: mmseg imports them without declaring them.
"${PIP[@]}" install "$TORCH_PIN" "$SETUPTOOLS_SPEC" "mmcv==$MMCV_VERSION" \
    "mmengine==$MMENGINE_VERSION" "${TOOLBOXES[@]}" ftfy regex

# ---------------------------------------------------------------- mmpyconv
step "installing mmpyconv (editable) with its test requirements"
"${PIP[@]}" install "$TORCH_PIN" "$SETUPTOOLS_SPEC" -e "$ROOT[tests]" onnx onnxruntime onnxsim

step "installing openmim $OPENMIM_VERSION (mim search / mim train)"
# Without its opendatalab dependency, whose openxlab pins setuptools 60 (torch needs >= 77);
# mim's search and train commands do not use it.
"${PIP[@]}" install "$TORCH_PIN" "$SETUPTOOLS_SPEC" click colorama model-index pandas requests \
    rich tabulate
"${PIP[@]}" install --no-deps "openmim==$OPENMIM_VERSION"

step "applying the named workarounds for released-stack defects (mmpyconv/compat.py)"
"$PY" -c "import sys; from mmpyconv.compat import main; sys.exit(main(['--fix-installed']))"

step "checking the result"
"$PY" - <<'EOF' || die "the final import check failed; see the traceback above."
import mmpretrain.models, mmdet.models, mmseg.models, mmaction.models  # noqa: F401
import mmcv, mmengine, torch, mmpyconv
print(f'torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, '
      f'mmpyconv {mmpyconv.__version__}: OK')
EOF
trap - ERR
step "done. Use: $PY   (or: source $VENV/bin/activate)"

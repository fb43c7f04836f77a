#!/usr/bin/env bash
# The GPU check of issue 7, in one run on the lent GPU machine (no network there):
#
#   device tool: command "bash bench/gpu_check.sh", carry [".whl"], timeout_s 540
#
# 1. installs the wheels the machine lacks (.whl/: array-api-compat, pyamg) into
#    /tmp/dcdm-gpu-site and dcdm itself without dependencies or network (pip editable if
#    setuptools is there and the result imports, else a sitecustomize.py on PYTHONPATH that
#    maps the dcdm.* packages to their folders as pyproject.toml's package-dir says);
# 2. prints the card, driver and versions (nvidia-smi, nvcc, CuPy, torch);
# 3. builds the fatbins with CMake (build/cuda, every warning an error);
# 4. runs the `gpu` tests with the fatbin loader, then the GPU benchmarks
#    (bench/test_gpu.py -> $OUT/gpu.json), then the kernel and array-API `gpu` tests again
#    with DCDM_CUDA_LOADER=nvrtc;
# 5. writes the report: $OUT/REPORT.md (the committed CPU results + the GPU run, with its
#    GPU section) and $OUT/GPU_SECTION.md (header + GPU section only).
#
# Everything is logged to $OUT/gpu_check.log ($OUT: set by the device tool; default
# ./out/gpu). Each step has a timeout and the whole script a budget (GPU_CHECK_BUDGET_S,
# default 470 s), so it ends within ~8 minutes; a step that would not fit is skipped and
# said so. Without a GPU every GPU test and benchmark skips and the script exits 0: the exit
# status is nonzero only for real errors (an install, the build, a failed test or case).
# Extra options: PYTHON (default python3), GPU_CHECK_BENCH_ARGS (e.g. "--bench-model PATH"),
# GPU_CHECK_SKIP_TESTS=1 (benchmarks and report only), GPU_CHECK_INSTALL=pip|path (force one
# way of installing dcdm; default: pip, else the PYTHONPATH layout), GPU_CHECK_BUILD (the
# CMake build folder, default build/), GPU_CHECK_SITE (default /tmp/dcdm-gpu-site).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/out/gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu_check.log
SITE=${GPU_CHECK_SITE:-/tmp/dcdm-gpu-site}
BUILD=${GPU_CHECK_BUILD:-$ROOT/build}
BUDGET=${GPU_CHECK_BUDGET_S:-470}
START=$(date +%s)
FAILED=()
SUMMARY=()

elapsed() { echo $(( $(date +%s) - START )); }

# step NAME LIMIT_S RESERVE_S -- COMMAND...: run COMMAND (a command or one of the functions
# below) with a timeout of LIMIT_S, or less so that RESERVE_S of the budget stay for the
# steps after it; record the outcome.
step() {
    local name=$1 limit=$2 reserve=$3
    shift 4
    local left=$(( BUDGET - $(elapsed) - reserve ))
    local t=$(( limit < left ? limit : left ))
    echo
    if (( t < 10 )); then
        echo "=== [$(elapsed) s] $name: SKIPPED, out of time (budget ${BUDGET} s) ==="
        SUMMARY+=("$name: skipped (out of time)")
        FAILED+=("$name (out of time)")
        return 124
    fi
    echo "=== [$(elapsed) s] $name (timeout ${t} s) ==="
    local t0 rc
    t0=$(date +%s)
    # a function runs in a child bash (they are exported below), a command as it is; SIGINT
    # first, so that an interrupted pytest still writes its results (the benchmark JSON)
    timeout -s INT --kill-after=15 "$t" bash -c '"$@"' "$name" "$@"
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    case $rc in
        0) SUMMARY+=("$name: ok (${dt} s)") ;;
        124|137) SUMMARY+=("$name: TIMED OUT after ${dt} s"); FAILED+=("$name (timeout)") ;;
        *) SUMMARY+=("$name: FAILED rc=$rc (${dt} s)"); FAILED+=("$name (rc=$rc)") ;;
    esac
    echo "--- $name: rc=$rc in ${dt} s"
    return $rc
}

install_wheels() {
    # one wheel at a time: a wheel this Python cannot take (a cp312 wheel on another Python)
    # only matters if its module is missing
    mkdir -p "$SITE"
    local whl mod rc=0
    for whl in .whl/*.whl; do
        [[ -e $whl ]] || { echo "no wheels in .whl/ (carry: [\".whl\"])"; break; }
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
                --upgrade "$whl"; then
            echo "installed $whl"
        else
            echo "could not install $whl"
        fi
    done
    for mod in array_api_compat pyamg; do
        if "$PY" -c "import $mod; print('$mod', getattr($mod, '__version__', '?'), $mod.__file__)"
        then :; else echo "ERROR: $mod does not import"; rc=1; fi
    done
    return $rc
}

# dcdm without dependencies or network: pip's editable install when setuptools is there
# and it works, else a folder on PYTHONPATH with a sitecustomize.py that maps the dcdm.*
# packages to their folders as pyproject.toml's package-dir says (the job of the finder an
# editable install adds; PYTHONPATH alone cannot do it: the checkout's own dcdm/ folder
# would shadow the package whenever Python runs from the repository root) and a minimal
# dist-info for importlib.metadata. Either way dcdm must import from the root and from /tmp.
install_dcdm() {
    local check="import dcdm, dcdm.solvers, dcdm.kernels.cuda_kernels, dcdm.training, dcdm.problems;"
    check+=" import importlib.metadata as m; print('dcdm', dcdm.__version__,"
    check+=" m.version('dcdm'), dcdm.solvers.__file__)"
    local how=${GPU_CHECK_INSTALL:-auto}
    if [[ $how != path ]] && "$PY" -c "import setuptools" 2>/dev/null \
            && "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
            && "$PY" -c "$check" && (cd /tmp && "$PY" -c "$check"); then
        echo "dcdm: pip editable install"
        return 0
    fi
    [[ $how == pip ]] && return 1
    echo "dcdm: no pip editable install (GPU_CHECK_INSTALL=$how); package map in $SITE/_dcdm"
    "$PY" - "$SITE/_dcdm" "$ROOT" <<'PYEOF' || return 1
import shutil
import sys
import tomllib
from pathlib import Path

dest, root = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(dest, ignore_errors=True)
dest.mkdir(parents=True)
pyproject = tomllib.loads((root / "pyproject.toml").read_text())
mapping = {pkg: str((root / folder).resolve())
           for pkg, folder in pyproject["tool"]["setuptools"]["package-dir"].items()}
(dest / "sitecustomize.py").write_text(f'''"""Written by bench/gpu_check.sh: import dcdm from {root}
without installing it (the package-dir mapping of its pyproject.toml)."""
import sys
from importlib.util import spec_from_file_location
from pathlib import Path

MAPPING = {mapping!r}


class DcdmFinder:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        folder = MAPPING.get(fullname)
        if folder is None:
            return None
        return spec_from_file_location(fullname, Path(folder) / "__init__.py",
                                       submodule_search_locations=[folder])


sys.meta_path.insert(0, DcdmFinder)
''')
ns = {}
exec((root / "dcdm" / "_version.py").read_text(), ns)
info = dest / f"dcdm-{ns['__version__']}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dcdm\nVersion: {ns['__version__']}\n")
print("mapped", ", ".join(sorted(mapping)), "in", dest / "sitecustomize.py")
PYEOF
    export PYTHONPATH="$SITE/_dcdm:$PYTHONPATH"
    "$PY" -c "$check" && (cd /tmp && "$PY" -c "$check")
}

versions() {
    nvidia-smi || echo "(nvidia-smi: not available)"
    nvcc --version | tail -2 || echo "(nvcc: not available)"
    cmake --version | head -1 || echo "(cmake: not available)"
    "$PY" - <<'PYEOF'
import importlib, platform
print("python", platform.python_version(), platform.machine())
for name in ("numpy", "scipy", "numba", "array_api_compat", "pyamg", "pytest",
             "pytest_benchmark", "safetensors", "torch", "cupy"):
    try:
        mod = importlib.import_module(name)
        print(f"{name:18s} {getattr(mod, '__version__', '?')}")
    except Exception as err:
        print(f"{name:18s} -- {type(err).__name__}: {err}")
try:
    import torch
    print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    print("cudnn", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
except Exception as err:
    print("torch:", err)
from dcdm.kernels import cuda_loader
print("dcdm CUDA kernels available:", cuda_loader.available(), "| loader:", cuda_loader.loader())
try:
    import cupy
    print("cupy devices:", cupy.cuda.runtime.getDeviceCount())
    cupy.show_config()
except Exception as err:
    print("cupy:", type(err).__name__, err)
PYEOF
}

build_fatbins() {
    if ! command -v nvcc >/dev/null || ! command -v cmake >/dev/null; then
        echo "nvcc or cmake missing: no fatbins (the tests and benchmarks use NVRTC)"
        return 0
    fi
    local gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
        && cmake --build "$BUILD" -j "$(nproc)" && ls -l "$BUILD"/cuda/*.fatbin
}

have_gpu() {
    "$PY" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" \
        2>/dev/null
}

# pytest's exit status 5 means "nothing collected": not an error here
tests() {
    "$PY" -m pytest -p no:cacheprovider -q -rs --durations=10 "$@"
    local rc=$?
    [[ $rc == 5 ]] && return 0
    return $rc
}

benchmarks() {
    # shellcheck disable=SC2086  # GPU_CHECK_BENCH_ARGS is a list of options
    "$PY" -m pytest bench/test_gpu.py -p no:cacheprovider -q -rs --benchmark-enable \
        --benchmark-only --benchmark-json="$OUT/gpu.json" ${GPU_CHECK_BENCH_ARGS:-}
}

report() {
    # the newest committed full CPU run (named by its UTC time; GPU runs say "gpu") and the
    # partial runs made after it (one suite, named with a suffix: 20261203-142054-spectrum)
    local all cpu partial
    all=$(git ls-files 'bench/results/*.json' 2>/dev/null | grep -v gpu | sort)
    [[ -z $all ]] && all=$(ls bench/results/*.json 2>/dev/null | grep -v gpu | sort)
    cpu=$(grep -E '/[0-9]{8}-[0-9]{6}\.json$' <<< "$all" | tail -1)
    partial=$(grep -vE '/[0-9]{8}-[0-9]{6}\.json$' <<< "$all" | awk -v f="$cpu" '$0 > f')
    local inputs=()
    [[ -n $cpu ]] && inputs+=("$cpu")
    [[ -n $partial ]] && mapfile -t -O "${#inputs[@]}" inputs <<< "$partial"
    [[ -s $OUT/gpu.json ]] && inputs+=("$OUT/gpu.json")
    if (( ${#inputs[@]} == 0 )); then
        echo "no results to report"
        return 1
    fi
    echo "report from: ${inputs[*]}"
    "$PY" -m bench.report "${inputs[@]}" --out "$OUT/REPORT.md" \
        && "$PY" -m bench.report "${inputs[@]}" --out "$OUT/GPU_SECTION.md" --only-gpu \
        && sed -n '/^## GPU/,/^## Ratios/p' "$OUT/REPORT.md"
}

main() {
    echo "dcdm GPU check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), out $OUT"
    if git rev-parse --short HEAD >/dev/null 2>&1; then
        echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (modified)')"
    else
        echo "commit: not a git checkout"
    fi
    export PYTHONPATH="$SITE:${PYTHONPATH:-}"
    export MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
    step "install wheels" 90 0 -- install_wheels
    if ! step "install dcdm" 90 0 -- install_dcdm; then
        echo "dcdm does not import: nothing else can run"
        return 1
    fi
    # install_dcdm ran in a subshell of timeout: set its PYTHONPATH here too
    [[ -d $SITE/_dcdm ]] && export PYTHONPATH="$SITE/_dcdm:$PYTHONPATH"
    step "versions" 60 0 -- versions
    if have_gpu; then echo "GPU: present"; else
        echo "GPU: none visible to CuPy; every GPU test and benchmark will skip"; fi
    if step "build fatbins" 180 150 -- build_fatbins && [[ -f $BUILD/cuda/stencil.fatbin ]]; then
        export DCDM_CUDA_FATBIN=$BUILD/cuda DCDM_CUDA_LOADER=fatbin
    fi
    if [[ ${GPU_CHECK_SKIP_TESTS:-0} != 1 ]]; then
        step "gpu tests (loader ${DCDM_CUDA_LOADER:-auto})" 170 150 -- \
            tests -m gpu tests --junitxml="$OUT/tests-gpu.xml"
    fi
    step "gpu benchmarks" 240 30 -- benchmarks
    if [[ ${GPU_CHECK_SKIP_TESTS:-0} != 1 ]]; then
        step "gpu kernel tests (loader nvrtc)" 90 25 -- env DCDM_CUDA_LOADER=nvrtc \
            "$PY" -m pytest -p no:cacheprovider -q -rs -m gpu tests/kernels \
            tests/solvers/test_array_api.py --junitxml="$OUT/tests-gpu-nvrtc.xml"
    fi
    step "report" 60 0 -- report
    echo
    echo "=== summary ($(elapsed) s of ${BUDGET} s) ==="
    printf '  %s\n' "${SUMMARY[@]}"
    echo "files in $OUT:"
    ls -l "$OUT"
    if (( ${#FAILED[@]} )); then
        echo "FAILED: ${FAILED[*]}"
        return 1
    fi
    echo "GPU check: OK"
}

# functions are needed inside `timeout`: export them to the subshells it starts
export -f install_wheels install_dcdm versions build_fatbins tests benchmarks report
export PY OUT SITE ROOT BUILD

main 2>&1 | tee "$LOG"

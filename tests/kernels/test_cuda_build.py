"""The CUDA sources compile without a GPU: the CMake fatbin build (nvcc, every warning an
error), and the text the run-time loader hands to NVRTC (by NVRTC itself when CuPy's
NVRTC library loads, and by ``nvcc -ptx``); and both builds take the cell codes from their
one definition, :mod:`dcdm.kernels.codes`."""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from dcdm.kernels import codes, cuda_loader

ROOT = Path(__file__).resolve().parents[2]
NVCC = shutil.which("nvcc")
CMAKE = shutil.which("cmake")
ARCHS = (80, 90)

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")
needs_toolchain = pytest.mark.skipif(
    NVCC is None or CMAKE is None,
    reason=f"the CMake build needs nvcc and cmake (nvcc: {NVCC}, cmake: {CMAKE})")


def _expected_entries() -> dict[str, set[str]]:
    return {src: {f"{k}_{sfx}" for k in names for sfx in ("f32", "f64")}
            for src, names in cuda_loader.KERNELS.items()}


def _ptx_entries(ptx: str) -> set[str]:
    return set(re.findall(r"\.entry\s+(\w+)", ptx))


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)


def _cmake_build(build: Path, *defines: str) -> tuple[int, str]:
    """Configure and build the repository's CMakeLists.txt; (exit status, all output)."""
    log = ""
    for cmd in ([CMAKE, "-S", str(ROOT), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={NVCC}",
                 *defines],
                [CMAKE, "--build", str(build), "-j", "2"]):
        proc = _run(cmd)
        log += proc.stdout + proc.stderr
        if proc.returncode:
            return proc.returncode, log
    return 0, log


def _fatbin_entries(path: Path) -> list[tuple[str, int]]:
    """(kind, sm) of each entry of an nvcc fatbin: ("elf", 80) is SASS for sm_80."""
    data = path.read_bytes()
    magic, _, header, size = struct.unpack_from("<IHHQ", data, 0)
    assert magic == 0xBA55ED50, f"{path} is not a fatbin"
    entries, off = [], header
    while off < header + size:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, off)
        arch = struct.unpack_from("<I", data, off + 28)[0]
        entries.append(({1: "ptx", 2: "elf"}.get(kind, str(kind)), arch))
        off += entry_header + payload
    return entries


@pytest.fixture(scope="module")
def cmake_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("cmake-build")
    status, log = _cmake_build(build)
    assert status == 0, log
    return build, log


@needs_toolchain
def test_cmake_builds_one_fatbin_per_source_without_warnings(cmake_build):
    build, log = cmake_build
    assert "warning" not in log.lower(), log
    fatbins = sorted((build / "cuda").glob("*.fatbin"))
    assert [p.stem for p in fatbins] == sorted(cuda_loader.SOURCES)
    for path in fatbins:
        # SASS for sm_80 and sm_90, and PTX of sm_90 for the GPUs after it
        assert sorted(_fatbin_entries(path)) == [("elf", 80), ("elf", 90), ("ptx", 90)], path


@needs_toolchain
def test_cmake_rebuild_is_a_no_op(cmake_build):
    build, _ = cmake_build
    proc = _run([CMAKE, "--build", str(build)])
    assert proc.returncode == 0 and "nvcc -fatbin" not in proc.stdout, proc.stdout


@needs_toolchain
def test_cmake_build_fails_on_a_warning(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(cuda_loader.SOURCE_DIR / "common.cuh", src)
    (src / "unused.cu").write_text(
        '#include "common.cuh"\n'
        'extern "C" __global__ void f(double* x) { int unused; x[threadIdx.x] += 1.0; }\n')
    status, log = _cmake_build(tmp_path / "build", f"-DDCDM_CUDA_SOURCE_DIR={src}",
                               "-DDCDM_CUDA_ARCHS=80", "-DDCDM_HOST_CHECK=OFF")
    assert status != 0
    assert 'variable "unused" was declared but never referenced' in log, log


def _nvrtc():
    """CuPy's NVRTC binding, or skip (it needs no GPU, only the NVRTC library)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as e:  # no CuPy, or CuPy without its NVRTC library
        pytest.skip(f"CuPy's NVRTC is not usable here ({type(e).__name__}: {e})")
    return nvrtc


@pytest.mark.parametrize("source", cuda_loader.SOURCES)
@pytest.mark.parametrize("arch", ARCHS)
def test_nvrtc_compiles_the_loaders_source_without_warnings(source, arch):
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(cuda_loader.nvrtc_source(source), f"{source}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [*cuda_loader.NVRTC_OPTIONS, f"-arch=compute_{arch}"])
        except nvrtc.NVRTCError as e:
            pytest.fail(f"NVRTC: {e}\n{nvrtc.getProgramLog(prog)}")
        log = nvrtc.getProgramLog(prog)
        assert "warning" not in log.lower(), log
        ptx = nvrtc.getPTX(prog)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    finally:
        nvrtc.destroyProgram(prog)
    assert _ptx_entries(ptx) == _expected_entries()[source]


@needs_nvcc
@pytest.mark.parametrize("source", cuda_loader.SOURCES)
def test_nvcc_compiles_the_loaders_source_without_warnings(source, tmp_path):
    # the one text NVRTC gets (header inlined), compiled apart from the source folder
    cu = tmp_path / f"{source}.cu"
    cu.write_text(cuda_loader.nvrtc_source(source))
    ptx = tmp_path / f"{source}.ptx"
    proc = _run([NVCC, "-ptx", f"-arch=compute_{ARCHS[0]}", *cuda_loader.NVRTC_OPTIONS,
                 "-Werror", "all-warnings", "-o", str(ptx), cu.name], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower()
    assert _ptx_entries(ptx.read_text()) == _expected_entries()[source]


# -- the cell codes: one definition (dcdm.kernels.codes), passed to both builds --------------

CODES = {name: int(getattr(codes, name)) for name in ("FLUID", "SOLID", "AIR")}


def test_sources_take_the_cell_codes_from_macros_and_hard_code_none():
    # a code may appear only as its macro, never as a number of its own
    hard_coded = re.compile(r"\b(FLUID|SOLID|AIR)\s*=\s*-?\d|#\s*define\s+DCDM_(FLUID|SOLID|AIR)\b")
    files = sorted(cuda_loader.SOURCE_DIR.glob("*.cu*"))
    assert {p.suffix for p in files} == {".cu", ".cuh"}
    for path in files:
        text = path.read_text()
        assert not hard_coded.search(text), f"{path.name} hard-codes a cell code"
    header = (cuda_loader.SOURCE_DIR / "common.cuh").read_text()
    guard = "#if !defined(DCDM_FLUID) || !defined(DCDM_SOLID) || !defined(DCDM_AIR)\n#error "
    assert guard in header
    for name in CODES:
        assert f"constexpr signed char {name} = DCDM_{name};" in header


def test_nvrtc_options_pass_the_codes_of_dcdm_kernels_codes():
    defines = [f"-DDCDM_{name}={value}" for name, value in CODES.items()]
    assert list(cuda_loader.CODE_DEFINES) == defines
    assert all(d in cuda_loader.NVRTC_OPTIONS for d in defines)


def _codes_probe(expect: dict[str, int]) -> str:
    """A source that compiles only if the header's codes are ``expect``."""
    checks = "".join(f'static_assert(dcdm::{name} == {value}, "{name}");\n'
                     for name, value in expect.items())
    return ('#include "common.cuh"\n' + checks
            + 'extern "C" __global__ void probe(signed char* c) { c[0] = dcdm::AIR; }\n')


@needs_nvcc
def test_nvrtc_options_give_the_header_the_codes_and_it_refuses_to_build_without(tmp_path):
    shutil.copy(cuda_loader.SOURCE_DIR / "common.cuh", tmp_path)
    (tmp_path / "probe.cu").write_text(_codes_probe(CODES))
    cmd = [NVCC, "-ptx", f"-arch=compute_{ARCHS[0]}", "-Werror", "all-warnings", "-o",
           "probe.ptx", "probe.cu"]
    proc = _run([*cmd, *cuda_loader.NVRTC_OPTIONS], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    options = [o for o in cuda_loader.NVRTC_OPTIONS if o not in cuda_loader.CODE_DEFINES]
    proc = _run([*cmd, *options], cwd=tmp_path)
    assert proc.returncode != 0
    assert "define DCDM_FLUID, DCDM_SOLID and DCDM_AIR" in proc.stdout + proc.stderr


@needs_toolchain
def test_cmake_passes_the_codes_read_from_codes_py(cmake_build, tmp_path):
    _, log = cmake_build
    listed = ";".join(f"DCDM_{name}={value}" for name, value in CODES.items())
    assert f"dcdm cell codes from {ROOT / 'kernels' / 'codes.py'}: {listed}" in log, log
    # other values in a codes file reach the compiled sources (fatbin and host check)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(cuda_loader.SOURCE_DIR / "common.cuh", src)
    other = {"FLUID": 3, "SOLID": 5, "AIR": 7}
    (src / "probe.cu").write_text(_codes_probe(other))
    codes_py = tmp_path / "codes.py"
    codes_py.write_text('"""Cell codes."""\n\n' + "".join(f"{n} = {v}  # {n.lower()}\n"
                                                        for n, v in other.items()))
    status, log = _cmake_build(tmp_path / "build", f"-DDCDM_CUDA_SOURCE_DIR={src}",
                               f"-DDCDM_CODES_FILE={codes_py}", "-DDCDM_CUDA_ARCHS=80")
    assert status == 0, log
    # a codes file without one of them stops the configure step
    codes_py.write_text("FLUID = 0\nSOLID = 1\n")
    status, log = _cmake_build(tmp_path / "build2", f"-DDCDM_CUDA_SOURCE_DIR={src}",
                               f"-DDCDM_CODES_FILE={codes_py}", "-DDCDM_CUDA_ARCHS=80")
    assert status != 0 and "must define AIR = <integer> once" in log, log

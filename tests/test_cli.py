import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from dcdm import cli
from dcdm.problems import gallery, io


def test_solve_builtin_problem_all_methods(capsys):
    assert cli.main(["solve", "--problem", "smoke3d", "--n", "12", "--method", "all"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "problem: smoke3d n=12" in out
    for token in ("cg", "jacobi", "mg", "mic0", "ic0", "amg", "none", "CONVERGED_RTOL"):
        assert token in out
    # one header, one rule, and one row per combination that ran (cg only with linear SPD M;
    # a combination whose optional part is missing is skipped with a message on stderr)
    table = out.strip().splitlines()[1:]
    skipped = captured.err.count("skipping")
    assert len(table) == 2 + len(cli._combinations("all", None)) - skipped
    assert len(cli._combinations("all", None)) >= 8


def test_solve_npz_file(tmp_path, capsys):
    A, b = gallery.poisson((10, 10))
    path = tmp_path / "p.npz"
    io.save(path, A, b)
    assert cli.main(["solve", str(path), "--precond", "jacobi", "--rtol", "1e-9"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "CONVERGED_RTOL" in out


def test_solve_matrix_market(tmp_path, capsys):
    A, b = gallery.poisson((6, 6, 6))
    path = tmp_path / "p.mtx"
    io.write_matrix_market(path, A, b)
    assert cli.main(["solve", str(path), "--method", "fcg"]) == 0
    assert "fcg" in capsys.readouterr().out


def test_nonconverged_exit_status(capsys):
    assert cli.main(["solve", "--problem", "poisson2d", "--n", "32", "--maxiter", "2"]) == 1
    assert "MAX_ITERATIONS" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["solve", str(tmp_path / "missing.npz")]) == 2
    assert "dcdm: error: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["solve", "--problem", "nope"])


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kernel back-ends" in out and "jacobi" in out
    assert np.__version__ in out


def _laplacian_1d(n: int = 5) -> sp.csr_array:
    return sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)))


def _one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcdm: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def test_out_of_range_index_is_refused_not_a_segfault(tmp_path):
    # a crash here kills the process (rc 139), so the CLI runs in a child process
    A = _laplacian_1d()
    indices = np.where(A.indices == 4, 1000, A.indices).astype(A.indices.dtype)
    path = tmp_path / "bad.npz"
    np.savez(path, format=np.array("dcdm-csr-1"), data=A.data, indices=indices,
             indptr=A.indptr, shape=np.array(A.shape), b=np.ones(5))
    proc = subprocess.run([sys.executable, "-m", "dcdm.cli", "solve", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    _one_error_line(proc.stderr, str(path), "column indices must lie in 0..4, found 1000")


def test_npz_without_b_is_one_line(tmp_path, capsys):
    A = _laplacian_1d()
    path = tmp_path / "nob.npz"
    np.savez(path, format=np.array("dcdm-csr-1"), data=A.data, indices=A.indices,
             indptr=A.indptr, shape=np.array(A.shape))
    assert cli.main(["solve", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, str(path), "no right-hand side 'b'")


def _npy_bytes(array: np.ndarray) -> bytes:
    import io as stdio

    buf = stdio.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda p: p.write_text("hello\n"), "is a text file, not an .npz archive"),
        (lambda p: p.write_bytes(_npy_bytes(np.ones(3))),
         "holds a single NumPy array (.npy format), not an .npz archive"),
    ],
    ids=["text", "npy"],
)
def test_not_an_npz_says_what_it_is(tmp_path, capsys, write, expected):
    path = tmp_path / "system.npz"
    write(path)
    assert cli.main(["solve", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, str(path), expected)


def test_solve_scipy_save_npz_with_b(tmp_path, capsys):
    path = tmp_path / "scipy.npz"
    sp.save_npz(path, sp.csr_matrix(_laplacian_1d(20)))
    with np.load(path, allow_pickle=False) as z:
        np.savez(path, b=np.ones(20), **z)
    assert cli.main(["solve", str(path), "--rtol", "1e-9"]) == 0
    assert "CONVERGED_RTOL" in capsys.readouterr().out


def test_solve_scipy_save_npz_without_b_asks_for_it(tmp_path, capsys):
    path = tmp_path / "scipy.npz"
    sp.save_npz(path, sp.csr_matrix(_laplacian_1d(20)))
    assert cli.main(["solve", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, str(path), "no right-hand side 'b'")


@pytest.mark.parametrize("command", ["solve", "demo"])
def test_dcdm_refuses_a_preconditioner(tmp_path, capsys, command):
    argv = [command, "--method", "dcdm", "--precond", "mg"]
    if command == "demo":
        argv += ["--2d", "--n", "8", "--steps", "1", "--out", str(tmp_path / "d")]
    else:
        argv += ["--problem", "poisson2d", "--n", "8"]
    assert cli.main(argv) == 2
    _one_error_line(capsys.readouterr().err, "--method dcdm takes no preconditioner --precond",
                    "--method fcg --precond neural")
    assert not (tmp_path / "d").exists()


def test_dcdm_with_precond_auto_is_accepted():
    assert cli._combinations("dcdm", "auto") == [("dcdm", None, {})]


def test_spectrum_command(tmp_path, capsys):
    png = tmp_path / "spec.png"
    assert cli.main(["spectrum", "--problem", "smoke2d", "--n", "24", "-M", "jacobi", "-M", "mg",
                     "--steps", "10", "--probes", "2", "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("M "))
    assert lines[head].split()[:4] == ["M", "lowest", "highest", "kappa"]
    rows = {line.split()[0]: line.split() for line in lines[head + 2:head + 4]}
    assert set(rows) == {"jacobi", "mg"}
    # MG's kappa is far below Jacobi's, and its prediction equals the count CG takes
    assert float(rows["mg"][3]) < float(rows["jacobi"][3].rstrip("~")) / 10
    assert rows["mg"][5] == rows["mg"][7]
    assert png.stat().st_size > 1000 and f"density plot: {png}" in out


def test_spectrum_command_reads_a_file_and_refuses_bad_input(tmp_path, capsys):
    path = tmp_path / "lap.npz"
    A = _laplacian_1d(50)
    io.save(path, A, np.ones(50))
    assert cli.main(["spectrum", str(path), "-M", "none", "-M", "jacobi", "--plot", "",
                     "--steps", "20", "--probes", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mg " not in out and "jacobi" in out
    assert cli.main(["spectrum", "--n", "8", "--steps", "0", "--plot", "",
                     "--no-progress"]) == 2
    _one_error_line(capsys.readouterr().err, "steps must be an integer >= 1, got 0")
    with pytest.raises(SystemExit):
        cli.main(["spectrum", "--n", "8", "-M", "neural"])
    assert "invalid choice: 'neural'" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["twophase3d", "cutcell3d", "twophase2d", "cutcell2d"])
@pytest.mark.parametrize("precond", [None, "jacobi"])
def test_solve_face_weighted_problems(problem, precond, capsys, monkeypatch):
    argv = ["solve", "--problem", problem, "-n", "16"] + (["-M", precond] if precond else [])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    head, table = out.splitlines()[0], out.splitlines()[3]
    assert head.startswith(f"problem: {problem} n=16 seed=0; n = {16 ** int(problem[-2])}; "
                           "face weights in [")
    low = 0.001 if problem.startswith("twophase") else 0
    assert f"face weights in [{low:g}, 1]" in head
    assert "CONVERGED" in table and table.split()[1] == (precond or "mg")


def test_unweighted_problem_says_nothing_of_weights(capsys):
    assert cli.main(["solve", "--problem", "poisson2d", "-n", "8"]) == 0
    assert "face weights" not in capsys.readouterr().out

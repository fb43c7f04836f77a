import numpy as np
import pytest

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

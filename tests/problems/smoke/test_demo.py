import json

import pytest

from dcdm import cli
from dcdm.problems import io
from dcdm.problems.smoke.demo import _compare_at, compare_methods, format_table, run_demo


def test_dcdm_demo_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--steps", "3", "--n", "24", "--out", str(out),
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    assert "cg" in printed and "mic0" in printed and "amg" in printed  # the comparison table
    frames = sorted((out / "frames").glob("frame_*.png"))
    assert len(frames) == 3
    for f in (*frames, out / "smoke.gif", out / "solver.png"):
        assert f.stat().st_size > 1000
        assert f.read_bytes()[:4] in (b"\x89PNG", b"GIF8")
    data = json.loads((out / "records.json").read_text())
    assert data["scene"]["n"] == 24 and data["scene"]["ndim"] == 3
    assert [r["step"] for r in data["records"]] == [1, 2, 3]
    assert {"iterations", "reason", "residual_norm", "setup_time", "solve_time", "advect_time",
            "max_div_after"} <= set(data["records"][0])
    assert [c["step"] for c in data["comparisons"]] == [1, 2, 3]
    assert data["summary"]["all_converged"]
    # and every method on a short two-phase run's system (density ratio 1000), half the size
    assert "two-phase: 12x12x12" in printed
    assert data["two_phase"]["shape"] == [12, 12, 12] and data["two_phase"]["rows"]
    assert data["summary"]["two_phase"]["all_converged"]
    # the compared systems are exported for `dcdm solve` and training
    system = io.load(out / data["comparisons"][0]["system"])
    assert system.grid.shape == (24, 24, 24) and system.x is not None


def test_demo_2d_with_another_method(tmp_path, capsys):
    out = tmp_path / "d2"
    assert cli.main(["demo", "--2d", "--steps", "4", "--n", "20", "--method", "fcg",
                     "--precond", "mic0", "--compare", "1", "--seed", "5", "--out", str(out),
                     "--no-progress"]) == 0
    data = json.loads((out / "records.json").read_text())
    assert {r["method"] for r in data["records"]} == {"fcg"}
    assert {r["preconditioner"] for r in data["records"]} == {"mic0"}
    assert [c["step"] for c in data["comparisons"]] == [4]
    capsys.readouterr()


def test_demo_runs_the_two_phase_scene_from_the_cli(tmp_path, capsys):
    out = tmp_path / "tp"
    assert cli.main(["demo", "--2d", "--scene", "two_phase_tank", "--steps", "3", "--n", "16",
                     "--compare", "0", "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "records.json").read_text())
    assert {r["density_ratio"] for r in data["records"]} == {1000.0}
    assert all(r["converged"] for r in data["records"])
    capsys.readouterr()


def test_demo_rejects_a_bad_combination(tmp_path, capsys):
    # CG refuses a non-linear preconditioner: a one-line error, exit status 2
    assert cli.main(["demo", "--2d", "--steps", "1", "--n", "16", "--precond", "neural",
                     "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "dcdm: error:" in capsys.readouterr().err


def test_demo_out_under_a_regular_file_is_one_line(tmp_path, capsys):
    # chmod does not stop root, so the unwritable folder is one under a regular file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["demo", "--2d", "--steps", "1", "--n", "8", "--out", str(blocker / "sub"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("dcdm: error: out ") and str(blocker / "sub") in err
    with pytest.raises(ValueError, match=r"out .*cannot be used as the output folder"):
        run_demo(n=8, steps=1, ndim=2, compare=0, out=blocker, progress=False)


def test_demo_out_in_an_unwritable_folder_fails_before_any_step(tmp_path, monkeypatch, capsys):
    # root writes anywhere chmod allows, so the folder's refusal is simulated where the
    # demo first writes: the probe file; no step may run and no traceback may show
    import dcdm.problems.smoke.demo as demo

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(demo.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(demo, "Simulation", lambda *a, **k: pytest.fail("a step ran"))
    out = tmp_path / "ro"
    assert cli.main(["demo", "--2d", "--steps", "1", "--n", "8", "--out", str(out),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"dcdm: error: out {str(out)!r} cannot be used as the output folder")
    assert "Permission denied" in err


def test_run_demo_refuses_a_preconditioner_for_dcdm(tmp_path):
    # the Python entry point refuses what the CLI refuses, before creating anything
    with pytest.raises(ValueError, match=r"method='dcdm' takes no preconditioner precond "
                                         r"\(got 'mg'.*method='fcg' with precond='neural'"):
        run_demo(n=8, steps=1, ndim=2, method="dcdm", precond="mg", out=tmp_path / "d",
                 progress=False)
    assert not (tmp_path / "d").exists()


def test_comparison_runs_every_method_or_says_why_not():
    sim_out = compare_methods(*_poisson(), rtol=1e-6)
    rows, skipped = sim_out
    names = {(r["method"], r["M"]) for r in rows}
    assert {("cg", "mg"), ("cg", "mic0"), ("cg", "amg"), ("cg", "none")} <= names
    ran_dcdm = any(r["method"].startswith("dcdm") for r in rows)
    assert ran_dcdm or any(s.startswith("dcdm") for s in skipped)
    table = format_table(rows)
    assert table.splitlines()[0].split()[:3] == ["method", "M", "iters"]
    assert len(table.splitlines()) == 2 + len(rows)


def test_compare_steps_spread_over_the_run():
    assert _compare_at(240, 3) == [80, 160, 240]
    assert _compare_at(3, 3) == [1, 2, 3]
    assert _compare_at(2, 5) == [1, 2]
    assert _compare_at(10, 0) == []


def _poisson():
    from dcdm.problems import gallery

    return gallery.smoke((16, 16, 16), obstacles=2)

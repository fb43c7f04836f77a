"""The report's differentiable-solve section (bench/report_differentiable.py) on synthetic
records, and the diffusion-sorption study (bench/hard_constraints.py) at a tiny size."""

import pytest


def test_differentiable_section(bench_record, report_of):
    def bench(key, median, **info):
        return bench_record("test_differentiable.py", "differentiable", key, median, rounds=3,
                            **info)

    solve = dict(method="sparse_solve", preconditioner="mg", problem="smoke", dim=3, n=64)
    layer = dict(problem="diffusion-sorption", dim=2, n=256, points=1000)
    text, _ = report_of([
        bench("s-f", 0.100, phase="forward", columns=1, iterations=8, **solve),
        bench("s-b", 0.080, phase="backward", columns=1, iterations=8, **solve),
        bench("l-1f", 0.30, phase="forward", experts=1, method="PI-HC K=1", **layer),
        bench("l-4f", 0.20, phase="forward", experts=4, method="PI-HC K=4", **layer),
        bench("l-1b", 0.60, phase="forward+backward", experts=1, method="PI-HC K=1", **layer),
        bench("l-4b", 0.90, phase="forward+backward", experts=4, method="PI-HC K=4", **layer)])
    section = text[text.index("## Differentiable solves and hard-constraint layers"):]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ")]
    solve_row = [c.strip() for c in rows[1]]
    assert solve_row[:2] == ["64^3", "1"] and solve_row[3] == "8" and solve_row[-1] == "0.80x"
    layer_row = [c.strip() for c in rows[3]]
    assert layer_row[0] == "1000" and layer_row[3] == "1.50x" and layer_row[-1] == "0.67x"


def test_hard_constraints_study_tiny(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    pytest.importorskip("safetensors")
    from bench import hard_constraints

    args = ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--train", "4",
            "--test", "2", "--nx", "24", "--nt", "6", "--steps", "2", "--batch", "2",
            "--basis", "3", "--points", "6", "--sweep", "8", "--experts", "2"]
    res = hard_constraints.main(args)
    assert set(res["models"]) == {"soft", "hc", "moe", "hc-w1"}
    for r in res["models"].values():
        assert len(r["train"]["loss"]) == 2 and len(r["test"]["rel_l2"]) == 2
        assert r["test"]["rel_l2_mean"] > 0
    assert {(r["points"], r["experts"]) for r in res["speed"]} == {(8, 1), (8, 2)}
    for name in ("results.json", "loss.png", "solutions.png", "speed.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| PI-HC, weight 10 |" in capsys.readouterr().out
    # --resume reuses the weights and the training records, and trains nothing
    again = hard_constraints.main([*args, "--resume", "--steps", "50"])
    assert again["models"]["hc"]["train"]["loss"] == res["models"]["hc"]["train"]["loss"]

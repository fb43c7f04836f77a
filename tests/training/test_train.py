import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from dcdm import cli
from dcdm.training import weights
from dcdm.training.config import TrainConfig
from dcdm.training.data import DataMix, build_dataset, make_scenes
from dcdm.training.loss import dcdm_loss
from dcdm.training.model import DCDMNet
from dcdm.training.torch_ops import GridOperator
from dcdm.training.train import train

TINY = TrainConfig(n=16, scenes=2, ritz=4, random=8, smooth=2, residual=6, lanczos_m=30,
                   theta=2, epochs=2, batch_size=4, validation_scenes=1, validation_rhs=1,
                   channels=8)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    grids = make_scenes((16, 16), 2, 0, seed=0).train
    ds = build_dataset(grids, DataMix(ritz=4, random=8, smooth=2, residual=6, lanczos_m=30))
    op = GridOperator.from_grids(grids)
    net = DCDMNet(dim=2, channels=8)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss():
        return dcdm_loss(net(ds.b), ds.b, lambda x: op(x, ds.scene), mode="abs")

    with torch.no_grad():
        before = float(loss())
    for _ in range(25):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    assert after < 0.8 * before


def test_energy_data_carries_solutions():
    grids = make_scenes((12, 12), 1, 0, seed=2).train
    ds = build_dataset(grids, DataMix(ritz=2, random=2, smooth=1, residual=2, lanczos_m=20),
                       solutions=True)
    A = grids[0].laplacian()
    for b, e in zip(ds.b[:, 0].double().numpy(), ds.e[:, 0].double().numpy(), strict=True):
        r = b - A.matvec(e)
        assert np.linalg.norm(r) < 1e-5 * np.linalg.norm(b)  # e is stored in float32


def test_energy_loss_trains_where_the_paper_loss_collapses():
    """Smooth right-hand sides at 32^2: under the paper's 2-norm loss (|alpha| variant) the
    net collapses to the useless f . b = 0 (energy left 1.0); the energy loss learns."""
    grids = make_scenes((32, 32), 1, 0, seed=0).train
    ds = build_dataset(grids, DataMix(ritz=0, random=0, smooth=12, residual=0, lanczos_m=1),
                       solutions=True)
    op = GridOperator.from_grids(grids)

    def energy_left(net):
        return dcdm_loss(net(ds.b), ds.b, lambda x: op(x, ds.scene), mode="energy", e=ds.e)

    left = {}
    for mode in ("abs", "energy"):
        torch.manual_seed(0)
        net = DCDMNet(dim=2, channels=8, levels=2)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(60):
            opt.zero_grad()
            dcdm_loss(net(ds.b), ds.b, lambda x: op(x, ds.scene), mode=mode, e=ds.e).backward()
            opt.step()
        with torch.no_grad():
            left[mode] = float(energy_left(net))
    assert left["abs"] > 0.95
    assert left["energy"] < 0.7


def test_train_writes_everything(tmp_path):
    res = train(dataclasses.replace(TINY, out=str(tmp_path)), progress=False)
    for p in (res.best_path, res.final_path, res.checkpoint_path):
        assert p.exists() and p.with_suffix(".json").exists()
    assert res.plot_path.exists() and res.plot_path.stat().st_size > 1000
    assert len(res.loss_history) == 2 * 10 and len(res.epoch_loss) == 2  # 40 samples, batch 4
    assert [v["epoch"] for v in res.validation_history] == [1, 2]
    assert res.validation_metric in ("iterations", "loss")
    if res.validation_metric == "iterations":
        assert all(v["converged"] == 1.0 for v in res.validation_history)
    assert res.wall_time > 0 and res.best_epoch in (1, 2)
    meta = weights.read_meta(res.best_path)
    assert meta["training"]["n"] == 16 and meta["training_grid"] == [16, 16]
    assert "energy" in meta["loss"] and meta["validation"]["epoch"] == res.best_epoch
    net = weights.load_network(res.best_path, dim=2, compile=False)
    assert net(np.ones((16, 16))).shape == (16, 16)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    straight = train(dataclasses.replace(TINY, out=str(tmp_path / "a")), progress=False)
    first = train(dataclasses.replace(TINY, out=str(tmp_path / "b"), epochs=1), progress=False)
    assert len(first.loss_history) == len(straight.loss_history) // 2
    resumed = train(dataclasses.replace(TINY, out=str(tmp_path / "b")), resume=True,
                    progress=False)
    assert resumed.loss_history == straight.loss_history
    ta, _ = weights.read_tensors(straight.checkpoint_path, required=())
    tb, _ = weights.read_tensors(resumed.checkpoint_path, required=())
    assert set(ta) == set(tb)
    for key in ta:  # weights, Adam moments and step counts, RNG states, counters: bitwise
        assert torch.equal(ta[key], tb[key]), key
    assert [v["epoch"] for v in resumed.validation_history] == [1, 2]


def test_resume_refuses_a_different_config(tmp_path):
    train(dataclasses.replace(TINY, out=str(tmp_path), epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*lr \(0.001 -> 0.01\)"):
        train(dataclasses.replace(TINY, out=str(tmp_path), lr=0.01), resume=True, progress=False)


def test_config_round_trip_and_errors():
    assert TrainConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(ValueError, match=r"loss must be one of \('energy', 'paper', 'abs'\)"):
        TrainConfig(loss="l2")
    with pytest.raises(ValueError, match="the data mix is empty"):
        TrainConfig(ritz=0, random=0, smooth=0, residual=0)
    with pytest.raises(ValueError, match="kernel must be odd"):
        TrainConfig(kernel=2)


def test_cli_train(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--n", "12", "--scenes", "1", "--ritz", "0", "--random", "4", "--smooth",
            "0", "--residual", "0", "--epochs", "1", "--batch-size", "4", "--channels", "4",
            "--validation-scenes", "0", "--out", str(out), "--no-progress", "--seed", "3"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert f"best weights:  {out / 'best.safetensors'}" in text and "loss curve" in text
    assert weights.read_meta(out / "final")["training"]["seed"] == 3
    assert cli.main([*argv, "--epochs", "2", "--resume"]) == 0
    assert "for 2 epochs" in capsys.readouterr().out


@pytest.mark.parametrize("field, value, match", [
    ("lr", float("inf"), r"lr \(--lr\) must be a finite number > 0, got inf"),
    ("lr", float("nan"), r"lr \(--lr\) must be a finite number > 0, got nan"),
    ("lr_final", float("-inf"), r"lr_final \(--lr-final\) must be a finite number > 0"),
    ("cos_weight", float("inf"), r"cos_weight \(--cos-weight\) must be a finite number >= 0"),
    ("scale_weight", float("nan"), r"scale_weight \(--scale-weight\) must be a finite number"),
    ("scale_weight", -1.0, r"scale_weight \(--scale-weight\) must be a finite number >= 0"),
    ("validation_rtol", -1.0, r"validation_rtol \(--validation-rtol\) must be a finite number "
     r"in \(0, 1\), got -1.0"),
    ("validation_rtol", float("nan"), r"validation_rtol \(--validation-rtol\) must be"),
    ("validation_rtol", 1.0, r"validation_rtol \(--validation-rtol\) must be"),
    ("lr", True, r"lr \(--lr\) must be a finite number > 0, got True"),
    ("lr", "0.1", r"lr \(--lr\) must be a finite number > 0, got '0.1'"),
    ("threads", -2, r"threads \(--threads\) must be a positive integer or None, got -2"),
    ("threads", 0, r"threads \(--threads\) must be a positive integer or None, got 0"),
])
def test_config_refuses_bad_hyper_parameters(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("flag, value, name", [
    ("--lr", "inf", "--lr"), ("--lr-final", "nan", "--lr-final"),
    ("--validation-rtol", "-1", "--validation-rtol"), ("--threads", "-2", "--threads"),
])
def test_cli_train_refuses_bad_hyper_parameters_at_once(tmp_path, capsys, flag, value, name):
    assert cli.main(["train", flag, value, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcdm: error: ") and name in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_cli_train_stops_when_the_weights_turn_non_finite(tmp_path, capsys):
    # lr 1e30: the first Adam step leaves weights of 1e30, the second NaN weights, and the
    # energy loss of a NaN net reads 1.0 (one step per epoch)
    argv = ["train", "--n", "12", "--scenes", "1", "--ritz", "0", "--random", "4", "--smooth",
            "0", "--residual", "0", "--epochs", "2", "--batch-size", "4", "--channels", "4",
            "--validation-scenes", "0", "--out", str(tmp_path), "--no-progress",
            "--lr", "1e30", "--lr-final", "1e30"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(r"dcdm: error: training diverged at epoch 2, step 2: non-finite "
                     r"weights .*lower --lr", err), err
    assert not list(tmp_path.glob("final*"))


def test_training_stops_on_a_non_finite_loss_and_keeps_the_last_good_files(tmp_path,
                                                                           monkeypatch):
    import dcdm.training.train as train_mod

    config = dataclasses.replace(TINY, out=str(tmp_path))
    train(dataclasses.replace(config, epochs=1), progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".png"}
    loss = train_mod.dcdm_loss
    monkeypatch.setattr(train_mod, "dcdm_loss", lambda *a, **k: loss(*a, **k) * float("nan"))
    with pytest.raises(train_mod.TrainingDivergedError,
                       match=r"training diverged at epoch 2, step 11: the loss is nan"):
        train(config, resume=True, progress=False)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".png"}
    assert after == before  # checkpoint, best and final weights as the last good epoch left them

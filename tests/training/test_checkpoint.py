"""A kill at any instant of a checkpoint write leaves a resumable checkpoint.

The kill is simulated in a forked child that dies (``os._exit``: no ``finally``, no
cleanup, like SIGKILL) just before its k-th file-system step (fsync, rename, unlink),
for every k until the write completes.
"""

import dataclasses
import importlib
import itertools
import os
import shutil
import time

import pytest
import torch

from dcdm.training import weights
from dcdm.training.checkpoint import load_checkpoint, save_checkpoint
from dcdm.training.model import DCDMNet
from dcdm.training.train import train

from .test_train import TINY

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

KILLED, DONE, FAILED = 37, 38, 39
_STEPS = ("fsync", "replace", "rename", "unlink", "remove", "rmdir", "link", "symlink")


def run_killed(k: int, fn) -> int:
    """Run ``fn()`` in a forked child killed before its ``k``-th file-system step:
    ``KILLED``, or ``DONE`` if ``fn`` finished first (``FAILED`` if it raised)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = FAILED
        try:
            count = itertools.count()

            def kill_before(op):
                def step(*args, **kwargs):
                    if next(count) == k:
                        os._exit(KILLED)
                    return op(*args, **kwargs)
                return step

            for name in _STEPS:
                setattr(os, name, kill_before(getattr(os, name)))
            fn()
            code = DONE
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"the child killed at step {k} hung")
        time.sleep(0.01)
    return os.waitstatus_to_exitcode(done[1])


def _run_state(config):
    torch.manual_seed(0)
    model = DCDMNet(config.model_config())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt, torch.Generator().manual_seed(1)


def _train_step(model, opt, gen):
    loss = model(torch.randn(2, 1, 8, 8, generator=gen)).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _snapshot(model, opt, gen, state):
    tensors = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    for idx, st in opt.state_dict()["state"].items():
        tensors.update({f"optim.{idx}.{k}": v.clone() for k, v in st.items()})
    tensors["rng.torch"], tensors["rng.shuffle"] = torch.get_rng_state(), gen.get_state()
    return tensors, {k: state[k] for k in ("epoch", "step", "loss")}


def _same(a, b) -> bool:
    return a[1] == b[1] and a[0].keys() == b[0].keys() and all(
        torch.equal(a[0][k], b[0][k]) for k in a[0])


def test_a_kill_at_every_step_leaves_the_old_or_the_new_checkpoint(tmp_path):
    config = dataclasses.replace(TINY, channels=2)
    base = tmp_path / "base"
    model, opt, gen = _run_state(config)
    _train_step(model, opt, gen)
    old_state = {"epoch": 1, "step": 1, "loss": [0.5]}
    save_checkpoint(base, model, opt, gen, old_state, config)
    old = _snapshot(model, opt, gen, old_state)
    _train_step(model, opt, gen)
    new_state = {"epoch": 2, "step": 2, "loss": [0.5, 0.25]}
    new = _snapshot(model, opt, gen, new_state)
    seen = []
    for k in itertools.count():
        out = tmp_path / f"kill{k}"
        shutil.copytree(base, out)
        code = run_killed(k, lambda out=out: save_checkpoint(out, model, opt, gen, new_state,
                                                             config))
        assert code in (KILLED, DONE), f"the save raised in the child (step {k})"
        fresh = _run_state(config)
        _, state = load_checkpoint(out, *fresh, config)  # resumes: no torn pair
        got = _snapshot(*fresh, state)
        assert _same(got, new) if code == DONE else _same(got, old) or _same(got, new), k
        seen.append("new" if _same(got, new) else "old")
        # the next save cleans what the kill left: temporaries and older checkpoints
        save_checkpoint(out, *fresh, state, config)
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], k
        assert len(list(out.glob("checkpoint*.json"))) == 1, k
        if code == DONE:
            break
    assert seen[0] == "old" and seen[-1] == "new" and len(seen) >= 4
    assert seen == sorted(seen, key=["old", "new"].index)  # never back to the old one


def test_resume_skips_an_uncommitted_checkpoint_and_refuses_a_damaged_one(tmp_path):
    config = dataclasses.replace(TINY, channels=2)
    run = _run_state(config)
    first = save_checkpoint(tmp_path, *run, {"epoch": 1, "step": 1}, config)
    # a write killed before its commit: the tensors of epoch 2, no meta
    (tmp_path / "checkpoint-00002.safetensors").write_bytes(first.read_bytes())
    path, state = load_checkpoint(tmp_path, *_run_state(config), config)
    assert path == first and state["epoch"] == 1
    # the name of earlier versions still resumes; the next save removes it
    for suffix in (".safetensors", ".json"):
        first.with_suffix(suffix).rename(tmp_path / f"checkpoint{suffix}")
    path, _ = load_checkpoint(tmp_path, *_run_state(config), config)
    assert path.name == "checkpoint.safetensors"
    save_checkpoint(tmp_path, *run, {"epoch": 3, "step": 3}, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00003.json",
                                                          "checkpoint-00003.safetensors"]
    data = bytearray((tmp_path / "checkpoint-00003.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "checkpoint-00003.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"no complete checkpoint to resume from: .*"
                                         r"checkpoint-00003.safetensors: corrupted"):
        load_checkpoint(tmp_path, *_run_state(config), config)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return train(dataclasses.replace(TINY, out=str(tmp_path_factory.mktemp("straight"))),
                 progress=False)


@pytest.mark.parametrize("stem, suffix", [("checkpoint", ".safetensors"),
                                          ("checkpoint", ".json"), ("best", ".json")])
def test_training_killed_as_it_renames_a_file_resumes_bit_for_bit(tmp_path, straight, stem,
                                                                  suffix):
    config = dataclasses.replace(TINY, out=str(tmp_path))
    train(dataclasses.replace(config, epochs=1), progress=False)

    def run():  # dies as a file of epoch 2 is renamed into place: a torn pair for a moment
        replace = os.replace

        def killing_replace(src, dst, **kwargs):
            name = os.path.basename(dst)
            if name.startswith(stem) and name.endswith(suffix):
                os._exit(KILLED)
            return replace(src, dst, **kwargs)

        os.replace = killing_replace
        if stem == "best":  # epoch 2 must score better to write best.*: on TINY the two
            # epochs' effective iterations tie to 3 digits, so the child's epoch 2 is made better
            module = importlib.import_module("dcdm.training.train")
            real = module.validation_runs

            def better(*args, **kwargs):
                return [dict(r, effective=0.5 * r["effective"]) for r in real(*args, **kwargs)]

            module.validation_runs = better
        train(config, resume=True, progress=False)

    assert run_killed(None, run) == KILLED
    resumed = train(config, resume=True, progress=False)
    assert resumed.loss_history == straight.loss_history
    ta, _ = weights.read_tensors(straight.checkpoint_path, required=())
    tb, _ = weights.read_tensors(resumed.checkpoint_path, required=())
    assert ta.keys() == tb.keys() and all(torch.equal(ta[key], tb[key]) for key in ta)
    weights.load_network(resumed.best_path, dim=2, compile=False)  # the best weights, whole

import logging

import numpy as np
import pytest
import torch

from dcdm.problems import scenes
from dcdm.training.inference import Network
from dcdm.training.model import DCDMNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return DCDMNet(dim=2, channels=8)


@pytest.fixture
def scene():
    return scenes.smoke((15, 12), obstacles=3, seed=7)


@pytest.mark.parametrize("compile", [False, True])
def test_zero_off_fluid_shape_and_dtype(model, scene, rng, compile):
    net = Network(model, compile=compile)
    r = scene.mask(rng.standard_normal(scene.shape))
    for dtype in (np.float32, np.float64):
        flat = r.ravel().astype(dtype)
        q = net(flat, scene)
        assert q.shape == flat.shape and q.dtype == dtype
        assert np.all(q[~scene.fluid.ravel()] == 0) and np.any(q != 0)
        qg = net(r.astype(dtype), scene)
        assert qg.shape == scene.shape
        np.testing.assert_allclose(qg.ravel(), q, rtol=1e-6, atol=1e-7)


def test_scale_invariant_input(model, scene, rng):
    net = Network(model, compile=False)
    r = scene.mask(rng.standard_normal(scene.shape))
    q = net(r, scene)
    for c in (1e-6, 3.0, 1e8):
        np.testing.assert_allclose(net(c * r, scene), q, rtol=1e-5, atol=1e-6)
    homo = Network(model, compile=False, rescale=True)
    np.testing.assert_allclose(homo(5.0 * r, scene), 5.0 * homo(r, scene), rtol=1e-5, atol=1e-6)


def test_compiled_equals_eager_and_caches_per_shape(model, rng):
    eager, fast = Network(model, compile=False), Network(model, compile=True)
    for shape in ((16, 16), (9, 13), (16, 16)):
        r = rng.standard_normal(shape)
        np.testing.assert_allclose(fast(r), eager(r), rtol=1e-4, atol=1e-5)
    assert len(fast._cache) == 2 and fast.calls == 3
    assert fast.network_seconds > 0 and fast.compile_seconds > 0
    fast.reset_timers()
    assert fast.calls == 0 and fast.network_seconds == 0


def test_snapshot_of_the_model(rng):
    m = DCDMNet(dim=2, channels=2)
    net = Network(m, compile=False)
    r = rng.standard_normal((8, 8))
    before = net(r)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    np.testing.assert_array_equal(net(r), before)


def test_zero_residual(model):
    assert not Network(model, compile=False)(np.zeros((6, 6))).any()


def test_tracing_failure_falls_back(model, monkeypatch, caplog, rng):
    def boom(*args, **kwargs):
        raise RuntimeError("no tracing today")

    monkeypatch.setattr(torch.jit, "trace", boom)
    net = Network(model, compile=True)
    with caplog.at_level(logging.WARNING):
        q = net(rng.standard_normal((8, 8)))
    assert "no tracing today" in caplog.text and np.isfinite(q).all()


def test_errors(model, rng):
    net = Network(model, compile=False)
    with pytest.raises(ValueError, match="2-D weights on a 3-D grid"):
        net(rng.standard_normal((4, 4, 4)))
    with pytest.raises(ValueError, match="2-D weights on a 3-D grid"):
        net(rng.standard_normal(64), (4, 4, 4))
    with pytest.raises(ValueError, match="does not fit the grid"):
        net(rng.standard_normal(10), (4, 4))
    with pytest.raises(ValueError, match="flat one together with its grid"):
        net(rng.standard_normal(16))
    with pytest.raises(TypeError, match="float32 or float64"):
        net(np.ones((4, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="must be a DCDMNet"):
        Network(object())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", torch.bfloat16])
@pytest.mark.parametrize("compile", [False, True])
def test_reduced_precision_forward_pass(model, scene, rng, dtype, compile):
    """Only the forward pass is reduced: inputs and outputs keep the caller's dtype."""
    ref = Network(model, compile=False)
    net = Network(model, compile=compile, dtype=dtype)
    assert net.dtype_name == str(dtype).removeprefix("torch.") and net.dtype_name in repr(net)
    assert all(p.dtype == net.dtype for p in net.model.parameters())
    r = scene.mask(rng.standard_normal(scene.shape))
    for arr in (r, r.astype(np.float32), torch.from_numpy(r)):
        try:
            q = net(arr, scene)
        except RuntimeError as err:  # no CPU kernels for this format in this torch build
            if "not implemented" in str(err):
                pytest.skip(f"{dtype} on the CPU: {err}")
            raise
        assert q.dtype == arr.dtype and tuple(q.shape) == tuple(arr.shape)
        q = np.asarray(q)
        expect = ref(r, scene)
        # 8 (bf16) or 11 (fp16) significant bits through ~20 layers
        assert np.linalg.norm(q - expect) <= 0.05 * np.linalg.norm(expect)
        assert np.all(q[~scene.fluid] == 0)


def test_to_changes_precision_once(model):
    net = Network(model, compile=False)
    assert net.to("cpu") is net and net.to(dtype="float32") is net
    half = net.to(dtype="bfloat16")
    assert half is not net and half.dtype == torch.bfloat16 and net.dtype == torch.float32
    assert half.to(dtype=torch.bfloat16) is half and half.to("cpu").dtype == torch.bfloat16
    back = half.to(dtype="float32")  # from the kept float32 weights, not the rounded ones
    for a, b in zip(back.model.parameters(), net.model.parameters(), strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("bad", ["float64", "half", torch.int8, None])
def test_a_bad_dtype_is_a_clear_error(model, bad):
    if bad is None:  # None means the default
        assert Network(model, compile=False, dtype=None).dtype == torch.float32
        return
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'bfloat16', "
                                         r"'float16'\)"):
        Network(model, compile=False, dtype=bad)

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads that get
    descheduled spin at every barrier (measured: 100x slower training steps under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


@pytest.fixture
def random_flags(rng):
    """``random_flags(shape)``: random FLUID/SOLID/AIR flags."""

    def make(shape, p_solid=0.2, p_air=0.1):
        u = rng.random(shape)
        flags = np.zeros(shape, dtype=np.int8)
        flags[u < p_solid] = 1
        flags[(u >= p_solid) & (u < p_solid + p_air)] = 2
        return flags

    return make

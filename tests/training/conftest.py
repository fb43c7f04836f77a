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

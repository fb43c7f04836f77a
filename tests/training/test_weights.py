import json

import numpy as np
import pytest
import torch

from dcdm.training import weights
from dcdm.training.model import DCDMNet


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = DCDMNet(dim=2, channels=4)
    path = weights.save_weights(tmp_path / "net", net, training_grid=(16, 16), loss="paper")
    return net, path


def test_round_trip(saved, tmp_path):
    net, path = saved
    assert path.name == "net.safetensors" and path.with_suffix(".json").exists()
    for ref in (tmp_path / "net", path, path.with_suffix(".json"), str(path)):
        loaded, meta = weights.load_model(ref)
        for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items(),
                                   strict=True):
            assert k == k2 and torch.equal(a, b)
    assert meta["schema_version"] == weights.SCHEMA_VERSION
    assert meta["dim"] == 2 and meta["model"]["channels"] == 4
    assert meta["param_count"] == net.param_count() and meta["training_grid"] == [16, 16]
    for key in ("package_version", "created", "loss", "sha256"):
        assert meta[key]
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    network = weights.load_network(path, dim=2, compile=False)
    assert network.name == "net" and network.dim == 2
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_plain_safetensors_no_pickle(saved):
    _, path = saved
    data = path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"]["format"] == "pt"
    assert header["first.weight"]["dtype"] == "F32"


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path.name}.*truncated or corrupted"):
        weights.load_model(path)


def test_corrupted_bytes(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-40:-20] = bytes(20)  # tensor bytes: parses, but the checksum catches it
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path.name}: corrupted weights file: its sha256"):
        weights.load_model(path)


def test_corrupted_header(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[10:30] = b"\xff" * 20
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path.name}.*truncated or corrupted"):
        weights.load_model(path)


def test_missing_files(tmp_path, saved):
    with pytest.raises(ValueError, match=r"nope.safetensors: no such weights file"):
        weights.load_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, for callers that skip
        weights.load_network(tmp_path / "nope")
    _, path = saved
    path.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match=r"meta file of net\.safetensors is missing"):
        weights.load_model(path)


def _edit_meta(path, **changes):
    mpath = path.with_suffix(".json")
    meta = json.loads(mpath.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    mpath.write_text(json.dumps(meta))


def test_dims_mismatch(saved):
    _, path = saved
    with pytest.raises(ValueError, match="2-D weights on a 3-D grid"):
        weights.load_network(path, dim=3)


def test_unknown_schema(saved):
    _, path = saved
    _edit_meta(path, schema_version=99)
    with pytest.raises(ValueError, match=r"net.json: unknown schema_version 99"):
        weights.load_model(path)
    _edit_meta(path, schema_version=None)
    with pytest.raises(ValueError, match="no schema_version"):
        weights.load_model(path)


def test_meta_missing_fields_and_bad_json(saved):
    _, path = saved
    _edit_meta(path, model=None)
    with pytest.raises(ValueError, match=r"lacks required field\(s\) \['model'\]"):
        weights.load_model(path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON meta"):
        weights.load_model(path)


def test_tensor_shapes_vs_config(saved):
    _, path = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    _edit_meta(path, model={**meta["model"], "channels": 8})
    with pytest.raises(ValueError, match=r"tensors do not match the model config.*shape"):
        weights.load_model(path)
    _edit_meta(path, model={**meta["model"], "convs_after": 2})
    with pytest.raises(ValueError, match=r"unexpected up\.0\.convs\.2"):
        weights.load_model(path)


def test_shipped_names(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="shipped weights 'dcdm-3d' are not installed"):
        weights.load_network(dim=3)
    with pytest.raises(ValueError, match="give dim=2 or dim=3"):
        weights.load_network()
    weights.save_weights(tmp_path / "dcdm-2d", DCDMNet(dim=2, channels=2))
    assert weights.load_network(dim=2, compile=False).name == "dcdm-2d"
    assert weights.load_network("dcdm-2d", compile=False).dim == 2
    with pytest.raises(ValueError, match="2-D weights on a 3-D grid"):
        weights.load_network("dcdm-2d", dim=3)


def test_loaded_networks_are_cached_by_content(saved, tmp_path):
    _, path = saved
    first = weights.load_network(path, dim=2, compile=False)
    assert weights.load_network(path, dim=2, compile=False) is first
    assert weights.load_network(path, dim=2, compile=True) is not first  # other options
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, maybe the same mtime: the content decides
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        weights.load_network(path, dim=2, compile=False)


def test_model_objects_pass_through():
    from dcdm.training.inference import Network

    net = DCDMNet(dim=3, channels=2)
    wrapped = weights.load_network(net, dim=3, compile=False)
    assert isinstance(wrapped, Network)
    assert weights.load_network(wrapped, dim=3) is wrapped
    with pytest.raises(ValueError, match="3-D weights on a 2-D grid"):
        weights.load_network(wrapped, dim=2)
    assert np.isfinite(wrapped(np.ones((4, 4, 4)))).all()


@pytest.mark.parametrize("field, value, match", [
    ("channels", 100_000, r"ModelConfig.channels must be at most 512, got 100000"),
    ("levels", 3000, r"ModelConfig.levels must be at most 6, got 3000"),
    ("kernel", 10**9 + 1, r"ModelConfig.kernel must be at most 11"),
    ("convs_coarse", 10**6, r"ModelConfig.convs_coarse must be at most 64"),
    ("channels", 1e5, r"ModelConfig.channels must be a positive integer, got 100000.0"),
    ("dim", 1000, r"ModelConfig.dim must be 2 or 3, got 1000"),
])
def test_meta_dimensions_are_bounded_before_building(saved, field, value, match):
    """A meta with a valid checksum but absurd dimensions: a clear error naming the file,
    not torch's allocation error or seconds of building."""
    _, path = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    _edit_meta(path, model={**meta["model"], field: value})
    with pytest.raises(ValueError, match=rf"net\.safetensors: bad model config in the meta: "
                                         rf"{match}"):
        weights.load_model(path)


def test_meta_parameter_count_is_bounded(saved):
    _, path = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    _edit_meta(path, dim=3, model={**meta["model"], "dim": 3, "channels": 300})
    with pytest.raises(ValueError, match=r"net\.safetensors: bad model config in the meta: "
                                         r"ModelConfig has 34,032,901 parameters, more than the "
                                         r"33,554,432 allowed"):
        weights.load_model(path)


def test_finish_interrupted_write_rolls_a_torn_pair_forward(tmp_path):
    """A kill between write_tensors' two renames: new tensors, old meta, new meta in a temp."""
    old = {"w": torch.zeros(3)}
    new = {"w": torch.ones(3)}
    path = weights.write_tensors(tmp_path / "best", old, {"note": "old"})
    assert not weights.finish_interrupted_write(path)  # a matching pair: nothing to do
    other = weights.write_tensors(tmp_path / "elsewhere" / "best", new, {"note": "new"})
    path.write_bytes(other.read_bytes())  # the tensors' rename happened ...
    with pytest.raises(ValueError, match="corrupted weights file"):
        weights.read_tensors(path, required=())
    assert not weights.finish_interrupted_write(path)  # ... and no temporary can repair it
    (tmp_path / ".best.json.x1y2.tmp").write_text("{not json")  # a torn temporary is skipped
    (tmp_path / ".best.json.a1b2.tmp").write_bytes(other.with_suffix(".json").read_bytes())
    assert weights.finish_interrupted_write(path)
    tensors, meta = weights.read_tensors(path, required=())
    assert torch.equal(tensors["w"], new["w"]) and meta["note"] == "new"
    assert not (tmp_path / ".best.json.a1b2.tmp").exists()

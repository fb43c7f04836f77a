import subprocess
import sys

import pytest


@pytest.mark.parametrize("statement", [
    "import dcdm",
    "import dcdm.solvers",
    "import dcdm.training",
    "from dcdm.training import TrainConfig, ModelConfig",
    "import dcdm.cli; dcdm.cli.build_parser()",
])
def test_torch_is_not_imported(statement):
    code = f"import sys; {statement}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"{statement!r} imported torch"


def test_lazy_names_resolve():
    import dcdm.training as t

    assert t.DCDMNet.__name__ == "DCDMNet" and t.load_network.__name__ == "load_network"
    with pytest.raises(AttributeError):
        t.nothing_here  # noqa: B018

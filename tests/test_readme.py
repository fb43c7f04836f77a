"""The README's quickstart runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python block"
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert "CONVERGED_RTOL" in capsys.readouterr().out


def test_every_python_block_runs():
    text = README.read_text()
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)[1:], 1):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), {})

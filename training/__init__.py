"""The DCDM network and its training pipeline (needs the ``train`` extra: torch, safetensors).

Not implemented in this release: it arrives with the DCDM issue. The package
is importable so that ``dcdm.training`` exists in the layout.
"""

__all__: list[str] = []

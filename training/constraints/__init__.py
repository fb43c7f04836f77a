"""Hard constraints on networks: layers whose output satisfies a PDE (or a linear constraint).

Needs the ``train`` extra (torch). Modules are imported directly, e.g.
``from dcdm.training.constraints.layer import HardConstraint``.
"""

"""The ``dcdm.problems`` tests use the shared fixtures of tests/conftest.py (``rng``,
``random_flags``)."""

import pytest

from dcdm.solvers import cg, fcg

SOLVERS = {"cg": cg, "fcg": fcg}


@pytest.fixture(params=sorted(SOLVERS))
def solver(request):
    return SOLVERS[request.param]


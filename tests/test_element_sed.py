"""The per-element strain energy density the Pistoia criterion uses, against closed forms.

One box element under a prescribed bending displacement: its strain varies linearly
across the element, so the SED of the centre strain and the element-average SED differ
by a known amount (the quadratic part of the strain's variation). On a tetrahedron the
P1 strain is constant and the two agree.
"""

import numpy as np
import pytest
from mpi4py import MPI

E, NU = 1000.0, 0.3
LAM = E * NU / ((1 + NU) * (1 - 2 * NU))
MU = E / (2 * (1 + NU))


def fields_of(msh, displacement):
    """element_fields of the P1 interpolant of ``displacement`` (a callable on (3, n) points)."""
    import dolfinx.fem
    import ufl
    from petsc4py import PETSc

    from fem.solve.elasticity import element_fields

    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    n = msh.topology.index_map(3).size_local
    modulus = np.full(n, E)
    Ef = dolfinx.fem.Function(Q)
    Ef.x.array[:] = E
    u = dolfinx.fem.Function(V)
    u.interpolate(displacement)
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2})
    nu = dolfinx.fem.Constant(msh, PETSc.ScalarType(NU))
    return element_fields(u, Ef, nu, dx, modulus)


def box(a, b, c):
    import dolfinx.mesh

    return dolfinx.mesh.create_box(MPI.COMM_SELF, [np.zeros(3), np.array([a, b, c])], [1, 1, 1],
                                   dolfinx.mesh.CellType.hexahedron)


def test_bent_box_centre_and_average_sed_differ_by_the_closed_form():
    # u_x = eps0 x + kappa x (z - c/2), u_z = -kappa x^2 / 2: pure bending about y plus a
    # uniform stretch. The Q1 interpolant keeps u_x (bilinear) and makes u_z linear in x,
    # so eps_xx = eps0 + kappa (z - c/2), gamma_xz = kappa (x - a/2), other strains 0.
    # Centre strain (x = a/2, z = c/2): eps_xx = eps0 only -> SED_c = (lam + 2 mu) eps0^2 / 2.
    # Average over the box: SED_avg = SED_c + (lam + 2 mu) kappa^2 c^2 / 24 + mu kappa^2 a^2 / 24.
    a, b, c = 0.2, 0.3, 0.5
    eps0, kappa = 0.004, 0.05
    f = fields_of(box(a, b, c), lambda x: np.vstack([eps0 * x[0] + kappa * x[0] * (x[2] - c / 2),
                                                     0 * x[0], -kappa * x[0] ** 2 / 2]))
    centre = 0.5 * (LAM + 2 * MU) * eps0 ** 2
    average = centre + (LAM + 2 * MU) * kappa ** 2 * c ** 2 / 24 + MU * kappa ** 2 * a ** 2 / 24
    assert f["sed"][0] == pytest.approx(centre, rel=1e-12)
    assert f["sed_average"][0] == pytest.approx(average, rel=1e-12)
    assert f["ees"][0] == pytest.approx(np.sqrt(2 * centre / E), rel=1e-12)
    assert f["volume"][0] == pytest.approx(a * b * c, rel=1e-12)
    # the centre stress: sigma_xx = (lam + 2 mu) eps0, sigma_yy = sigma_zz = lam eps0
    assert f["von_mises"][0] == pytest.approx(2 * MU * eps0, rel=1e-12)


def test_tetrahedra_have_one_sed_the_constant_strain_one():
    import dolfinx.mesh

    msh = dolfinx.mesh.create_box(MPI.COMM_SELF, [np.zeros(3), np.ones(3)], [2, 1, 1],
                                  dolfinx.mesh.CellType.tetrahedron)
    g = np.array([[0.003, 0.001, 0.0], [0.0, -0.002, 0.0005], [0.001, 0.0, -0.004]])
    f = fields_of(msh, lambda x: g @ x)
    eps = 0.5 * (g + g.T)
    sed = 0.5 * (LAM * np.trace(eps) ** 2 + 2 * MU * np.sum(eps * eps))
    assert np.allclose(f["sed"], sed, rtol=1e-12)
    assert np.allclose(f["sed_average"], sed, rtol=1e-12)
    assert f["volume"].sum() == pytest.approx(1.0, rel=1e-12)

"""The spherical p-spin glass model of a deep network's loss, and its theory.

- :class:`PSpinGlass`: H(σ) = J n^{−(p−1)/2} Σ J_{i_1…i_p} σ_{i_1}⋯σ_{i_p} − h·σ on S^{n−1}(√n)
  (AnnealSGD paper eq. (3), (7)); :class:`SplitPSpinGlass`, the same as a sum of P sub-Hamiltonians
  (Sagun et al. eq. (4)); :class:`TripartiteSpinGlass` (Sagun et al. §3.1.2).
- :func:`descend`: batched projected gradient descent on the sphere (Thesis §2.4.1).
- :func:`index`, :func:`group_minima`, :func:`mean_cosine_distance`: critical points and minima.
- :mod:`deeplandscape.spinglass.theory`: Θ_k(u), E_0, E_k, E_∞, B, ν_c, regimes, annealing schedule.
"""

from deeplandscape.spinglass import theory
from deeplandscape.spinglass.base import SphericalHamiltonian
from deeplandscape.spinglass.critical import (
    IndexResult,
    MinimaGroups,
    NewtonResult,
    group_minima,
    index,
    mean_cosine_distance,
    newton_critical_points,
    overlap,
)
from deeplandscape.spinglass.descent import DescentResult, descend
from deeplandscape.spinglass.pspin import PSpinGlass
from deeplandscape.spinglass.split import SplitPSpinGlass
from deeplandscape.spinglass.tripartite import TripartiteSpinGlass

__all__ = [
    "DescentResult",
    "IndexResult",
    "MinimaGroups",
    "NewtonResult",
    "PSpinGlass",
    "SphericalHamiltonian",
    "SplitPSpinGlass",
    "TripartiteSpinGlass",
    "descend",
    "group_minima",
    "index",
    "mean_cosine_distance",
    "newton_critical_points",
    "overlap",
    "theory",
]

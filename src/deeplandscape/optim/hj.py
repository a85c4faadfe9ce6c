"""HJ: the non-viscous Hamilton–Jacobi relaxation (Thesis §4.6.1.2), Entropy-SGD's machinery, its settings.

The non-viscous Hamilton–Jacobi PDE u_t = −½|∇u|² (Thesis eq. (4.15)) is the β^{-1} → 0 limit of the
viscous HJ equation (4.1) whose solution is Local Entropy (Lemma 4.1). Its update is eq. (4.40)–(4.41)
with "L = 5 and β_ex^{-1} = 0, and ⟨y⟩_k = y_k …, i.e. no averaging is performed and we simply take
the last iterate of the y_k updates and take α = 0":

    y ← y − η(∇f_b(y) + γ_t^{-1}(y − x))   for L steps from y = x,
    x ← x − η′(x − y_L)                       (scaled outer update of §3.2.3)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .entropy import EntropySGD


class HJ(EntropySGD):
    """Non-viscous Hamilton–Jacobi relaxation (Thesis §4.6.1.2): :class:`EntropySGD`, L = 5, α = β^{-1} = 0.

    Defaults: L = 5, noise = 0, alpha = 0 (§4.6.1.2); the rest as :class:`EntropySGD`, whose docstring gives
    each source ("other details such as adding momentum … and scoping of the parameter γ are standard and
    as discussed in Section 3.2.3", §4.6.1.3): lr = η′ = 1 (§3.2.3; x ← y_L), inner_lr = 0.1 (§4.6.1.1),
    γ0 = 1e4, γ1 = 1e-3, Nesterov momentum 0.9 in the inner loop restarted each cycle and none on the outer
    update (the authors' code). §4.6.1.1 sets the outer step η = 0.1, dropped by 5× every 3 epochs; the
    authors' PyTorch port pairs η′ = 0.1 with outer Nesterov momentum 0.9 (``lr=0.1, outer_momentum=0.9,
    outer_nesterov=True``). All knobs stay in the param groups and may be overridden (with noise > 0 or
    alpha > 0 it is no longer HJ).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        inner_lr: float = 0.1,
        L: int = 5,
        gamma: float = 1e4,
        scoping: float = 1e-3,
        alpha: float = 0.0,
        noise: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        outer_momentum: float = 0.0,
        outer_nesterov: bool = False,
        *,
        seed: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            inner_lr=inner_lr,
            L=L,
            gamma=gamma,
            scoping=scoping,
            alpha=alpha,
            noise=noise,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            outer_momentum=outer_momentum,
            outer_nesterov=outer_nesterov,
            seed=seed,
            foreach=foreach,
        )


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"hj": HJ}

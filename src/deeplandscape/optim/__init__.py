"""Landscape-shaping optimizers, as native ``torch.optim`` optimizers.

- :class:`AnnealSGD` — fixed annealed random field added to the gradient (AnnealSGD paper Alg. 1);
- :class:`GradientNoise` — annealed resampled Gaussian gradient noise (Neelakantan et al. 2015);
- :class:`SGLD` — stochastic gradient Langevin dynamics (Welling & Teh 2011);
- :class:`SAM` — sharpness-aware minimization around any base optimizer (Foret et al. 2021; adaptive
  ASAM, Kwon et al. 2021);
- :class:`EntropySGD`, :class:`EntropyAdam` — Local Entropy (Thesis Ch. 3, Alg. 2);
- :class:`HJ`, :class:`Heat` — Hamilton–Jacobi and heat-equation relaxations (Thesis §4.6.1);
- :class:`ElasticSGD` — replicas coupled elastically to a master (Zhang et al. 2015; Thesis eq. (5.4));
- :class:`Parle`, :class:`DistributedParle` — replicas running Entropy-SGD, coupled to a master every L
  steps (Thesis Ch. 5), in one process or one replica per process (torchrun); :func:`split_dataset`
  for the data splits of §5.5;
- :class:`EnsembleSGD`, :func:`train_ensemble` — independent SGD for every member of a
  :class:`~deeplandscape.nets.Ensemble` and its training loop (Choromanska et al. §5.1);
- :func:`get` / :func:`available` — the registry by name; :func:`recompute_batchnorm` for BatchNorm layers.
"""

from .anneal import AnnealSGD, NetworkSize, estimate_network_size, field_scale
from .batchnorm import recompute_batchnorm
from .distributed import DistributedElasticSGD, DistributedParle
from .elastic import ElasticSGD
from .ensemble_sgd import EnsembleSGD
from .ensemble_training import EnsembleHistory, train_ensemble
from .entropy import EntropyAdam, EntropySGD
from .gradient_noise import GradientNoise, noise_std
from .heat import Heat
from .hj import HJ
from .parle import Parle, split_dataset
from .registry import available, get, register
from .sam import SAM
from .sgld import SGLD

__all__ = [
    "HJ",
    "SAM",
    "SGLD",
    "AnnealSGD",
    "DistributedElasticSGD",
    "DistributedParle",
    "ElasticSGD",
    "EnsembleHistory",
    "EnsembleSGD",
    "EntropyAdam",
    "EntropySGD",
    "GradientNoise",
    "Heat",
    "NetworkSize",
    "Parle",
    "available",
    "estimate_network_size",
    "field_scale",
    "get",
    "noise_std",
    "recompute_batchnorm",
    "register",
    "split_dataset",
    "train_ensemble",
]

"""Landscape instruments for any ``nn.Module`` with a loss and data.

Curvature (Hessian-vector products, exact Hessian, Lanczos, spectral density, Hutchinson trace, index),
mini-batch noise (per-sample gradients, Fisher diagonal, the diffusion matrix D(x)), trajectories, width
(Local Entropy), permutation alignment of networks, loss slices and training probes. Every instrument
leaves the model exactly as it found it and returns a frozen dataclass with its error measure.
"""

from deeplandscape.analysis.alignment import (
    Alignment,
    Overlap,
    align,
    average_models,
    overlap_matrix,
    permute_hidden_units,
)
from deeplandscape.analysis.fisher import FisherDiagonal, fisher_diagonal
from deeplandscape.analysis.hessian import ExactHessian, exact_hessian
from deeplandscape.analysis.hvp import HessianOperator, HessianVectorProduct, hessian_vector_product
from deeplandscape.analysis.lanczos import LanczosResult, LanczosTridiagonal, lanczos, lanczos_tridiagonal
from deeplandscape.analysis.linear_operator import MatrixOperator, SymmetricOperator, as_operator, to_scipy
from deeplandscape.analysis.noise import (
    DiffusionMatrix,
    DiffusionSpectrum,
    SGDTemperature,
    diffusion_matrix,
    diffusion_spectrum,
    diffusion_spectrum_from_gradients,
    sgd_temperature,
)
from deeplandscape.analysis.per_sample import PerSampleGradients, per_sample_gradients
from deeplandscape.analysis.probes import ProbeRecord, TrainingProbe
from deeplandscape.analysis.slices import (
    LossLine,
    LossPlane,
    filter_normalize,
    interpolate,
    loss_line,
    loss_plane,
    random_direction,
)
from deeplandscape.analysis.slq import SpectralDensity, spectral_density
from deeplandscape.analysis.spectrum import SpectrumStatistics, density_statistics, spectrum_statistics
from deeplandscape.analysis.trace import TraceEstimate, hutchinson_trace
from deeplandscape.analysis.trajectory import (
    Trajectory,
    TrajectoryRecorder,
    TrajectorySpectrum,
    autocorrelation,
    full_gradient_norm,
    trajectory_spectrum,
)
from deeplandscape.analysis.width import (
    LocalEntropy,
    RobustWidth,
    local_entropy,
    local_entropy_energy,
    robust_width,
    robust_width_energy,
    robust_width_from_estimates,
)

__all__ = [
    "Alignment",
    "DiffusionMatrix",
    "DiffusionSpectrum",
    "ExactHessian",
    "FisherDiagonal",
    "HessianOperator",
    "HessianVectorProduct",
    "LanczosResult",
    "LanczosTridiagonal",
    "LocalEntropy",
    "LossLine",
    "LossPlane",
    "MatrixOperator",
    "Overlap",
    "PerSampleGradients",
    "ProbeRecord",
    "RobustWidth",
    "SGDTemperature",
    "SpectralDensity",
    "SpectrumStatistics",
    "SymmetricOperator",
    "TraceEstimate",
    "TrainingProbe",
    "Trajectory",
    "TrajectoryRecorder",
    "TrajectorySpectrum",
    "align",
    "as_operator",
    "autocorrelation",
    "average_models",
    "density_statistics",
    "diffusion_matrix",
    "diffusion_spectrum",
    "diffusion_spectrum_from_gradients",
    "exact_hessian",
    "filter_normalize",
    "fisher_diagonal",
    "full_gradient_norm",
    "hessian_vector_product",
    "hutchinson_trace",
    "interpolate",
    "lanczos",
    "lanczos_tridiagonal",
    "local_entropy",
    "local_entropy_energy",
    "loss_line",
    "loss_plane",
    "overlap_matrix",
    "per_sample_gradients",
    "permute_hidden_units",
    "random_direction",
    "robust_width",
    "robust_width_energy",
    "robust_width_from_estimates",
    "sgd_temperature",
    "spectral_density",
    "spectrum_statistics",
    "to_scipy",
    "trajectory_spectrum",
]

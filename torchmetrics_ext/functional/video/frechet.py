r"""Fréchet distance between two Gaussians, the math behind FVD, and the mean and covariance it is fed.

For Gaussians :math:`\mathcal{N}(\mu_1, \Sigma_1)` and :math:`\mathcal{N}(\mu_2, \Sigma_2)`

.. math::
    d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
        - 2 \operatorname{tr}\big((\Sigma_1 \Sigma_2)^{1/2}\big)

The last trace is taken through the symmetric form, never through the square root of the non-symmetric
:math:`\Sigma_1 \Sigma_2` (``scipy.linalg.sqrtm``, which loses half the digits when a covariance is singular):

.. math::
    \operatorname{tr}\big((\Sigma_1 \Sigma_2)^{1/2}\big)
        = \operatorname{tr}\big((\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big)
        = \sum_i \sqrt{\lambda_i(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})}
        = \lVert F_1^\top F_2 \rVert_*

Two ways to that sum, the first when both covariances are numerically full rank:

- **Full rank: one Cholesky and symmetric eigenvalues only.** With :math:`\Sigma_2 = L L^\top`,
  :math:`\Sigma_1 \Sigma_2` is similar to the symmetric :math:`L^\top \Sigma_1 L`, whose eigenvalues
  ``eigvalsh`` gives without eigenvectors. With the two rank tests (``eigvalsh`` of each covariance) this is about
  twice as fast as the second way on the CPU at D = 2048, and agrees with it to rounding: the second way would drop
  no eigenvalue here.
- **Singular: the nuclear norm of the range factors.** A covariance of fewer samples than dimensions is singular,
  and the square root of each rounding-noise eigenvalue around 0 would add about 1e-8 (the square root of the
  rounding unit) to the trace. The trace is then :math:`\lVert F_1^\top F_2 \rVert_*` of the factors
  :math:`F_k = V_k \Lambda_k^{1/2}`, :math:`F_k F_k^\top = \Sigma_k`, from ``eigh``, with the eigenvalues at or
  below ``D * eps * max|lambda|`` (the tolerance of ``numpy.linalg.matrix_rank``) left out: the singular values of
  :math:`F_1^\top F_2` are the square roots of the eigenvalues of :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}`,
  and an SVD gives small ones to an absolute error near the rounding unit.
"""

from typing import Optional, Union

import torch
from torch import Tensor


def _check_mean_and_covariance(mu: Tensor, sigma: Tensor, mu_name: str, sigma_name: str) -> None:
    if not isinstance(mu, Tensor) or mu.ndim != 1 or mu.numel() == 0:
        seen = f"shape {list(mu.shape)}" if isinstance(mu, Tensor) else type(mu).__name__
        raise ValueError(f"Argument `{mu_name}` expected a tensor of shape [D] with D >= 1, but got {seen}.")
    dim = mu.shape[0]
    if not isinstance(sigma, Tensor) or sigma.shape != (dim, dim):
        seen = f"shape {list(sigma.shape)}" if isinstance(sigma, Tensor) else type(sigma).__name__
        raise ValueError(
            f"Argument `{sigma_name}` expected a tensor of shape [D, D] = [{dim}, {dim}] to match `{mu_name}`,"
            f" but got {seen}."
        )


def _symmetric(matrix: Tensor) -> Tensor:
    """A covariance summed in floating point is symmetric only up to rounding; ``eigh`` reads one triangle."""
    return (matrix + matrix.mT) / 2


def _is_noise(eigenvalues: Tensor, dim: int) -> Tensor:
    """Eigenvalues at or below ``D * eps * max|lambda|``, the tolerance of ``numpy.linalg.matrix_rank``."""
    return eigenvalues <= eigenvalues.abs().max() * dim * torch.finfo(eigenvalues.dtype).eps


def _range_factor(sigma: Tensor) -> Tensor:
    """Return ``F`` of shape [D, r] with ``F @ F.T == sigma`` over the numerical range (rank ``r``) of ``sigma``."""
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    kept = ~_is_noise(eigenvalues, sigma.shape[0])  # also drops the negative rounding noise of a singular covariance
    return eigenvectors[:, kept] * eigenvalues[kept].sqrt()


def _trace_sqrt_full_rank(sigma1: Tensor, sigma2: Tensor) -> Optional[Tensor]:
    """``sum sqrt(eig(L^T sigma1 L))``, ``sigma2 = L L^T``, or ``None`` when a covariance is numerically singular."""
    dim = sigma1.shape[0]
    for sigma in (sigma2, sigma1):  # the rank test of the other path: where it would drop nothing, the two agree
        if bool(_is_noise(torch.linalg.eigvalsh(sigma), dim).any()):
            return None
    lower, info = torch.linalg.cholesky_ex(sigma2)
    if int(info) != 0:
        return None
    eigenvalues = torch.linalg.eigvalsh(_symmetric(lower.mT @ sigma1 @ lower))
    return eigenvalues.clamp(min=0).sqrt().sum()


def _trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr((sigma1^(1/2) sigma2 sigma1^(1/2))^(1/2))`` of symmetric PSD float64 matrices (see the module's notes)."""
    full_rank = _trace_sqrt_full_rank(sigma1, sigma2)
    if full_rank is not None:
        return full_rank
    # singular values of F1^T F2 = square roots of the eigenvalues of sigma1^(1/2) sigma2 sigma1^(1/2)
    return torch.linalg.svdvals(_range_factor(sigma1).mT @ _range_factor(sigma2)).sum()


def _mean_and_covariance(
    feature_sum: Tensor, outer_sum: Tensor, count: Union[int, Tensor], ddof: int = 1
) -> tuple[Tensor, Tensor]:
    r"""Mean and covariance of features from their streamed sums, in float64.

    .. math::
        \mu = \frac{1}{n} \sum_j x_j, \qquad
        \Sigma = \frac{1}{n - \mathrm{ddof}} \Big(\sum_j x_j x_j^\top - n \mu \mu^\top\Big)

    ``ddof=1`` (the default) is the unbiased estimate, as TensorFlow's FVD and torchmetrics' FID compute it;
    ``ddof=0`` divides by :math:`n` as StyleGAN-V does. Features far from 0 relative to their spread lose digits
    in the difference above: the sums must be float64.

    Args:
        feature_sum: ``[D]`` sum of the feature vectors.
        outer_sum: ``[D, D]`` sum of their outer products :math:`x_j x_j^\top`.
        count: number :math:`n` of feature vectors summed, an ``int`` or an integer scalar tensor.
        ddof: delta degrees of freedom: the covariance is divided by ``count - ddof``.

    Returns:
        ``(mu, sigma)``: the ``[D]`` mean and the ``[D, D]`` covariance, float64.

    Raises:
        ValueError: if the shapes do not match, or ``count`` is not larger than ``ddof``.

    """
    if not (isinstance(ddof, int) and not isinstance(ddof, bool) and ddof >= 0):
        raise ValueError(f"Argument `ddof` expected to be a non-negative `int` but got {ddof!r}.")
    _check_mean_and_covariance(feature_sum, outer_sum, "feature_sum", "outer_sum")
    if int(count) <= ddof:
        raise ValueError(f"Argument `count` expected to be larger than `ddof={ddof}`, but got {int(count)}.")
    mu = feature_sum.double() / count
    sigma = (outer_sum.double() - count * torch.outer(mu, mu)) / (count - ddof)
    return mu, sigma


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    r"""Squared Fréchet (2-Wasserstein) distance between two Gaussians, the distance of FID and FVD.

    .. math::
        d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
            - 2 \operatorname{tr}\big((\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big)

    computed in float64 whatever the input dtype. The last trace comes from the eigenvalues of
    :math:`L^\top \Sigma_1 L` (:math:`\Sigma_2 = L L^\top`) when both covariances are numerically full rank, and
    otherwise from the nuclear norm of :math:`F_1^\top F_2`, :math:`F_k F_k^\top = \Sigma_k` from ``eigh``, with
    eigenvalues at or below ``D * eps * max|lambda|`` taken as 0: exact to rounding also when a covariance is
    singular (fewer samples than dimensions), where ``scipy.linalg.sqrtm`` loses half the digits. The inputs are
    symmetrised. The exact value is never negative: the rounding error of the difference (about 1e-15 of the
    traces) is clamped at 0.

    Args:
        mu1: ``[D]`` mean of the first set of features.
        sigma1: ``[D, D]`` covariance of the first set, symmetric positive semi-definite.
        mu2: ``[D]`` mean of the second set of features.
        sigma2: ``[D, D]`` covariance of the second set, symmetric positive semi-definite.

    Returns:
        A float64 scalar on the device of the inputs, in the squared units of the features.

    Raises:
        ValueError: if the shapes are not ``[D]`` and ``[D, D]`` with the same ``D``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import frechet_distance
        >>> mu1, sigma1 = torch.zeros(2), torch.eye(2)
        >>> mu2, sigma2 = torch.ones(2), 4 * torch.eye(2)
        >>> frechet_distance(mu1, sigma1, mu2, sigma2)
        tensor(4., dtype=torch.float64)

    """
    _check_mean_and_covariance(mu1, sigma1, "mu1", "sigma1")
    _check_mean_and_covariance(mu2, sigma2, "mu2", "sigma2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"Argument `mu2` expected the dimension D = {mu1.shape[0]} of `mu1`, but got {mu2.shape[0]}."
        )
    mu1, mu2 = mu1.double(), mu2.double()
    sigma1, sigma2 = _symmetric(sigma1.double()), _symmetric(sigma2.double())
    trace_sqrt = _trace_sqrt_product(sigma1, sigma2)
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return value.clamp(min=0)

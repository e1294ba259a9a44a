r"""Kernel distance between two sets of features: the unbiased polynomial-kernel MMD of KID and KVD.

With the kernel :math:`k(x, y) = (\gamma\, x^\top y + c)^d` and two subsets :math:`X, Y` of :math:`m` samples each,

.. math::
    \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \neq j} \big(k(x_i, x_j) + k(y_i, y_j)\big)
        - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j)

an unbiased estimate: it can be negative when the two distributions are close. Its mean and standard deviation over
random subsets are the values torchmetrics' ``KernelInceptionDistance`` reports, drawn the same way.
"""

from typing import Optional

import torch
from torch import Tensor


def _check_kernel_options(subsets: int, subset_size: int, degree: int, gamma: Optional[float], coef: float) -> None:
    if not (isinstance(subsets, int) and not isinstance(subsets, bool) and subsets > 0):
        raise ValueError(f"Argument `subsets` expected to be a positive `int` but got {subsets!r}.")
    # the unbiased estimate divides by m (m - 1)
    if not (isinstance(subset_size, int) and not isinstance(subset_size, bool) and subset_size > 1):
        raise ValueError(f"Argument `subset_size` expected to be an `int` larger than 1 but got {subset_size!r}.")
    if not (isinstance(degree, int) and not isinstance(degree, bool) and degree > 0):
        raise ValueError(f"Argument `degree` expected to be a positive `int` but got {degree!r}.")
    if gamma is not None and not (isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and gamma > 0):
        raise ValueError(f"Argument `gamma` expected to be `None` or a positive `float` but got {gamma!r}.")
    if not (isinstance(coef, (int, float)) and not isinstance(coef, bool)):
        raise ValueError(f"Argument `coef` expected to be a `float` but got {coef!r}.")


def _check_features(features: Tensor, name: str, subset_size: int) -> None:
    if not isinstance(features, Tensor) or features.ndim != 2:
        seen = f"shape {list(features.shape)}" if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"Argument `{name}` expected a tensor of shape [N, D], but got {seen}.")
    if features.shape[0] < subset_size:
        raise ValueError(
            f"Argument `subset_size` expected to be at most the number of samples of `{name}`,"
            f" {features.shape[0]}, but got {subset_size}."
        )


def _polynomial_mmd(x: Tensor, y: Tensor, degree: int, gamma: float, coef: float) -> Tensor:
    """Unbiased MMD^2 of two equal-size sets under the kernel ``(gamma * x @ y.T + coef) ** degree``."""
    m = x.shape[0]
    k_xx = (gamma * (x @ x.mT) + coef) ** degree
    k_yy = (gamma * (y @ y.mT) + coef) ** degree
    k_xy = (gamma * (x @ y.mT) + coef) ** degree
    # the diagonal k(x_i, x_i) is left out of the within-set sums: that is what makes the estimate unbiased
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return within / (m * (m - 1)) - 2 * k_xy.mean()


def kernel_distance(
    real_features: Tensor,
    fake_features: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: Optional[float] = None,
    coef: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor]:
    r"""Kernel distance (KID, KVD): the unbiased polynomial-kernel MMD^2, averaged over random subsets.

    .. math::
        \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \neq j} \big(k(x_i, x_j) + k(y_i, y_j)\big)
            - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j), \qquad k(x, y) = (\gamma\, x^\top y + c)^d

    over ``subsets`` pairs of subsets of ``subset_size`` samples, each drawn without replacement from
    ``real_features`` and from ``fake_features`` (real first, then fake, as torchmetrics'
    ``KernelInceptionDistance`` draws them, so that the same seed gives the same subsets). In float64 whatever
    the input dtype. The estimate is unbiased, so a value can be slightly negative when the sets are alike.

    Args:
        real_features: ``[N, D]`` features of the real samples.
        fake_features: ``[M, D]`` features of the generated samples.
        subsets: number of subset pairs the mean and standard deviation are taken over.
        subset_size: samples per subset, at least 2 and at most ``min(N, M)``.
        degree: degree :math:`d` of the polynomial kernel.
        gamma: scale :math:`\gamma` of the inner product; ``None`` means ``1 / D``.
        coef: constant :math:`c` of the kernel.
        generator: random generator the subsets are drawn with (its device is where the indices are drawn);
            ``None`` uses the global generator.

    Returns:
        ``(mean, std)``: float64 scalars, the mean of the subsets' MMD^2 and their standard deviation (population,
        divided by ``subsets``, as torchmetrics reports it; 0 for one subset).

    Raises:
        ValueError: if a features tensor is not 2-d, their ``D`` differ, ``subset_size`` is below 2 or above the
            number of samples of either set, or an option is out of range.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import kernel_distance
        >>> _ = torch.manual_seed(0)
        >>> real, fake = torch.randn(40, 8), torch.randn(30, 8) + 1.0
        >>> generator = torch.Generator().manual_seed(0)
        >>> kernel_distance(real, fake, subsets=10, subset_size=20, generator=generator)
        (tensor(14.0750, dtype=torch.float64), tensor(2.7895, dtype=torch.float64))

    """
    _check_kernel_options(subsets, subset_size, degree, gamma, coef)
    _check_features(real_features, "real_features", subset_size)
    _check_features(fake_features, "fake_features", subset_size)
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            f"Argument `fake_features` expected the feature dimension D = {real_features.shape[1]} of"
            f" `real_features`, but got {fake_features.shape[1]}."
        )
    real, fake = real_features.double(), fake_features.double()
    gamma = 1.0 / real.shape[1] if gamma is None else gamma
    index_device = generator.device if generator is not None else torch.device("cpu")
    scores = real.new_empty(subsets)
    for s in range(subsets):
        real_index = torch.randperm(real.shape[0], generator=generator, device=index_device)[:subset_size]
        fake_index = torch.randperm(fake.shape[0], generator=generator, device=index_device)[:subset_size]
        scores[s] = _polynomial_mmd(
            real[real_index.to(real.device)], fake[fake_index.to(fake.device)], degree, gamma, coef
        )
    return scores.mean(), scores.std(correction=0)

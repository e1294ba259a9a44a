"""References for the video distances, written with NumPy, SciPy and mpmath rather than the package's code."""

import mpmath
import numpy as np
import scipy.linalg


def frechet_distance_sqrtm(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's formula in float64: the real part of ``scipy.linalg.sqrtm(sigma1 @ sigma2)``."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def mp_mean_and_covariance(samples: np.ndarray, dps: int = 40) -> tuple:
    """Mean and unbiased covariance of float64 samples at ``dps`` digits: of rank ``N - 1`` when ``N <= D``, up to
    rounding at 10**-dps."""
    n, dim = samples.shape
    with mpmath.workdps(dps):
        x = mpmath.matrix(samples.tolist())
        mu = [mpmath.fsum(x[i, a] for i in range(n)) / n for a in range(dim)]
        sigma = mpmath.matrix(dim, dim)
        for a in range(dim):
            for b in range(a, dim):
                products = ((x[i, a] - mu[a]) * (x[i, b] - mu[b]) for i in range(n))
                sigma[a, b] = sigma[b, a] = mpmath.fsum(products) / (n - 1)
    return mu, sigma


def mp_frechet_distance(mu1: list, sigma1: mpmath.matrix, mu2: list, sigma2: mpmath.matrix, dps: int = 40) -> float:
    """The symmetric form ``tr((S1^1/2 S2 S1^1/2)^1/2)`` at ``dps`` digits: rounding noise of a zero eigenvalue is
    about 10**-dps, its square root far below float64's resolution."""
    with mpmath.workdps(dps):
        eigenvalues, vectors = mpmath.eigsy(sigma1)
        root = vectors * mpmath.diag([mpmath.sqrt(max(e, 0)) for e in eigenvalues]) * vectors.T
        inner = root * sigma2 * root
        inner_eigenvalues, _ = mpmath.eigsy((inner + inner.T) / 2)
        trace_sqrt = mpmath.fsum(mpmath.sqrt(max(e, 0)) for e in inner_eigenvalues)
        dim = sigma1.rows
        value = (
            mpmath.fsum((a - b) ** 2 for a, b in zip(mu1, mu2))
            + mpmath.fsum(sigma1[i, i] for i in range(dim))
            + mpmath.fsum(sigma2[i, i] for i in range(dim))
            - 2 * trace_sqrt
        )
        return float(value)


def polynomial_mmd(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma=None, coef: float = 1.0) -> float:
    """Unbiased MMD^2 of two equal-size sets, its three sums written out with explicit off-diagonal masks."""
    m, dim = x.shape
    gamma = 1.0 / dim if gamma is None else gamma

    def kernel(a, b):
        return (gamma * a @ b.T + coef) ** degree

    off_diagonal = ~np.eye(m, dtype=bool)
    within = kernel(x, x)[off_diagonal].sum() + kernel(y, y)[off_diagonal].sum()
    return float(within / (m * (m - 1)) - 2 * kernel(x, y).sum() / m**2)

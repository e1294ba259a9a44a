"""Fréchet and kernel distances against SciPy, mpmath, closed forms, NumPy and torchmetrics' KID."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import poly_mmd

from tests.helpers import video_reference as reference
from torchmetrics_ext.functional.video import frechet_distance, kernel_distance
from torchmetrics_ext.functional.video.frechet import _mean_and_covariance

# Full-rank covariances: SciPy's sqrtm is accurate to about 1e-13 there.
RTOL_SQRTM = 1e-8
# Singular covariances against references exact to 1e-25: the package's result agrees to 1e-15 in our runs.
RTOL_SINGULAR = 1e-10
ATOL_ZERO = 1e-10


def _samples(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) * rng.uniform(0.2, 2.0, dim) + shift


def _statistics(samples: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(samples.mean(axis=0)), torch.from_numpy(np.cov(samples, rowvar=False))


def _orthogonal(dim: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


@pytest.mark.parametrize("dim", [8, 64])
def test_frechet_matches_scipy_on_full_rank_covariances(dim):
    x1, x2 = _samples(4 * dim, dim, seed=dim), _samples(5 * dim, dim, seed=dim + 1, shift=0.3)
    mu1, sigma1 = _statistics(x1)
    mu2, sigma2 = _statistics(x2)
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    expected = reference.frechet_distance_sqrtm(mu1.numpy(), sigma1.numpy(), mu2.numpy(), sigma2.numpy())
    assert value.dtype == torch.float64 and value.shape == ()
    assert math.isclose(float(value), expected, rel_tol=RTOL_SQRTM), (float(value), expected)


@pytest.mark.parametrize(
    ("dim", "n1", "n2"),
    [(8, 5, 100), (8, 100, 4), (8, 5, 4), (12, 3, 3), (16, 6, 40)],
    ids=["first-singular", "second-singular", "both-singular", "rank-2", "d16"],
)
def test_frechet_matches_high_precision_on_singular_covariances(dim, n1, n2):
    """Covariances of fewer samples than dimensions, where sqrtm is off by 1e-9 relative and more."""
    x1, x2 = _samples(n1, dim, seed=n1), _samples(n2, dim, seed=100 + n2, shift=0.5)
    expected = reference.mp_frechet_distance(
        *reference.mp_mean_and_covariance(x1), *reference.mp_mean_and_covariance(x2)
    )
    value = frechet_distance(*_statistics(x1), *_statistics(x2))
    assert math.isclose(float(value), expected, rel_tol=RTOL_SINGULAR), (float(value), expected)


def _spy_svdvals(monkeypatch) -> list:
    calls = []
    svdvals = torch.linalg.svdvals
    monkeypatch.setattr(torch.linalg, "svdvals", lambda a: calls.append(a.shape) or svdvals(a))
    return calls


@pytest.mark.parametrize(("dim", "n1", "n2"), [(8, 40, 60), (16, 20, 17)], ids=["well-conditioned", "n-near-d"])
def test_frechet_full_rank_path_matches_high_precision(dim, n1, n2, monkeypatch):
    """Full-rank covariances take the Cholesky/eigvalsh path (no SVD) and keep float64 accuracy."""
    calls = _spy_svdvals(monkeypatch)
    x1, x2 = _samples(n1, dim, seed=n1), _samples(n2, dim, seed=200 + n2, shift=0.5)
    expected = reference.mp_frechet_distance(
        *reference.mp_mean_and_covariance(x1), *reference.mp_mean_and_covariance(x2)
    )
    value = frechet_distance(*_statistics(x1), *_statistics(x2))
    assert calls == []
    assert math.isclose(float(value), expected, rel_tol=1e-12), (float(value), expected)


@pytest.mark.parametrize(("dim", "n2", "seed"), [(8, 8, 0), (32, 32, 0), (32, 31, 0)])
def test_frechet_singular_covariance_takes_the_exact_path(dim, n2, seed, monkeypatch):
    """A covariance of n <= d samples may pass Cholesky on rounding noise (these three did with our BLAS); the root
    of its noise eigenvalue would then put the result 4e-10 to 8e-10 off. The rank test sends it to the SVD path,
    exact to 1e-15 here."""
    calls = _spy_svdvals(monkeypatch)
    x1, x2 = _samples(3 * dim, dim, seed=seed), _samples(n2, dim, seed=100 + seed + n2)
    (mu1, sigma1), (mu2, sigma2) = _statistics(x1), _statistics(x2)
    expected = reference.mp_frechet_distance(
        *reference.mp_mean_and_covariance(x1), *reference.mp_mean_and_covariance(x2)
    )
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert len(calls) == 1
    assert math.isclose(float(value), expected, rel_tol=1e-13), (float(value), expected)


def test_frechet_ill_conditioned_full_rank_takes_the_fast_path_and_agrees_with_the_closed_form(monkeypatch):
    """Eigenvalues from 1e-10 to 2 (condition 2e10, as real features have): full rank, so no SVD; commuting
    covariances give tr((S1 S2)^1/2) = sum_i sqrt(d1_i d2_i)."""
    calls = _spy_svdvals(monkeypatch)
    dim = 48
    q = _orthogonal(dim, seed=11)
    d1, d2 = np.geomspace(1e-10, 2.0, dim), np.geomspace(2.0, 1e-10, dim) * np.linspace(0.5, 1.5, dim)
    mu1, mu2 = np.zeros(dim), np.full(dim, 0.1)
    expected = np.sum((mu1 - mu2) ** 2) + d1.sum() + d2.sum() - 2 * np.sqrt(d1 * d2).sum()
    value = frechet_distance(*(torch.from_numpy(a) for a in (mu1, q @ np.diag(d1) @ q.T, mu2, q @ np.diag(d2) @ q.T)))
    assert calls == []
    assert math.isclose(float(value), expected, rel_tol=1e-12), (float(value), expected)


def test_frechet_commuting_singular_covariances_closed_form():
    """Covariances with the same eigenvectors: tr((S1 S2)^1/2) = sum_i sqrt(d1_i d2_i), zeros included."""
    dim = 64
    rng = np.random.default_rng(7)
    q = _orthogonal(dim, seed=8)
    d1, d2 = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
    d1[:20] = 0.0  # rank 44
    d2[10:40] = 0.0  # rank 34, null spaces overlapping in 10 directions
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    expected = np.sum((mu1 - mu2) ** 2) + d1.sum() + d2.sum() - 2 * np.sqrt(d1 * d2).sum()
    value = frechet_distance(*(torch.from_numpy(a) for a in (mu1, q @ np.diag(d1) @ q.T, mu2, q @ np.diag(d2) @ q.T)))
    assert math.isclose(float(value), expected, rel_tol=RTOL_SINGULAR), (float(value), expected)


@pytest.mark.parametrize("n", [5, 200], ids=["singular", "full-rank"])
def test_equal_covariances_give_the_squared_mean_distance(n):
    x = _samples(n, 32, seed=n)
    mu1, sigma = _statistics(x)
    mu2 = mu1 + torch.linspace(-1.0, 1.0, 32, dtype=torch.float64)
    value = frechet_distance(mu1, sigma, mu2, sigma)
    assert abs(float(value) - float(((mu1 - mu2) ** 2).sum())) < ATOL_ZERO


@pytest.mark.parametrize(("n", "dim"), [(3, 8), (10, 64), (100, 400), (1000, 64)])
def test_identical_inputs_give_zero(n, dim):
    mu, sigma = _statistics(_samples(n, dim, seed=dim))
    value = float(frechet_distance(mu, sigma, mu, sigma))
    assert 0.0 <= value < ATOL_ZERO, value


def test_never_negative_and_symmetric_on_random_singular_covariances():
    rng = np.random.default_rng(0)
    for case in range(60):
        dim = int(rng.integers(2, 33))
        n1, n2 = (int(rng.integers(2, dim + 2)) for _ in range(2))
        x1 = _samples(n1, dim, seed=2 * case)
        # every third case the second set is the first, slightly moved: a distance close to 0
        x2 = x1 + 1e-6 * rng.standard_normal(x1.shape) if case % 3 == 0 else _samples(n2, dim, seed=2 * case + 1)
        forward = frechet_distance(*_statistics(x1), *_statistics(x2))
        backward = frechet_distance(*_statistics(x2), *_statistics(x1))
        assert float(forward) >= 0.0, (case, float(forward))
        assert math.isclose(float(forward), float(backward), rel_tol=RTOL_SINGULAR, abs_tol=ATOL_ZERO), case


def test_frechet_computes_in_float64_whatever_the_input_dtype():
    mu1, sigma1 = _statistics(_samples(50, 16, seed=1))
    mu2, sigma2 = _statistics(_samples(50, 16, seed=2))
    low = [t.float() for t in (mu1, sigma1, mu2, sigma2)]
    value = frechet_distance(*low)
    assert value.dtype == torch.float64
    assert value == frechet_distance(*(t.double() for t in low))


def test_frechet_symmetrises_the_covariances():
    mu1, sigma1 = _statistics(_samples(50, 16, seed=1))
    mu2, sigma2 = _statistics(_samples(50, 16, seed=2))
    skew = torch.triu(torch.ones(16, 16, dtype=torch.float64), diagonal=1) * 1e-3
    lopsided = sigma1 + skew - skew.mT  # same symmetric part
    assert torch.allclose(frechet_distance(mu1, lopsided, mu2, sigma2), frechet_distance(mu1, sigma1, mu2, sigma2))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((torch.zeros(3, 1), torch.eye(3), torch.zeros(3), torch.eye(3)), "mu1"),
        ((torch.zeros(0), torch.eye(0), torch.zeros(0), torch.eye(0)), "mu1"),
        (([0.0, 0.0], torch.eye(2), torch.zeros(2), torch.eye(2)), "mu1"),
        ((torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3)), "sigma1"),
        ((torch.zeros(3), torch.ones(3), torch.zeros(3), torch.eye(3)), "sigma1"),
        ((torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2)), "mu2"),
        ((torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(3)[:, :2]), "sigma2"),
    ],
)
def test_frechet_bad_shapes_name_the_argument(args, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`"):
        frechet_distance(*args)


@pytest.mark.parametrize("ddof", [0, 1])
def test_mean_and_covariance_from_streamed_sums_match_numpy(ddof):
    x = _samples(97, 12, seed=3, shift=2.0)
    feature_sum = torch.zeros(12, dtype=torch.float64)
    outer_sum = torch.zeros(12, 12, dtype=torch.float64)
    for batch in torch.from_numpy(x).float().split(10):  # float32 batches, as a network gives them
        batch = batch.double()
        feature_sum += batch.sum(dim=0)
        outer_sum += batch.mT @ batch
    x32 = x.astype(np.float32).astype(np.float64)
    mu, sigma = _mean_and_covariance(feature_sum, outer_sum, torch.tensor(97), ddof=ddof)
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), x32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x32, rowvar=False, ddof=ddof), rtol=1e-10, atol=1e-12)
    if ddof == 1:  # the default
        default = _mean_and_covariance(feature_sum, outer_sum, 97)
        assert torch.equal(default[1], sigma)


@pytest.mark.parametrize(
    ("count", "ddof", "name"), [(1, 1, "count"), (0, 0, "count"), (5, -1, "ddof"), (5, 1.0, "ddof")]
)
def test_mean_and_covariance_bad_arguments(count, ddof, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`"):
        _mean_and_covariance(torch.zeros(3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64), count, ddof)


def _reference_subsets(real, fake, subsets, subset_size, seed, **kernel):
    """Draw the subsets again with the same seed, in the documented order, and score them with NumPy."""
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        real_index = torch.randperm(len(real), generator=generator)[:subset_size].numpy()
        fake_index = torch.randperm(len(fake), generator=generator)[:subset_size].numpy()
        scores.append(reference.polynomial_mmd(real[real_index], fake[fake_index], **kernel))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize(
    "kernel", [{}, {"degree": 2, "gamma": 0.5, "coef": 0.0}, {"degree": 1, "coef": 2.0}], ids=["kid", "d2", "d1"]
)
def test_kernel_distance_matches_numpy_on_the_same_subsets(kernel):
    real, fake = _samples(60, 16, seed=1), _samples(45, 16, seed=2, shift=0.2)
    generator = torch.Generator().manual_seed(5)
    mean, std = kernel_distance(torch.from_numpy(real), torch.from_numpy(fake), 7, 30, generator=generator, **kernel)
    expected_mean, expected_std = _reference_subsets(real, fake, 7, 30, seed=5, **kernel)
    assert mean.dtype == std.dtype == torch.float64
    assert math.isclose(float(mean), expected_mean, rel_tol=1e-12)
    assert math.isclose(float(std), expected_std, rel_tol=1e-9)


def test_kernel_distance_on_whole_sets_is_deterministic():
    """One subset of all samples: a permutation, so the MMD of the whole sets, and a std of 0."""
    real, fake = _samples(40, 8, seed=3), _samples(40, 8, seed=4, shift=1.0)
    mean, std = kernel_distance(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), 1, 40)
    real, fake = (a.astype(np.float32).astype(np.float64) for a in (real, fake))  # what the function upcasts
    expected = reference.polynomial_mmd(real, fake)
    assert math.isclose(float(mean), expected, rel_tol=1e-12)
    assert float(std) == 0.0


def test_kernel_distance_matches_torchmetrics_kid():
    """The global generator draws the same subsets as ``KernelInceptionDistance.compute``."""
    real = torch.from_numpy(_samples(50, 16, seed=5))
    fake = torch.from_numpy(_samples(60, 16, seed=6, shift=0.3))
    torch.manual_seed(11)
    scores = []
    for _ in range(5):  # KernelInceptionDistance.compute's loop
        f_real = real[torch.randperm(50)[:25]]
        f_fake = fake[torch.randperm(60)[:25]]
        scores.append(poly_mmd(f_real, f_fake))
    scores = torch.stack(scores)
    torch.manual_seed(11)
    mean, std = kernel_distance(real, fake, subsets=5, subset_size=25)
    assert torch.allclose(mean, scores.mean(), rtol=1e-12, atol=0)
    assert torch.allclose(std, scores.std(unbiased=False), rtol=1e-9, atol=0)


def test_kernel_distance_of_one_distribution_is_near_zero():
    """Unbiased: about 0 for two samples of one distribution, clearly positive for a shifted one.

    Not 0 for a set and itself: the cross term keeps the diagonal k(x_i, x_i) that the within-set terms leave out.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 8, generator=generator), torch.randn(300, 8, generator=generator)
    same, _ = kernel_distance(x, y, subsets=10, subset_size=150, generator=generator)
    shifted, _ = kernel_distance(x, y + 0.5, subsets=10, subset_size=150, generator=generator)
    assert abs(float(same)) < 0.05 * float(shifted)  # 0.025 and 0.94 with this seed
    m = 30
    itself, std = kernel_distance(x[:m], x[:m], subsets=2, subset_size=m, generator=generator)
    k = (x[:m].double() @ x[:m].double().T / 8 + 1) ** 3
    off_diagonal = k.sum() - k.diagonal().sum()
    expected = 2 * off_diagonal / (m * (m - 1)) - 2 * k.sum() / m**2
    assert torch.allclose(itself, expected, rtol=1e-12, atol=0) and float(std) < ATOL_ZERO


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"subset_size": 41}, "subset_size"),  # more than the real samples
        ({"subset_size": 31}, "subset_size"),  # more than the fake samples
        ({"subset_size": 1}, "subset_size"),
        ({"subset_size": True}, "subset_size"),
        ({"subsets": 0}, "subsets"),
        ({"degree": 0}, "degree"),
        ({"gamma": -1.0}, "gamma"),
        ({"coef": None}, "coef"),
    ],
)
def test_kernel_distance_bad_options(kwargs, name):
    real, fake = torch.randn(40, 4), torch.randn(30, 4)
    with pytest.raises(ValueError, match=f"Argument `{name}`"):
        kernel_distance(real, fake, **{"subset_size": 10, **kwargs})


@pytest.mark.parametrize(
    ("real", "fake", "name"),
    [
        (torch.randn(20), torch.randn(20, 4), "real_features"),
        (torch.randn(20, 4), torch.randn(20, 4, 1), "fake_features"),
        (torch.randn(20, 4), torch.randn(20, 5), "fake_features"),
        (np.zeros((20, 4)), torch.randn(20, 4), "real_features"),
    ],
)
def test_kernel_distance_bad_shapes_name_the_argument(real, fake, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`"):
        kernel_distance(real, fake, subsets=2, subset_size=10)

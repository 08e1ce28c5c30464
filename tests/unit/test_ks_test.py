"""udfs/drift/ks_test.py against scipy's ks_2samp, on samples of the sizes the drift checks see."""

import numpy as np
import pytest
from scipy.stats import ks_2samp as scipy_ks_2samp

from udfs.drift.ks_test import EXACT_MAX_PRODUCT, ks_2samp

SCIPY_ALTERNATIVE = {"two-sided": "two-sided", "greater": "less"}  # scipy's 'less': the first sample's CDF lies below


def samples(rng: np.random.Generator, n: int, m: int, shift: float, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    first, second = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, m)
    return (np.round(first, 1), np.round(second, 1)) if ties else (first, second)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
@pytest.mark.parametrize("ties", [False, True])
def test_statistic_and_exact_p_value_equal_scipys_on_small_samples(alternative, ties):
    rng = np.random.default_rng(3)
    for _ in range(60):
        n, m = rng.integers(10, 100, size=2)
        assert n * m <= EXACT_MAX_PRODUCT
        first, second = samples(rng, n, m, rng.choice([0.0, 0.3, 0.8]), ties)
        ours = ks_2samp(first, second, alternative)
        theirs = scipy_ks_2samp(first, second, alternative=SCIPY_ALTERNATIVE[alternative], method="exact")
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_one_sided_asymptotic_p_value_equals_scipys(ties):
    rng = np.random.default_rng(4)
    for _ in range(40):
        n, m = rng.integers(200, 5000, size=2)
        first, second = samples(rng, n, m, rng.choice([0.0, 0.05, 0.2]), ties)
        ours = ks_2samp(first, second, "greater")
        theirs = scipy_ks_2samp(first, second, alternative="less", method="asymp")
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


def test_two_sided_asymptotic_p_value_is_within_3_percent_of_scipys_where_decisions_are_made():
    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(300):
        n, m = rng.integers(100, 5000, size=2)
        first, second = samples(rng, n, m, rng.choice([0.05, 0.1, 0.15]), ties=False)
        ours = ks_2samp(first, second)
        theirs = scipy_ks_2samp(first, second, method="asymp")
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        if 1e-4 <= theirs.pvalue <= 0.5:
            compared += 1
            assert ours.p_value == pytest.approx(theirs.pvalue, rel=0.03)
    assert compared > 100, "too few p-values in the range of decisions: the test's shifts no longer fit its sizes"


def test_empty_sample_is_an_error():
    with pytest.raises(ValueError, match="non-empty"):
        ks_2samp(np.array([]), np.array([1.0]))

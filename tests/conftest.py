"Shared fixtures: small data the tests make themselves (nothing is downloaded)."
import nlmn  # first: it sets the OpenMP wait policy before torch loads (nbs/00_core)
import pytest, torch
from nlmn.data import synthetic_dataset, inject_noise


@pytest.fixture
def noisy_synthetic():
    "300 synthetic images with 30% instance-dependent noise."
    return inject_noise(synthetic_dataset(300, seed=0), 'instance', 0.3, seed=0)

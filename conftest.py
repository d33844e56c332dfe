"""Doctests see ``torch`` and ``rnnkit`` without importing them, as a reader of the docstrings would."""

import pytest
import torch

import rnnkit


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(torch=torch, rnnkit=rnnkit)
    torch.manual_seed(0)

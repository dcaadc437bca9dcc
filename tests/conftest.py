"""Fixtures every test shares."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors on a shared machine: one thread per test process avoids oversubscription
    (pytest-xdist runs one process per core)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

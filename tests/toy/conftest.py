"""Toy tests run torch on one thread: the tensors are tiny and intra-op threads only add
synchronisation (see ``saesite.toy.site.build_toy_site``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

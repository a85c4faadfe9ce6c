import os

import pytest
import torch

# The tests run many small tensor operations, for which intra-op threads only add synchronization; on a
# loaded 2-core machine that overhead dominates (measured: 8 s with one thread against 67 s with two for
# the spin-glass tests). Subprocesses started by tests inherit the setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Each test starts from the same global RNG state and default dtype."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    yield
    torch.set_default_dtype(default)

"""Shared fixtures: CPU-only, offline, quiet plotting; a small trained LeNet run reused across tests."""
import os

os.environ.setdefault("CNNKIT_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A LeNet-5 trained briefly on digits (a few seconds): for eval/predict/explain tests."""
    import cnnkit

    out = tmp_path_factory.mktemp("runs") / "digits-lenet5"
    return cnnkit.train(data="digits", model="lenet5", epochs=4, out=str(out), quiet=True)

"""Shared test set-up: offline settings and a private SEASONED_HOME per test session."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _seasoned_home(tmp_path_factory):
    """Nothing a test writes lands in the user's ~/.seasoned."""
    home = tmp_path_factory.mktemp("seasoned-home")
    old = os.environ.get("SEASONED_HOME")
    os.environ["SEASONED_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SEASONED_HOME", None)
    else:
        os.environ["SEASONED_HOME"] = old

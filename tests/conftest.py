"""Fixtures shared by the test suite.

The local Hub server (``tests/hub_server.py``) is started here, at import, because huggingface_hub, transformers
and datasets read ``HF_ENDPOINT`` and the cache paths once, when they are imported, and pytest imports this file
before any test module. Every test therefore talks to the local server, never to huggingface.co, and writes to a
throw-away ``HF_HOME``, never to the developer's cache; subprocesses inherit both through the environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest

from hub_server import HubServer

if "huggingface_hub" in sys.modules:  # a plugin imported it first: its constants point elsewhere already
    raise RuntimeError("huggingface_hub was imported before tests/conftest.py could set HF_ENDPOINT; "
                       "run pytest without the plugin that imports it (-p no:NAME)")

_HUB = HubServer().start()
_HF_HOME = tempfile.mkdtemp(prefix="hf-emms-tests-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
atexit.register(_HUB.stop)
# A developer's own settings (a token, offline mode, another cache) must not change what the tests see.
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
              "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "HF_XET_CACHE",
              "HF_MODULES_CACHE", "HF_EVALUATE_CACHE", "HF_EVALUATE_OFFLINE", "HF_EMMS_CACHE"):
    os.environ.pop(_name, None)
# Uploads use the plain git-LFS protocol, which the local server speaks, instead of Xet storage, which it does not.
os.environ.update(HF_ENDPOINT=_HUB.url, HF_HOME=_HF_HOME, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
                  HF_EMMS_CACHE=os.path.join(_HF_HOME, "hf_emms"))


@pytest.fixture
def hub_server() -> HubServer:
    """The local Hub at ``HF_ENDPOINT``, empty: no repos, requests, faults or commits from earlier tests."""
    _HUB.reset()
    yield _HUB
    _HUB.reset()


@pytest.fixture
def hf_cache(tmp_path_factory) -> str:
    """A fresh, empty Hugging Face cache folder for one test (pass it as ``cache_dir=``)."""
    return str(tmp_path_factory.mktemp("hf-cache"))

import pytest

from sidecar.testing import SidecarProcess


@pytest.fixture(scope="session")
def user_modules(tmp_path_factory):
    """A folder of the user's own modules, added to the workers' sys.path via `paths`."""
    folder = tmp_path_factory.mktemp("user_scripts")
    (folder / "usermod.py").write_text(
        "import os\n"
        "IMPORTS = int(os.environ.get('X', '0')) + 1\n"
        "def imports():\n    return IMPORTS, os.getpid()\n"
        "def add(a, b=0, *, scale=1):\n    return (a + b) * scale\n"
        "class Tools:\n    @staticmethod\n    def upper(s):\n        return s.upper()\n"
        "def fail():\n    raise ValueError('bad input from usermod')\n"
        "NOT_CALLABLE = 3\n")
    return folder


@pytest.fixture(scope="session")
def sidecar(user_modules, tmp_path_factory):
    """A shared sidecar with 2 workers; tests that break it on purpose start their own."""
    # The crash matrix crashes workers on purpose, again and again: with the breaker on it
    # would (rightly) open. The breaker has its own tests (tests/*/test_breaker*, fallback).
    proc = SidecarProcess({"pool": {"initial-size": 2, "min-size": 1, "max-size": 4},
                           "worker": {"paths": [str(user_modules)], "max-output": "1KiB",
                                      "kill-grace": "200ms"},
                           "circuit-breaker": {"enabled": False},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("sidecar")))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def client(sidecar):
    return sidecar.client(timeout=10.0)

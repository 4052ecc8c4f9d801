"""The installable clients, built as a user builds them, drive the real service over HTTP.

``scripts/build_clients.sh`` generates the Python package from the committed ``openapi.json`` and
builds its wheel, and builds the TypeScript package (``npm ci && npm run build``). The wheel is
installed into a fresh virtualenv, and that virtualenv's Python, not the test's, routes against a
live demo service: a wheel missing a module or a dependency fails here. The TypeScript package's
compiled examples run under Node. The usage samples of docs/api.md are the code that runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds both packages, ~25 s on the 2-core CI box

ROOT = Path(__file__).resolve().parent.parent
PYTHON_DIR = ROOT / "clients" / "python"
TS_DIR = ROOT / "clients" / "typescript"
API_DOC = ROOT / "docs" / "api.md"
DOC_URL = "http://127.0.0.1:8000"
COMMAND_TIMEOUT = 300


def _run(args: list[str], cwd: Path = ROOT) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _service_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _doc_sample(name: str) -> str:
    """The fenced block after ``<!-- sample:NAME -->`` in docs/api.md."""
    pattern = rf"<!-- sample:{name} -->\s*```[a-z]*\n(.*?)\n```"
    found = re.search(pattern, API_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert found, f"docs/api.md has no sample:{name} block"
    return found[1]


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed: the Python client cannot be built")
    return uv


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv's python with the built wheel (and only its dependencies) installed."""
    uv = _uv()
    _run(["bash", "scripts/build_clients.sh", "python"])
    wheels = sorted((PYTHON_DIR / "dist").glob("*.whl"))
    assert [w.name for w in wheels] == [f"tablerouter_client-{_service_version()}-py3-none-any.whl"]
    venv = tmp_path_factory.mktemp("client-venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "--quiet", "--python", str(python), str(wheels[0])]
    # The dependencies (httpx, attrs) come from uv's cache, filled when the project's own
    # environment was synced; only if the cache lacks them does the index serve them, as pip would.
    offline = subprocess.run(
        [*install, "--offline"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if offline.returncode != 0:
        _run(install)
    return python


@pytest.fixture(scope="module")
def ts_dist() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the TypeScript client cannot be built")
    _run(["bash", "scripts/build_clients.sh", "typescript"])
    return TS_DIR / "dist"


def test_python_wheel_installs_and_drives_the_service(demo_service: str, client_python: Path) -> None:
    # The installed package is the wheel's, at the service's version, not a path into the repo.
    where = _run(
        [
            str(client_python),
            "-c",
            "import tablerouter_client as m, importlib.metadata as md; "
            "print(md.version('tablerouter-client')); print(m.__file__)",
        ]
    )
    version, module_file = where.split()
    assert version == _service_version()
    assert Path(module_file).is_relative_to(client_python.parent.parent)
    # A route, the sources and a page of tables, typed problems (404, 422) and a batch.
    assert _run([str(client_python), str(PYTHON_DIR / "examples" / "route.py"), demo_service]) == "ok\n"


def test_python_docs_sample_routes(demo_service: str, client_python: Path) -> None:
    sample = _doc_sample("python-client")
    assert DOC_URL in sample
    out = _run([str(client_python), "-c", sample.replace(DOC_URL, demo_service)])
    tables = json.loads(out.replace("'", '"'))
    assert tables
    assert all(isinstance(name, str) and name for name in tables)


def test_typescript_package_builds_and_drives_the_service(demo_service: str, ts_dist: Path) -> None:
    package = json.loads((TS_DIR / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((TS_DIR / "package-lock.json").read_text(encoding="utf-8"))
    assert package["version"] == lock["version"] == _service_version()
    # The package ships its compiled wrapper and the generated types it names.
    for built in ["src/index.js", "src/index.d.ts", "src/generated/schema.d.ts"]:
        assert (ts_dist / built).is_file(), built
    out = json.loads(_run(["node", str(ts_dist / "examples" / "route.js"), demo_service], cwd=TS_DIR))
    assert out["judge_kind"] == "lexical"
    assert out["tables"]
    assert all(isinstance(name, str) for name in out["tables"])
    assert out["problem"] == {"status": 404, "type": "https://tablerouter.dev/problems/not-found"}


def test_typescript_docs_sample_routes(demo_service: str, ts_dist: Path) -> None:
    quickstart = (TS_DIR / "examples" / "quickstart.ts").read_text(encoding="utf-8")
    sample = _doc_sample("typescript-client")
    assert sample.strip() == quickstart.strip(), "docs/api.md's sample is not examples/quickstart.ts"
    out = _run(["node", str(ts_dist / "examples" / "quickstart.js"), demo_service], cwd=TS_DIR)
    tables = json.loads(out.replace("'", '"'))
    assert tables
    assert all(isinstance(name, str) and name for name in tables)

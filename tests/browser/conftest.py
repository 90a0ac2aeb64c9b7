"""A real JupyterLab server and headless Debian Chromium driven by Playwright (Python API).

The lab runs in a throwaway root folder with its own config, settings and data dirs, and finds
the extension through JUPYTER_PATH (a link to jupyter_di/labextension), so the test sees the
build of this working tree whatever is installed in the environment.  Build it first with
``.ci/install_frontend.sh``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILT = REPO / "jupyter_di" / "labextension"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def open_url(self, path: str) -> str:
        """The notebook in a workspace of its own: the default one would restore every notebook an
        earlier test opened (all share this server), and one of those may be current for a moment,
        so the side panel and `.jp-NotebookPanel:not(.lm-mod-hidden)` would show another notebook."""
        workspace = re.sub(r"[^A-Za-z0-9_-]", "-", path)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"


def _jupyter_path(data: Path) -> list[str]:
    """The lab's data folders: ours (this tree's extension build) first, then the environment's.

    Why: in a virtualenv made with --system-site-packages the server imports ipywidgets from the
    base Python but looks for lab extensions only under the venv's share/jupyter, so without the
    base prefix's folder the widget manager is missing and no panel renders ("Exception opening
    new comm" in the browser console).
    """
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix])
    return [str(data), *(str(Path(prefix) / "share" / "jupyter") for prefix in prefixes)]


def _require_widget_manager(jupyter_path: list[str]) -> None:
    if not any((Path(d) / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager").is_dir() for d in jupyter_path):
        pytest.fail(f"the ipywidgets lab extension (jupyterlab_widgets) is in none of {jupyter_path}: panels cannot render")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """Silence the news/update toast: it can cover the cells the test clicks."""
    target = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not (BUILT / "package.json").exists():
        pytest.fail("the JupyterLab extension is not built: run .ci/install_frontend.sh first")
    base = tmp_path_factory.mktemp("lab")
    root, data, settings = base / "root", base / "data", base / "settings"
    root.mkdir()
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "jupyter-di").symlink_to(BUILT, target_is_directory=True)
    _write_settings(settings)
    jupyter_path = _jupyter_path(data)
    _require_widget_manager(jupyter_path)
    env = {
        **os.environ,
        "JUPYTER_PATH": os.pathsep.join(jupyter_path),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    token, port = secrets.token_hex(16), _free_port()
    log = base / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--IdentityProvider.token={token}",
                "--port",
                str(port),
                "--ip",
                "127.0.0.1",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.port_retries=0",
                "--allow-root",
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield Lab(url=url, token=token, root=root, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    (ARTIFACTS / f"{request.node.name}.console.txt").write_text("\n".join(console))
    context.close()

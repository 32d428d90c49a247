"""A real Jupyter server for the browser tests: JupyterLab and Notebook 7 on loopback.

Everything it writes (config, settings, workspaces, runtime files, a kernelspec for this
interpreter) lives in one temporary directory, so the tests neither read nor change the
user's Jupyter setup, and the kernel is always this venv's Python with llmtrace_nb.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat

MIME_TYPE = "application/vnd.llmtrace.trace+json"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LabServer:
    """``jupyter lab`` in a subprocess, with a random token and a throwaway home."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "notebooks"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        #: the local store its kernels write to (they learn their notebook from the server)
        self.store_path = base / "spans.sqlite"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        dirs = {name: self.base / name for name in
                ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # The news prompt would cover part of the page in screenshots.
        labconfig = dirs["config"] / "labconfig"
        labconfig.mkdir(exist_ok=True)
        (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {
            "@jupyterlab/apputils-extension:announcements": True}}))
        # A kernelspec named like the default, so notebooks run on this very interpreter.
        kernel = dirs["data"] / "kernels" / "python3"
        kernel.mkdir(parents=True, exist_ok=True)
        (kernel / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (llmtrace_nb e2e)", "language": "python"}))
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            # the kernelspec above before the venv's own "python3"
            "JUPYTER_PREFER_ENV_PATH": "0",
            # no OTLP forwarding from the kernel, whatever the developer's shell has
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
            "LLMTRACE_NB_STORE": str(self.store_path),
        })
        return env

    def start(self, timeout: float = 90) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "jupyterlab",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", "--ServerApp.ip=127.0.0.1",
               "--no-browser", "--allow-root", f"--ServerApp.root_dir={self.root}",
               # window.jupyterapp, to run commands (run all, save, change theme)
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env=self._env(), cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not start within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() \
            else ""

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def lab_url(self, notebook: str, workspace: str) -> str:
        """A notebook in its own JupyterLab workspace, so tests do not restore each
        other's open tabs."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def notebook7_url(self, notebook: str) -> str:
        return f"{self.url}/notebooks/{notebook}?token={self.token}"

    def write_notebook(self, name: str, cells: list[str],
                       outputs: dict[int, list[dict[str, Any]]] | None = None) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        for i, source in enumerate(cells):
            cell = nbformat.v4.new_code_cell(source)
            if outputs and i in outputs:
                cell.outputs = [nbformat.from_dict(o) for o in outputs[i]]
                cell.execution_count = i + 1
            nb.cells.append(cell)
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def read_notebook(self, name: str) -> Any:
        return nbformat.read(self.root / name, as_version=4)


def trace_output(doc: dict[str, Any]) -> dict[str, Any]:
    """The display_data output %%trace would have saved for this document."""
    from llmtrace_nb.views import bundle

    data = bundle(doc)
    return {"output_type": "display_data", "data": data, "metadata": {}}


# -- driving the page (Playwright) ------------------------------------------------------


def open_in_lab(page: Any, lab: LabServer, notebook: str, workspace: str) -> None:
    page.goto(lab.lab_url(notebook, workspace))
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                           timeout=60_000)
    # a wide notebook for the screenshots: no file browser
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")


def command(page: Any, name: str, args: dict[str, Any] | None = None, wait: bool = True) -> Any:
    """Run a JupyterLab command; with wait=False, do not wait for it to finish (running
    cells finishes when the cells do)."""
    script = ("([c, a]) => window.jupyterapp.commands.execute(c, a)" if wait else
              "([c, a]) => { window.jupyterapp.commands.execute(c, a); }")
    return page.evaluate(script, [name, args or {}])


def wait_for_kernel(page: Any) -> None:
    """Until the notebook's kernel is up: running cells before that asks for a kernel."""
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        const kernel = w && w.sessionContext && w.sessionContext.session
            && w.sessionContext.session.kernel;
        return kernel && kernel.status === 'idle';
    }""", timeout=60_000)


def dismiss_kernel_dialogs(page: Any, quiet_ms: int = 2_000) -> None:
    """Answer what JupyterLab asks when it cannot start a kernel ("Error Starting
    Kernel", then "Select Kernel"): no kernel. Returns once no dialog came for quiet_ms."""
    dialog = page.locator(".jp-Dialog")
    while True:
        try:
            dialog.first.wait_for(timeout=quiet_ms)
        except Exception:
            return
        buttons = dialog.first.locator("button")
        no_kernel = buttons.filter(has_text="No Kernel")
        (no_kernel if no_kernel.count() else buttons.filter(has_text="Ok")).first.click()
        page.wait_for_timeout(200)


def kernel_value(page: Any, expression: str) -> str:
    """The text/plain of a Python expression, evaluated in the notebook's kernel."""
    return page.evaluate("""async (expression) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const reply = await kernel.requestExecute({code: '', silent: true,
            user_expressions: {value: expression}}).done;
        const value = reply.content.user_expressions.value;
        if (value.status !== 'ok') throw new Error(value.ename + ': ' + value.evalue);
        return value.data['text/plain'];
    }""", expression)


def save_shot(locator: Any, name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    locator.screenshot(path=str(path))
    return str(path)

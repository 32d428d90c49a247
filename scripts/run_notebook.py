"""Execute a notebook headless, write it and its HTML export, optionally print a summary.

Used by `make demo` (and by the notebook tests through the same function), so what a
user sees from `make demo` is exactly what CI checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

SUMMARY_TAG = "summary"
KERNEL_NAME = "llmtrace-nb-run"


def ensure_kernel() -> str:
    """A kernel spec for *this* interpreter, first on JUPYTER_PATH.

    Notebooks name the kernel "python3", which on a given machine may be any Python
    (a user-wide or system-wide spec wins over the venv's own). Running them on a spec
    written for sys.executable makes them use the environment that runs this script.
    """
    root = Path(tempfile.gettempdir()) / f"llmtrace-nb-jupyter-{os.getuid()}"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (llmtrace_nb)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), paths) if p)
    return KERNEL_NAME


def execute(path: Path, kernel: str | None = None, timeout: int = 300,
            allow_errors: bool = False) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel or ensure_kernel(),
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def write_outputs(nb: nbformat.NotebookNode, source: Path, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = out_dir / source.name
    nbformat.write(nb, ipynb)
    html, _ = HTMLExporter().from_notebook_node(nb)
    html_path = ipynb.with_suffix(".html")
    html_path.write_text(html, encoding="utf-8")
    return ipynb, html_path


def tagged_text(nb: nbformat.NotebookNode, tag: str) -> str:
    """The text/plain results of the cells tagged ``tag``."""
    texts = []
    for cell in nb.cells:
        if tag in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                text = output.get("data", {}).get("text/plain") or output.get("text")
                if text:
                    texts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--summary", action="store_true",
                        help="print the LLM calls, tokens, cost and latency per model of the "
                             "executed notebook's traces")
    args = parser.parse_args(argv)
    nb = execute(args.notebook, args.kernel)
    ipynb, html = write_outputs(nb, args.notebook, args.out)
    if args.summary:
        # read back from the saved notebook, as `python -m llmtrace_nb summary` does: what
        # is printed is what the file keeps
        from llmtrace_nb.__main__ import summary

        if summary([str(ipynb)]) != 0:
            return 1
        print()
    print(f"executed notebook: {ipynb}")
    print(f"as HTML:           {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Execute a notebook headless, write it and its HTML export, optionally print a summary.

Used by `make demo` (and by the notebook tests through the same function), so what a
user sees from `make demo` is exactly what CI checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

SUMMARY_TAG = "summary"


def execute(path: Path, kernel: str | None = None, timeout: int = 300) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel or nb.metadata.get("kernelspec", {}).get("name", "python3"),
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
                        help=f"print the output of the cells tagged {SUMMARY_TAG!r}")
    args = parser.parse_args(argv)
    nb = execute(args.notebook, args.kernel)
    ipynb, html = write_outputs(nb, args.notebook, args.out)
    print(f"executed {args.notebook} -> {ipynb}, {html}")
    if args.summary:
        text = tagged_text(nb, SUMMARY_TAG)
        if not text:
            print(f"no output in cells tagged {SUMMARY_TAG!r}", file=sys.stderr)
            return 1
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

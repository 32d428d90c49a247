"""Bytes a traced cell adds to the saved notebook, per LLM call.

A notebook is executed for real (nbclient, a fresh ipykernel, the real ``openai`` client
against the demo server on loopback): cells of 1, 10 and 100 calls to
``chat.completions.create``, content captured, once with ``%llmtrace output compact``
(the default) and once with ``full``. A cell's figure is the JSON nbformat writes for its
outputs (the trace document, the HTML twin and the text summary), divided by its calls.

    python -m benchmarks --case saved-output
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SIZES = (1, 10, 100)
OUTPUTS = ("compact", "full")
TARGET_BYTES = 1_500  # per call, for a 100-call cell, compact


def _notebook() -> nbformat.NotebookNode:
    sources = ["%load_ext llmtrace_nb\nimport openai\nfrom llmtrace_nb import demo\n"
               "client = openai.OpenAI(base_url=demo.start().base_url, api_key='sk-demo')"]
    for output in OUTPUTS:
        sources.append(f"%llmtrace output {output}")
        sources += [f"%%trace {output} {n}\nfor i in range({n}):\n"
                    "    client.chat.completions.create(model='gpt-4o-mini', messages=[\n"
                    "        {'role': 'user', 'content': f'question {i} about France'}])"
                    for n in SIZES]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def measure() -> dict[tuple[str, int], float]:
    """(output, calls) → bytes per call saved."""
    sys.path.insert(0, str(HERE.parent / "scripts"))
    from run_notebook import execute  # scripts/ is not a package

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "saved-output.ipynb"
        nbformat.write(_notebook(), path)
        done = execute(path)
    sizes: dict[tuple[str, int], float] = {}
    for cell in done.cells:
        first = cell.source.splitlines()[0]
        if first.startswith("%%trace "):
            _, output, calls = first.split()
            saved = len(json.dumps(cell.outputs, ensure_ascii=False).encode("utf-8"))
            sizes[(output, int(calls))] = saved / int(calls)
    return sizes

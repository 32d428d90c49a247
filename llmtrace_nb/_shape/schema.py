"""Shape: the trace document's schema, ``trace_document.schema.json`` (JSON Schema 2020-12).

It is the one description of the document ``document.py`` builds: the tests validate
built documents against it here, and the renderer's TypeScript types are generated from
it (``npm run build:types`` writes ``labextension/src/document.generated.ts``);
tests/test_document_schema.py holds both to it.

``jsonschema`` is a test dependency only (the ``test`` extra), imported when validating:
the package never reads a trace document back (views render the one just built, and
saved notebooks are read by the JupyterLab renderer, which parses leniently), so no
runtime path needs validation.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

SCHEMA_FILE = "trace_document.schema.json"


@cache
def schema() -> dict[str, Any]:
    """The schema, as parsed JSON (cached: do not modify it)."""
    text = files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def problems(doc: Any) -> list[str]:
    """Where ``doc`` breaks the schema, one line each (``path: message``); empty if valid."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise ImportError("validating a trace document needs jsonschema: "
                          "pip install 'llmtrace_nb[test]'") from e
    validator = Draft202012Validator(schema())
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}"
            for e in found]


def validate(doc: Any) -> None:
    """Raise ValueError naming every place ``doc`` breaks the schema."""
    found = problems(doc)
    if found:
        raise ValueError("not a valid trace document:\n" + "\n".join(found))

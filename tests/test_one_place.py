"""One place for each fact (issue 16): the ``llmtrace.*`` keys are spelled only in
_capture/keys.py, the priced kinds and the call kinds written only in _read/semconv.py,
the value helpers defined once, and every GenAI attribute name that
opentelemetry-semantic-conventions has is taken from it (through _capture/genai.py, the
one module that imports its ``_incubating`` names), never retyped. The checks read the
package's source with ast, so they see what a grep would, without comments and prose."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

from llmtrace_nb._capture import genai, keys
from llmtrace_nb._read import semconv

PACKAGE = Path(__file__).resolve().parent.parent / "llmtrace_nb"
SOURCES = {p.relative_to(PACKAGE).as_posix(): ast.parse(p.read_text(encoding="utf-8"))
           for p in sorted(PACKAGE.rglob("*.py"))}
KEYS_HOME = "_capture/keys.py"
KINDS_HOME = "_read/semconv.py"
GENAI_HOME = "_capture/genai.py"
#: the package's GenAI names, by value
PACKAGE_GENAI = {getattr(gen_ai_attributes, n): n for n in dir(gen_ai_attributes)
                 if n.startswith("GEN_AI_") and isinstance(getattr(gen_ai_attributes, n), str)}


def strings(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants: prose may name a key."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literals(home: str, test) -> list[str]:  # type: ignore[no-untyped-def]
    """``file:line 'value'`` of each non-docstring string outside ``home`` passing ``test``."""
    out = []
    for path, tree in SOURCES.items():
        if path == home:
            continue
        prose = docstrings(tree)
        out += [f"{path}:{c.lineno} {c.value!r}" for c in strings(tree)
                if id(c) not in prose and test(c.value)]
    return out


def is_key(text: str) -> bool:
    """One of our keys, or a prefix of them; text with a space in it is prose (a help
    text naming ``llmtrace.tag.KEY``), not a key."""
    return text.startswith(keys.PREFIX) and not any(c.isspace() for c in text)


def test_llmtrace_keys_are_spelled_in_one_module() -> None:
    spelled = literals(KEYS_HOME, is_key)
    assert not spelled, f"use llmtrace_nb._capture.keys, not a literal: {spelled}"


def test_the_keys_module_holds_every_key() -> None:
    values = [v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str)]
    assert all(v.startswith(keys.PREFIX) for v in values)
    assert len(set(values)) == len(values)


KIND_SETS = {frozenset(semconv.PRICED_KINDS): "PRICED_KINDS",
             frozenset(semconv.CALL_KINDS): "CALL_KINDS"}


def kind_literals() -> list[str]:
    """Tuples, lists and sets of strings that are the priced or call kinds, outside home."""
    out = []
    for path, tree in SOURCES.items():
        if path == KINDS_HOME:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str)
                    for e in node.elts):
                found = frozenset(e.value for e in node.elts)  # type: ignore[attr-defined]
                if found in KIND_SETS:
                    out.append(f"{path}:{node.lineno} {KIND_SETS[found]}")
    return out


def test_priced_and_call_kinds_are_written_in_one_module() -> None:
    assert not kind_literals(), f"import them from _read/semconv.py: {kind_literals()}"
    assert set(semconv.PRICED_KINDS) < set(semconv.CALL_KINDS) <= set(semconv.KINDS)


#: helpers that had copies, and the module that defines each now
ONCE = {**{name: "_read/values.py" for name in (
    "as_text", "json_text", "is_missing", "to_float", "to_count", "to_bool", "to_text",
    "to_reasons")}, "lighten": "views/html.py"}
#: the names the copies had
GONE = ("_as_text", "_lighten", "number", "_known")


def test_value_helpers_are_defined_once() -> None:
    where: dict[str, list[str]] = {}
    for path, tree in SOURCES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in (*ONCE, *GONE):
                where.setdefault(node.name, []).append(path)
    assert {name: where.get(name) for name in ONCE} == {
        name: [path] for name, path in ONCE.items()}
    assert not any(name in where for name in GONE), {n: where[n] for n in GONE if n in where}


def test_our_genai_names_are_the_packages() -> None:
    ours = {n: getattr(genai, n) for n in genai.__all__}
    from_package = {n: v for n, v in ours.items() if n.startswith("GEN_AI_")}
    assert from_package, "genai.py exports the package's names"
    for name, value in from_package.items():
        assert getattr(gen_ai_attributes, name) == value, name
    # what genai.py adds of its own is a name the package does not have
    for name, value in ours.items():
        if name not in from_package:
            assert value not in PACKAGE_GENAI, (name, PACKAGE_GENAI.get(value))


def test_no_genai_name_the_package_has_is_retyped() -> None:
    """A ``"gen_ai.…"`` literal equal to a name of the package should be its constant;
    this also fails when a newer release of the package adds a name we spell ourselves."""
    retyped = literals(GENAI_HOME, lambda s: s in PACKAGE_GENAI)
    assert not retyped, "take these from _capture/genai.py: " + ", ".join(
        f"{r} ({PACKAGE_GENAI[ast.literal_eval(r.split(' ', 1)[1])]})" for r in retyped)


def test_only_genai_imports_the_incubating_names() -> None:
    importers = []
    for path, tree in SOURCES.items():
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any("semconv._incubating" in n for n in names):
                importers.append(path)
    assert importers == [GENAI_HOME]


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "request_model",
                                   "provider", "reasoning_tokens"])
def test_dialect_tables_lead_with_the_conventions(field: str) -> None:
    """The tables keep their shape: the current convention's name first, from the package."""
    assert semconv.FIELD_KEYS[field][0] in PACKAGE_GENAI


def test_the_checks_can_fail() -> None:
    """Each check sees what it looks for: a key literal, a kinds tuple, a retyped name."""
    tree = ast.parse('K = "llmtrace.kind"\nP = ("embedding", "llm")\nG = "gen_ai.request.model"')
    assert [c.value for c in strings(tree) if is_key(c.value)] == ["llmtrace.kind"]
    assert any(isinstance(n, ast.Tuple) and frozenset(
        e.value for e in n.elts) in KIND_SETS for n in ast.walk(tree))  # type: ignore[attr-defined]
    assert "gen_ai.request.model" in PACKAGE_GENAI

"""Every public name has a numpy-style docstring true to its signature (issue 16): a
Parameters section naming each parameter when it takes any, a Returns section when it
returns something, Examples on every top-level function and class; and no public
function or method is typed ``Any`` as a return.

Public: what ``llmtrace_nb`` exports (and its IPython hooks), the chart functions README
shows, what ``llmtrace_nb.demo`` exports, the public methods and properties of those
classes, and the classes public functions return (``explore()``'s ``Explorer``,
``TraceView.widget()``'s ``TraceWidget``).
"""

from __future__ import annotations

import doctest
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest

import llmtrace_nb
import llmtrace_nb.demo
from llmtrace_nb.views import charts, widgets

README = Path(__file__).resolve().parent.parent / "README.md"

#: names imported under ``if TYPE_CHECKING:`` in the public modules, to resolve hints
TYPE_CHECKING_NAMES = {"Explorer": widgets.Explorer, "Source": widgets.Source,
                       "TraceWidget": widgets.TraceWidget, "go": go}


def readme_charts() -> list[str]:
    names = re.findall(r"^charts\.(\w+)\(", README.read_text(encoding="utf-8"), re.M)
    assert names, "README shows no charts.NAME(...) lines any more"
    return list(dict.fromkeys(names))


def top_level() -> dict[str, Any]:
    found: dict[str, Any] = {}
    root = [n for n in llmtrace_nb.__all__ if n != "__version__"]
    for name in [*root, "load_ipython_extension", "unload_ipython_extension"]:
        found[f"llmtrace_nb.{name}"] = getattr(llmtrace_nb, name)
    for name in readme_charts():
        found[f"llmtrace_nb.views.charts.{name}"] = getattr(charts, name)
    for name in llmtrace_nb.demo.__all__:
        obj = getattr(llmtrace_nb.demo, name)
        if callable(obj):
            found[f"llmtrace_nb.demo.{name}"] = obj
    return found


def return_hint(obj: Callable[..., Any]) -> Any:
    """The evaluated return annotation (``inspect.Signature.empty`` if there is none)."""
    func = inspect.unwrap(obj)
    hint = inspect.get_annotations(func).get("return", inspect.Signature.empty)
    if isinstance(hint, str):
        module = inspect.getmodule(func)
        namespace = {**vars(module), **TYPE_CHECKING_NAMES} if module else TYPE_CHECKING_NAMES
        hint = eval(hint, namespace)
    return type(None) if hint is None else hint


def ours(cls: type) -> bool:
    return cls.__module__.startswith("llmtrace_nb")


def members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties the package defines on ``cls`` (or its bases)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not ours(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(value, (property, types.FunctionType, staticmethod, classmethod)):
                yield name, value


def returned_classes(func: Callable[..., Any]) -> list[type]:
    hint = return_hint(func)
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                     types.UnionType) else (hint,)
    return [c for c in options if isinstance(c, type) and ours(c)]


def public() -> dict[str, tuple[Any, bool]]:
    """Qualified name -> (object, whether it is top level)."""
    found = {name: (obj, True) for name, obj in top_level().items()}
    classes = [obj for obj, _ in found.values() if isinstance(obj, type)]
    functions = [obj for obj, _ in found.values() if not isinstance(obj, type)]
    for func in functions:
        classes.extend(returned_classes(func))
    done: set[type] = set()
    while classes:
        cls = classes.pop()
        if cls in done:
            continue
        done.add(cls)
        for name, value in members(cls):
            found[f"{cls.__module__}.{cls.__qualname__}.{name}"] = (value, False)
            if isinstance(value, types.FunctionType):
                classes.extend(returned_classes(value))
    return found


PUBLIC = public()


def section(doc: str, title: str) -> str | None:
    """The body of a numpy-style section, ``None`` if there is none."""
    match = re.search(rf"^\s*{title}\n\s*-{{{len(title)}}}\n(.*?)(?=^\s*\w[\w ]*\n\s*-{{3,}}\n|\Z)",
                      doc, re.M | re.S)
    return match.group(1) if match else None


def parameters(obj: Any) -> list[inspect.Parameter]:
    target = obj.__init__ if isinstance(obj, type) else obj
    if isinstance(obj, type) and target is object.__init__:
        return []
    params = list(inspect.signature(target).parameters.values())
    if params and params[0].name in ("self", "cls") and (
            isinstance(obj, type) or "." in obj.__qualname__):
        params = params[1:]
    return params


def test_the_public_surface_is_found() -> None:
    names = set(PUBLIC)
    for expected in ("llmtrace_nb.enable", "llmtrace_nb.explore", "llmtrace_nb.span",
                     "llmtrace_nb.views.charts.waterfall", "llmtrace_nb.views.charts.cost_by",
                     "llmtrace_nb.demo.DemoServer", "llmtrace_nb.demo.start",
                     "llmtrace_nb.views.TraceView.widget",
                     "llmtrace_nb.views.widgets.Explorer.refresh",
                     "llmtrace_nb.views.widgets.TraceWidget.select",
                     "llmtrace_nb.demo.server.DemoServer.fail_next",
                     "llmtrace_nb.demo.server.DemoServer.base_url"):
        assert expected in names


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_matches_signature(name: str) -> None:
    obj, is_top = PUBLIC[name]
    doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj)
    assert doc and doc.strip(), f"{name} has no docstring"
    if isinstance(obj, property):
        return  # documented as an attribute: a description, no sections
    params = parameters(obj)
    if params:
        body = section(doc, "Parameters")
        assert body is not None, f"{name} takes parameters but has no Parameters section"
        for p in params:
            stars = "**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else ""
            assert re.search(rf"^{re.escape(stars + p.name)}\b", body, re.M), (
                f"{name}: parameter {p.name!r} is not in its Parameters section")
    if not isinstance(obj, type):
        returns = return_hint(obj)
        assert returns is not inspect.Signature.empty, f"{name} has no return annotation"
        if returns is not type(None):
            assert section(doc, "Returns") is not None, (
                f"{name} returns something but has no Returns section")
    if is_top:
        assert section(doc, "Examples") is not None, f"{name} has no Examples section"


@pytest.mark.parametrize("name", sorted(n for n, (o, _) in PUBLIC.items()
                                        if not isinstance(o, (type, property))))
def test_no_public_return_is_any(name: str) -> None:
    returns = return_hint(PUBLIC[name][0])
    assert returns is not Any, f"{name} is typed Any as a return: give it its real type"


def test_real_return_types() -> None:
    assert return_hint(llmtrace_nb.explore) is widgets.Explorer
    assert return_hint(llmtrace_nb.TraceView.widget) is widgets.TraceWidget
    assert return_hint(llmtrace_nb.TraceView.figure) is go.Figure


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_examples_run_or_are_skipped(name: str) -> None:
    """The examples that need no kernel or session run as written; the rest say
    ``# doctest: +SKIP``."""
    obj = PUBLIC[name][0]
    doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
    test = doctest.DocTestParser().get_doctest(doc, {"llmtrace_nb": llmtrace_nb}, name,
                                              None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)

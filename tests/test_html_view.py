"""The static HTML trace view: safe with hostile documents, faithful to the numbers."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from llmtrace_nb._shape import document
from llmtrace_nb.views import charts, html
from llmtrace_nb.views.text import format_cost

from docs import XSS_PAYLOADS, agent_doc, empty_doc, xss_doc
from spans import Recorder

CHROMIUM = "/usr/bin/chromium"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@pytest.fixture(scope="module")
def agent() -> dict[str, Any]:
    return agent_doc()


@pytest.fixture(scope="module")
def xss() -> dict[str, Any]:
    return xss_doc()


def parse(fragment: str) -> tuple[BeautifulSoup, Tag]:
    soup = BeautifulSoup(fragment, "html.parser")
    roots = [c for c in soup.children if isinstance(c, Tag)]
    assert len(roots) == 1, "the view is one element"
    return soup, roots[0]


def rows(root: Tag) -> list[Tag]:
    return root.select(":scope > table.wf > tbody > tr")


def name_of(row: Tag) -> str:
    """A row's span name, without its indentation, error or the model label beside it."""
    return next(t for t in row.summary.find("span").strings if t.strip()).strip()


def cells(row: Tag) -> dict[str, str]:
    """A row's cells after the span's, by the column heads' names."""
    heads = ["kind", "model / tool", "tokens", "cost", "duration", "start"]
    tds = row.find_all("td", recursive=False)[1:7]
    texts = (td.get_text().replace("\u00a0", " ") for td in tds)
    return dict(zip(heads, texts, strict=True))


def body_of(row: Tag) -> Tag:
    """What a row's <details> opens to."""
    return row.td.details.find("div", recursive=False)


def bar_of(row: Tag) -> Tag:
    return row.find_all("td", recursive=False)[7]


def text_of(node: Tag) -> str:
    """The visible text: what the user reads (the style sheet is not text)."""
    node = copy.copy(node)
    for style in node.find_all("style"):
        style.decompose()
    return node.get_text()


def row_by_name(root: Tag, name: str) -> Tag:
    found = [r for r in rows(root) if name_of(r) == name]
    assert len(found) == 1, name
    return found[0]


class Balance(HTMLParser):
    """Every end tag closes the innermost open element; nothing is left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.top_level = 0
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        if not self.stack:
            self.top_level += 1
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def assert_balanced(fragment: str) -> None:
    checker = Balance()
    checker.feed(fragment)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.top_level == 1


# -- safety -------------------------------------------------------------------------------


def test_hostile_strings_stay_text(xss: dict[str, Any]) -> None:
    out = html.render(xss)
    soup, root = parse(out)
    for tag in ("script", "iframe", "svg", "img", "object", "embed", "a", "form", "link",
                "meta", "base", "math", "template"):
        assert soup.find_all(tag) == [], tag
    for element in soup.find_all(True):
        for attr, value in element.attrs.items():
            assert not attr.lower().startswith("on"), (element.name, attr)
            assert attr in ("class", "id", "style", "title", "open", "data-m", "data-t"), attr
            assert "javascript:" not in str(value) or attr == "title"
    assert len(soup.find_all("style")) == 1
    visible = text_of(root)
    for payload in XSS_PAYLOADS:
        assert payload in visible, payload
    assert "xss" not in soup.style.get_text()  # no document string reaches the CSS
    assert_balanced(out)
    assert len(rows(root)) == len(xss["spans"])


def test_style_attributes_only_carry_numbers(xss: dict[str, Any]) -> None:
    soup, _ = parse(html.render(xss))
    allowed = re.compile(r"^(--[lwt]:-?\d+(\.\d+)?%;?)+$|^left:\d+(\.\d+)?%$")
    styles = [el["style"] for el in soup.find_all(style=True)]
    assert styles and all(allowed.match(s) for s in styles), styles


def test_every_css_rule_is_scoped_to_the_view(agent: dict[str, Any]) -> None:
    soup, root = parse(html.render(agent))
    scope = f"#{root['id']}"
    css = re.sub(r"@media[^{]*\{", "", soup.style.get_text())
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", css) for s in block.split(",")]
    assert selectors
    for selector in selectors:
        assert selector.startswith(scope) or re.match(
            r'^(body\.vscode-dark|\[data-jp-theme-light="false"\]) ' + re.escape(scope),
            selector), selector


def test_two_views_on_one_page_do_not_clash(agent: dict[str, Any]) -> None:
    ids = {parse(html.render(agent))[1]["id"] for _ in range(2)}
    assert len(ids) == 2


def test_lone_surrogates_and_odd_values_do_not_raise(agent: dict[str, Any]) -> None:
    doc = copy.deepcopy(agent)
    doc["name"] = "bad \udc80 name"
    span = doc["spans"][3]
    span["name"] = "\ud800"
    span["input_messages"][0]["content"] = "half a pair \ud83d"
    span["attributes"]["k\udcff"] = "v\udcff"
    out = html.render(doc)
    out.encode("utf-8")  # a notebook can save it
    assert "half a pair" in text_of(parse(out)[1])


def test_deep_nesting_and_huge_strings_leave_the_view_usable(agent: dict[str, Any]) -> None:
    doc = copy.deepcopy(agent)
    nested: Any = "leaf"
    for _ in range(50_000):
        nested = [nested]
    doc["spans"][1]["attributes"]["deep"] = nested
    doc["spans"][1]["name"] = "n" * 1_000_000
    doc["spans"][3]["input_messages"][1]["content"] = "m" * 5_000_000
    out = html.render(doc)
    assert len(out) < 200_000
    _, root = parse(out)
    assert len(rows(root)) == len(doc["spans"])
    assert "[value not shown]" in text_of(rows(root)[1])
    assert "truncated 4,980,000 more characters" in text_of(root)


# -- what the user sees -------------------------------------------------------------------


def test_header_has_the_numbers(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    header = root.select_one(".hd").get_text(" ", strip=True)
    totals = agent["totals"]
    assert header.startswith("cell [12] rag-eval")
    assert "4.82 s" in header
    assert "3 LLM calls" in header
    assert "1,449 tokens (1,264 in · 185 out · 1,024 cached)" in header
    assert format_cost(totals["cost_usd"]) == "$0.0003368"
    assert "$0.0003368 + no price for 1 model" in header
    assert "1 error" in header
    assert "no price for: house-model-7b" in root.select_one(".ft").get_text()


def test_one_row_per_span_in_document_order(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    names = [name_of(r) for r in rows(root)]
    assert names == [s["name"] for s in agent["spans"]]
    # a call whose name does not say its model says it beside the name, muted
    labels = {name_of(r): r.summary.select_one("[data-m]")["data-m"]
              for r in rows(root) if r.summary.select_one("[data-m]")}
    assert labels == {"chat house-model": "house-model-7b"}
    # the model / tool cell says it on every call, for a reader without the style sheet
    assert [cells(r)["model / tool"] for r in rows(root)] == [
        "", "", "", "gpt-4o-mini", "search", "gpt-4o", "house-model-7b"]
    assert [r["class"] for r in rows(root)] == [
        ["k-cell"], ["k-retrieval", "d1"], ["k-agent", "d1"], ["k-llm", "d2"],
        ["k-tool", "d2"], ["k-llm", "d1", "e"], ["k-llm", "d1"]]


def test_a_tool_row_names_its_tool_when_the_span_name_does_not() -> None:
    rec = Recorder()
    for name, attrs in (("execute_tool", {"gen_ai.tool.name": "get_weather"}),
                        ("FunctionTool", {"traceloop.entity.name": "lookup_order"}),
                        ("search docs", {"gen_ai.tool.name": "search"}),
                        ("bare tool", {})):
        rec.tracer.start_span(name, attributes={"llmtrace.kind": "tool", **attrs}).end()
    doc = document.build(rec.frames.spans(), name="tools", cell=1)
    assert {s["name"]: s.get("tool") for s in doc["spans"]} == {
        "execute_tool": "get_weather", "FunctionTool": "lookup_order",
        "search docs": None, "bare tool": None}
    _, root = parse(html.render(doc))
    labels = {name_of(r): r.summary.select_one("[data-m]")["data-m"] for r in rows(root)
              if r.summary.select_one("[data-m]")}
    assert labels == {"execute_tool": "get_weather", "FunctionTool": "lookup_order"}
    # the plotly waterfall and the explorer name rows the same way
    assert charts.row_name(doc["spans"][0]) == "execute_tool · get_weather"


def test_the_numbers_of_each_row(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    got = {name_of(r): tuple(cells(r)[k] for k in ("tokens", "cost", "duration", "start"))
           for r in rows(root)}
    assert got == {"rag-eval": ("", "", "4.82 s", "0 ms"),
                   "retrieve": ("", "", "38 ms", "2 ms"),
                   "agent step 1": ("", "", "2.10 s", "45 ms"),
                   "chat gpt-4o-mini": ("1,384", "$0.0002118", "1.42 s", "50 ms"),
                   "execute_tool search": ("", "", "212 ms", "1.48 s"),
                   "chat gpt-4o": ("50", "$0.000125", "100 ms", "2.20 s"),
                   "chat house-model": ("15", "no price", "200 ms", "2.40 s")}
    failed = row_by_name(root, "chat gpt-4o")
    assert failed.summary.small.get_text() == "✕ RateLimitError"


def test_time_axis_and_bars(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    ticks = [t["data-t"] for t in root.select("thead .tk")]
    assert ticks == ["0 s", "1 s", "2 s", "3 s", "4 s", "5 s"]
    assert root.thead.find_all("th")[7].span.get_text() == "timeline 0 – 5 s, one █ = 208 ms"
    bars = {name_of(r): bar_of(r).i["style"] for r in rows(root)}
    assert bars["rag-eval"] == "--l:0%;--w:96.4%"  # 4.82 s on a 0–5 s axis
    assert bars["execute_tool search"] == "--l:29.6%;--w:4.2%"
    # streamed: 310 ms of 1.42 s before the first token, drawn lighter
    assert bars["chat gpt-4o-mini"] == "--l:1%;--w:28.4%;--t:21.8%"
    assert bar_of(row_by_name(root, "chat gpt-4o-mini")).i["class"] == ["s"]
    # the text bar: 24 characters for 5 s, in eighths; its start to a whole character
    text = {name_of(r): bar_of(r).code.get_text() for r in rows(root)}
    assert text["rag-eval"] == "█" * 23 + "▏"  # 4.82 / 5 * 24 = 23.14 characters
    assert text["execute_tool search"] == "\u00a0" * 7 + "█"  # 1.48 s; 212 ms = 8 eighths
    assert text["chat gpt-4o-mini"] == "░█████▉"  # 55 eighths, the first 8 waiting
    assert text["retrieve"] == "▏"  # shorter than an eighth: one all the same


def test_detail_of_a_streamed_call(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    body = body_of(row_by_name(root, "chat gpt-4o-mini"))
    meta = body.get_text(" ", strip=True)
    assert meta.startswith("gpt-4o-mini · openai · 1.42 s · TTFT 310 ms · 1,384 tokens "
                           "(1,204 in / 180 out, 1,024 cached) · $0.0002118 · finish: stop")
    turns = [(r.get_text(), t.get_text()) for r, t in zip(
        body.select(".ro"), body.select(".tx"), strict=True)]
    assert turns == [("system", "Be brief."), ("user", "Capital of France?"),
                     ("assistant", "Paris.")]
    attrs = body.select_one("details.at")
    # compact (the default): the attributes the facts above already say are left out
    table = {tr.th.get_text(): tr.td.get_text() for tr in attrs.find_all("tr")}
    assert attrs.summary.get_text() == f"attributes ({len(table)})"
    assert table["otel.status_code"] == "UNSET"  # says what no field does
    said = {"gen_ai.usage.cache_read.input_tokens", "gen_ai.is_streaming",
            "gen_ai.request.model", "gen_ai.input.messages", "gen_ai.output.messages"}
    assert not said & set(table)
    _, root = parse(html.render(agent_doc(output="full"), "full"))
    body = body_of(row_by_name(root, "chat gpt-4o-mini"))
    attrs = body.select_one("details.at")
    assert attrs.summary.get_text() == "attributes (15)"  # with otel.status_code
    table = {tr.th.get_text(): tr.td.get_text() for tr in attrs.find_all("tr")}
    assert table["gen_ai.usage.cache_read.input_tokens"] == "1024"
    assert table["gen_ai.is_streaming"] == "true"
    assert said < set(table)


def test_tool_calls_and_errors(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    tool = row_by_name(root, "execute_tool search")
    assert tool.select_one(".tc").get_text() == 'search({"q": "x"})'
    assert "search: 3 hits" in text_of(tool)
    failed = row_by_name(root, "chat gpt-4o")
    assert "e" in failed["class"]
    assert failed.select_one(".er").get_text() == "error: RateLimitError"


def test_legend_lists_the_kinds_present(agent: dict[str, Any]) -> None:
    _, root = parse(html.render(agent))
    legend = [s.get_text() for s in root.select(".lg > span")]
    assert legend == ["llm", "tool", "retrieval", "agent", "cell", "error",
                      "waiting for the first token (░)"]


def test_multiline_text_keeps_its_lines() -> None:
    doc = agent_doc()
    doc["spans"][3]["output_messages"][0]["content"] = "line 1\nline 2\n  indented"
    _, root = parse(html.render(doc))
    texts = [t.get_text() for t in row_by_name(root, "chat gpt-4o-mini").select(".tx")]
    assert "line 1\nline 2\n  indented" in texts


# -- failure states -----------------------------------------------------------------------


def test_empty_trace() -> None:
    out = html.render(empty_doc())
    _, root = parse(out)
    assert rows(root) == []
    assert "no spans recorded in this cell" in text_of(root)
    assert "cell [1] empty cell" in text_of(root)
    assert_balanced(out)


def test_unknown_version_renders_what_it_can(agent: dict[str, Any]) -> None:
    doc = copy.deepcopy(agent)
    doc["version"] = 2
    _, root = parse(html.render(doc))
    assert "This trace document has version 2; this llmtrace_nb reads version 1" in (
        text_of(root))
    assert len(rows(root)) == len(doc["spans"])
    del doc["version"]
    assert "has version unknown" in text_of(parse(html.render(doc))[1])
    same = html.render(agent)
    assert "This trace document has version" not in same


def test_missing_and_malformed_fields() -> None:
    doc = {"version": 1, "spans": [
        {"span_id": "a", "parent_span_id": None, "name": "bare", "kind": "llm", "depth": 0,
         "start_ms": 0, "duration_ms": 10},
        {"name": None, "kind": "<b>weird</b>", "depth": "deep", "start_ms": float("nan"),
         "duration_ms": float("inf"), "input_tokens": "12", "cost_usd": float("nan"),
         "input_messages": "not a list", "attributes": ["not", "a", "dict"]},
        {"name": "open", "kind": "tool", "depth": 1, "start_ms": 5, "duration_ms": None},
        {"name": "unknown cost", "kind": "llm", "depth": 1, "start_ms": 1, "duration_ms": 2,
         "input_tokens": 10, "output_tokens": 2, "cost_usd": float("nan")},
        "not a span"]}
    out = html.render(doc)
    _, root = parse(out)
    visible = text_of(root)
    for bad in ("nan", "NaN", "inf", "None"):
        assert bad not in visible.replace("(unnamed span)", ""), bad
    assert [name_of(r) for r in rows(root)] == [
        "bare", "(unnamed span)", "open", "unknown cost"]
    assert cells(rows(root)[1])["kind"] == "<b>weird</b>"
    assert rows(root)[1]["class"] == ["k-other"]
    assert cells(rows(root)[2])["duration"] == "running"
    # still running, from 5 ms to the end of a 0–10 ms axis
    assert bar_of(rows(root)[2]).code.get_text() == "\u00a0" * 12 + "▒" * 12
    assert (cells(rows(root)[3])["tokens"], cells(rows(root)[3])["cost"]) == ("12", "no price")
    assert "trace" in root.select_one(".hd").get_text()  # no name, no cell: still a title
    assert_balanced(out)


def test_attribute_values_as_text() -> None:
    doc = agent_doc()
    doc["spans"][0]["attributes"] = {"one": 1, "yes": True, "zero": 0, "no": False,
                                     "nan": float("nan"), "big": 10**400, "list": [1, "a"],
                                     "nan inside": [float("inf")]}
    doc["spans"][0]["duration_ms"] = 10**400  # past the float range: unknown, not a crash
    _, root = parse(html.render(doc))
    table = {tr.th.get_text(): tr.td.get_text() for tr in rows(root)[0].find_all("tr")}
    assert table == {"one": "1", "yes": "true", "zero": "0", "no": "false", "nan": "–",
                     "big": "–", "list": '[1, "a"]', "nan inside": "[value not shown]"}


def test_not_a_document_at_all() -> None:
    out = html.render(["nope"])  # type: ignore[arg-type]
    assert "could not be drawn" in out
    assert_balanced(out)


def test_footer_lines(agent: dict[str, Any]) -> None:
    doc = copy.deepcopy(agent)
    doc["omitted"] = {"spans": 1234, "llm_calls": 3, "input_tokens": 0, "output_tokens": 0,
                      "cost_usd": 0.0, "errors": 0}
    doc["open"], doc["open_spans"] = True, 2
    doc["spans"][4]["detail"] = "omitted"
    for key in ("input_messages", "output_messages", "attributes"):
        doc["spans"][4].pop(key)
    doc["spans"][3]["truncated"] = True
    _, root = parse(html.render(doc))
    footer = [f.get_text() for f in root.select(".ft")]
    assert footer == [
        "1,234 more spans not shown — their totals are in the header",
        "2 spans were still running when this view was made",
        "no price for: house-model-7b (set one with %llmtrace price)",
        "details of 1 span omitted to keep the notebook small"]
    omitted_body = body_of(row_by_name(root, "execute_tool search"))
    assert omitted_body["class"] == ["o"]  # says "details omitted…" (CSS, see below)
    assert "details omitted to keep the notebook small" in root.style.get_text()
    truncated = row_by_name(root, "chat gpt-4o-mini")
    assert "long texts are truncated here" in text_of(truncated)


def test_size_stays_bounded_for_10k_spans(agent: dict[str, Any]) -> None:
    """10k LLM calls with long messages: the first rows that fit, detail cut to the budget,
    and the footer says how many rows the static view does not list."""
    doc = copy.deepcopy(agent)
    call = doc["spans"][3]
    call["input_messages"][1]["content"] = "lorem ipsum " * 160
    doc["spans"] = [doc["spans"][0]] + [dict(call, name=f"call {i}", start_ms=i * 0.4)
                                        for i in range(9_999)]
    out = html.render(doc)
    assert len(out.encode("utf-8")) <= 3_000_000
    _, root = parse(out)
    listed = len(rows(root))
    assert 7_000 <= listed < 10_000, listed
    assert name_of(rows(root)[-1]) == f"call {listed - 2}"  # the first ones, in order
    assert f"the last {10_000 - listed:,} spans of this cell are not listed" in text_of(root)
    assert "sc" in root["class"]  # long views scroll inside the output
    assert len(root.select("tbody > tr > td > details > div.o")) > 6_000
    assert_balanced(out)
    # a cell of a few thousand spans is listed whole
    doc["spans"] = doc["spans"][:3_000]
    assert len(rows(parse(html.render(doc))[1])) == 3_000


def test_nice_axis_steps() -> None:
    assert [label for _, label in html._Axis(38).ticks()] == [
        "0 ms", "10 ms", "20 ms", "30 ms", "40 ms"]
    assert [label for _, label in html._Axis(2_600).ticks()] == [
        "0 s", "0.5 s", "1 s", "1.5 s", "2 s", "2.5 s", "3 s"]
    assert [label for _, label in html._Axis(95_000).ticks()][-1] == "100 s"
    assert [label for _, label in html._Axis(0).ticks()] == ["0 ms", "0.2 ms", "0.4 ms",
                                                              "0.6 ms", "0.8 ms", "1 ms"]


# -- in a real browser --------------------------------------------------------------------

PROBE = ("<script>addEventListener('load', function () {"
         " document.title = 'xss=' + String(window.__xss); });</script>")


def browser_title(page_html: str, tmp_path: Path) -> str:
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    f"{page_html}{PROBE}</body></html>", encoding="utf-8")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    found = re.search(r"<title>(.*?)</title>", done.stdout)
    assert found, done.stdout[:500]
    return found.group(1)


def test_nothing_runs_in_a_browser(xss: dict[str, Any], tmp_path: Path) -> None:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    # the probe works: an unescaped payload would be caught
    assert browser_title('<img src="x" onerror="window.__xss = 2">', tmp_path) == "xss=2"
    assert browser_title(html.render(xss), tmp_path) == "xss=undefined"


def test_a_call_traced_twice_reads_as_one_call() -> None:
    """A framework's span and the client's span of one HTTP call (docs.framework_doc)."""
    from llmtrace_nb.views import text as text_view

    from docs import framework_doc

    doc = framework_doc()
    assert doc["totals"]["llm_calls"] == 1 and doc["totals"]["same_call_spans"] == 1
    page = html.render(doc)
    assert "1 LLM call" in page and "same call" in page
    assert "counted once" in text_view.summary(doc)
    inner = next(s for s in doc["spans"] if s["name"] == "openai.chat")
    outer = next(s for s in doc["spans"] if s["name"] == "chat gpt-4o-mini")
    assert inner["duplicate_of"] == outer["span_id"] and "duplicate_of" not in outer
    assert outer["model"] == "gpt-4o-mini-2024-07-18" and outer["cache_read_tokens"] == 40


def test_the_text_summary_lists_the_costliest_and_the_slowest_calls(
        agent: dict[str, Any]) -> None:
    from llmtrace_nb.views import text

    lines = text.summary(agent).splitlines()
    assert lines[0].startswith("rag-eval · 4.82 s · 3 LLM calls")
    costliest = lines.index("  costliest calls:")
    slowest = lines.index("  slowest calls:")
    assert lines[costliest + 1:slowest] == [
        "    chat gpt-4o-mini · 1.42 s · 1,384 tok · $0.0002118",
        "    chat gpt-4o · 100 ms · 50 tok · $0.000125 · ✕ RateLimitError"]
    assert lines[slowest + 1:] == [
        "    chat gpt-4o-mini · 1.42 s · 1,384 tok · $0.0002118",
        "    chat house-model · house-model-7b · 200 ms · 15 tok · no price",
        "    chat gpt-4o · 100 ms · 50 tok · $0.000125 · ✕ RateLimitError"]
    assert "costliest" not in text.summary(empty_doc())

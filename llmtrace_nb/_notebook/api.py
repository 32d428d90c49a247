"""What the public functions do: the session's frames, views, files and prices.

``llmtrace_nb/__init__.py`` re-exports these; the magics call them too, so both paths
share one implementation and nothing imports the package root.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._shape import frames as _frames
from .._shape import judgements as _judgements
from ..views import TraceView
from ..views.compare import Comparison
from . import session as _session
from .status import status_text

if TYPE_CHECKING:  # ipywidgets and plotly are imported only by those who explore
    from .._keep.keeper import Keeper
    from ..views.widgets import Explorer, Source


def enable(*, max_spans: int | None = None, capture_content: bool | None = None,
           auto: bool | None = None,
           forward: str | Mapping[str, Any] | bool | None = None,
           store: str | os.PathLike[str] | bool | None = None,
           traceparent: bool | None = None) -> None:
    """Start collecting spans in this process (what ``%load_ext`` does, without IPython).

    Idempotent; a second call changes only the options it is given.

    Parameters
    ----------
    max_spans : int, optional
        Bound of the span buffer (default 100,000); the oldest spans are evicted past it.
    capture_content : bool, optional
        Record prompt and completion text (default: on, unless
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` or
        ``TRACELOOP_TRACE_CONTENT`` turns it off).
    auto : bool, optional
        Trace every cell without ``%%trace``.
    forward : str, dict or bool, optional
        Forward spans over OTLP: a collector URL, or a dict of ``url`` and the
        ``%llmtrace forward`` options (``protocol``, ``headers``, ``only``, ``redact``),
        or False to stop. Without it, the ``OTEL_EXPORTER_OTLP_*`` variables decide.
    store : str, os.PathLike or bool, optional
        The local store every finished span is also written to (README, "Spans outlive
        the kernel"): a file path, or False / ``"off"``. Without it, the
        ``LLMTRACE_NB_STORE`` variable (a path or ``off``) decides, else
        ``~/.local/share/llmtrace_nb/spans.sqlite``. A location that cannot be written
        is noted in :func:`status` and spans stay in memory only.
    traceparent : bool, optional
        Send each OpenAI request's trace context to the server as a W3C ``traceparent``
        header, so a proxy or model server that traces itself joins the cell's trace
        (default: off; README, "Forwarding").

    Returns
    -------
    None

    Raises
    ------
    ValueError
        ``max_spans`` is not a positive integer, or ``forward`` has a bad URL, protocol,
        header or policy (checked before anything changes).
    TypeError
        ``store`` is not a path or a bool, or ``traceparent`` not a bool.

    See Also
    --------
    disable : stop collecting.
    status : what is collected, and where spans go.

    Examples
    --------
    >>> import llmtrace_nb
    >>> llmtrace_nb.enable(max_spans=10_000, forward="http://localhost:4318")  # doctest: +SKIP
    """
    _session.enable(max_spans=max_spans, capture_content=capture_content, auto=auto,
                    forward=forward, store=store, traceparent=traceparent)


def disable() -> None:
    """Stop collecting and turn off the instrumentations llmtrace_nb turned on.

    The spans collected so far stay readable (``spans_df()``, ``view()``, ``save()``);
    forwarding and auto mode stop. A no-op if nothing is collecting.

    Returns
    -------
    None

    See Also
    --------
    enable : start again (the collected spans are kept).

    Examples
    --------
    >>> llmtrace_nb.disable()  # doctest: +SKIP
    """
    _session.disable()


def _source() -> _session.Session:
    sess = _session.current()
    if sess is None:
        raise RuntimeError("llmtrace_nb has collected nothing: run `%load_ext llmtrace_nb` "
                           "or `llmtrace_nb.enable()` first")
    return sess


def spans_df() -> pd.DataFrame:
    """One row per collected span.

    Returns
    -------
    pandas.DataFrame
        The columns and dtypes of README's "DataFrames" table (``trace_id``, ``span_id``,
        ``kind``, ``model``, tokens, ``cost_usd``, ``ttft_ms``, messages, ``attributes``…).
        ``attrs`` carries ``dropped_spans`` (evicted from the buffer) and
        ``unpriced_models``. Rows that describe a call another row counts have
        ``duplicate_of`` set.

    Raises
    ------
    RuntimeError
        Nothing was ever collected (no ``%load_ext llmtrace_nb`` or ``enable()``).

    See Also
    --------
    llm_calls_df : the LLM and embedding calls, each once.

    Examples
    --------
    >>> df = llmtrace_nb.spans_df()  # doctest: +SKIP
    >>> df[df["status"] == "error"][["name", "error_type"]]  # doctest: +SKIP
    """
    return _source().spans()


def llm_calls_df() -> pd.DataFrame:
    """One row per LLM or embedding call.

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`spans_df` whose ``kind`` is ``llm`` or ``embedding`` and whose
        ``duplicate_of`` is null (README, "One call, one row"), with the same columns
        and ``attrs``.

    Raises
    ------
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> calls = llmtrace_nb.llm_calls_df()  # doctest: +SKIP
    >>> calls.groupby("model")["cost_usd"].sum()  # doctest: +SKIP
    """
    sess = _source()  # only the calls' rows are copied for the caller
    calls = sess.frames.spans(capture_content=sess.capture_content, where=_frames.is_call)
    return _frames.llm_calls(calls)


def cells_df() -> pd.DataFrame:
    """One row per traced cell with its totals.

    Returns
    -------
    pandas.DataFrame
        The columns README lists under ``cells_df()`` (``cell``, ``cell_name``,
        ``trace_id``, ``start_time``, ``duration_ms``, ``llm_calls``, tokens,
        ``cost_usd``, ``errors``, ``tags``); each call is counted once.

    Raises
    ------
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> llmtrace_nb.cells_df().sort_values("cost_usd").tail(3)  # doctest: +SKIP
    """
    sess = _source()  # cells() sums and makes its own values: no copy of the spans needed
    spans = sess.frames.spans(capture_content=sess.capture_content, shared=True)
    return _frames.cells(spans, sess.collector.cells(), sess.frames.evicted())


def summary(by: str | Sequence[str] = "model", spans: pd.DataFrame | None = None
            ) -> pd.DataFrame:
    """Calls, errors, tokens, cost, latency p50/p95, TTFT p50 and tokens/s per group.

    Parameters
    ----------
    by : str or sequence of str, default "model"
        The column (or columns) of :func:`llm_calls_df` to group by.
    spans : pandas.DataFrame, optional
        Spans to summarize instead of the session's: e.g. :func:`history` (group by
        ``session`` or ``notebook`` too) or a filtered ``spans_df()``.

    Returns
    -------
    pandas.DataFrame
        One row per group, indexed by ``by``, with the columns README lists under
        ``summary()`` (``calls``, ``errors``, ``input_tokens``, ``output_tokens``,
        ``cost_usd``, ``latency_p50_ms``, ``latency_p95_ms``, ``ttft_p50_ms``,
        ``tokens_per_s``). Empty, with those columns, when there are no calls. Calls
        that were judged (:func:`evaluate`) add, per evaluation name, ``<name>_score``
        (the mean score) and ``<name>_pass_rate`` (the share not negative).

    Raises
    ------
    KeyError
        ``by`` names a column the calls do not have.
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> llmtrace_nb.summary()  # doctest: +SKIP
    >>> llmtrace_nb.summary(by=["cell_name", "model"])  # doctest: +SKIP
    """
    if spans is None:
        sess = _source()  # summary() only groups and sums: no copy of the spans needed
        spans = sess.frames.spans(capture_content=sess.capture_content, shared=True)
    calls = _frames.llm_calls(spans)
    table = _frames.summary(calls, by=by)
    if "attributes" not in spans.columns:  # history() without details: no judgements
        return table
    # judgements() picks the judgement rows itself
    return _judgements.judged_summary(table, calls, _judgements.judgements(spans, spans),
                                      by)


def _keeper() -> Keeper:
    sess = _session.current() or _session.enable()
    if sess.keeper is None:
        raise RuntimeError(sess.store_problem or "the local store is off (%llmtrace store "
                           "PATH, or enable(store=PATH), turns it on)")
    return sess.keeper


def history(notebook: str | None = None, since: Any = None, until: Any = None,
            details: bool = False) -> pd.DataFrame:
    """The spans of every session kept in the local store, as one DataFrame.

    Parameters
    ----------
    notebook : str, optional
        Only sessions of this notebook (its path as Jupyter names it: the ``notebook``
        column).
    since : datetime, str or pandas.Timestamp, optional
        Only spans that started at or after this time (naive times are UTC).
    until : datetime, str or pandas.Timestamp, optional
        Only spans that started at or before this time.
    details : bool, default False
        Also read ``input_messages``, ``output_messages`` and ``attributes`` — per-span
        dicts and lists, read from the stored spans each time (slow over many spans).
        Without them, sessions read before come back from the columns the store kept
        (1M spans in under 2 s; the first read of a session builds them).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`spans_df` (without the three ``details`` adds, unless
        asked for), plus ``session`` (the store's session number) and ``notebook``.
        Pass it to :func:`summary` (``spans=``) or the charts.

    Raises
    ------
    RuntimeError
        The store is off or could not be opened.
    ValueError
        ``since`` or ``until`` is not a time.

    Examples
    --------
    >>> week = llmtrace_nb.history(since="2026-11-26")  # doctest: +SKIP
    >>> week.groupby(["notebook", "model"])["cost_usd"].sum()  # doctest: +SKIP
    """
    from .._keep.history import history_frame

    keeper = _keeper()
    keeper.writer.flush()  # this session's latest spans too
    sess = _session.require()
    return history_frame(keeper.store, sess.prices, notebook=notebook, since=since,
                         until=until, capture_content=sess.capture_content,
                         details=details)


def restore(session: int | None = None) -> int:
    """Bring the spans of earlier sessions back from the local store into this one.

    Parameters
    ----------
    session : int, optional
        One stored session (its number in ``%llmtrace store``); by default every earlier
        session of this notebook.

    Returns
    -------
    int
        The number of spans added (spans held already are not added twice). Their cells
        come back with them, tagged ``session=<number>``, for ``view(cell)``, the
        DataFrames and ``save``. A chunk of the store that cannot be read (cut short or
        damaged on disk) is skipped with a warning.

    Raises
    ------
    RuntimeError
        The store is off or could not be opened, or no earlier session is known for
        this notebook.
    ValueError
        No stored session has that number.

    Examples
    --------
    >>> llmtrace_nb.restore()  # after a restart: this notebook's earlier spans  # doctest: +SKIP
    42
    >>> llmtrace_nb.restore(7)  # one session, as %llmtrace store lists it  # doctest: +SKIP
    12
    """
    keeper = _keeper()
    if session is None:
        ids = [s.id for s in keeper.earlier()]
        if not ids:
            raise RuntimeError(
                "no earlier session of this notebook is in the store" if keeper.who.notebook
                else "this kernel does not know its notebook (Jupyter sets "
                     "JPY_SESSION_NAME): name a session, %llmtrace restore SESSION")
    else:
        if session not in {s.id for s in keeper.store.sessions()}:
            raise ValueError(f"no stored session {session} (see %llmtrace store)")
        ids = [session]
    done = keeper.restore(ids)
    if done.torn:  # a chunk cut short or damaged on disk: the rest is still read
        warnings.warn(f"{done.torn} unreadable chunk{'s' if done.torn != 1 else ''} of the "
                      f"store {keeper.path} skipped", stacklevel=2)
    return done.added


def view(cell: int | str | None = None) -> TraceView:
    """The trace view of a traced cell: the last one, or the one with this number or name.

    Parameters
    ----------
    cell : int or str, optional
        The cell's execution count (``[12]``) or its ``%%trace`` name; default: the last
        traced cell that has ended. When several cells match, the last one.

    Returns
    -------
    TraceView
        Displays as the trace view; ``.html()``, ``.figure()`` and ``.widget()`` give
        the other views of it.

    Raises
    ------
    LookupError
        No traced cell matches (or none has been traced yet).
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> llmtrace_nb.view()  # doctest: +SKIP
    >>> llmtrace_nb.view("rag-eval").figure()  # doctest: +SKIP
    """
    from .cells import cell_document

    sess = _source()
    cells = [c for c in sess.collector.cells() if c.end_ns is not None] if cell is None \
        else _cells_matching(sess, cell, ended=True)
    if not cells:
        raise LookupError(f"no traced cell {cell!r}" if cell is not None else
                          "no traced cell yet: run a cell with %%trace first")
    return TraceView(cell_document(sess, cells[-1]), sess.output)


def save(path: str | os.PathLike[str]) -> int:
    """Write the session's spans to a file as OTLP JSON lines.

    The format is the OpenTelemetry Collector file exporter's (README, "Files"). Secrets
    are scrubbed on the way into the file; with content capture off, prompt and completion
    text is left out. The file is replaced atomically; a new one is made 0600.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (``~`` is expanded); it is replaced if it exists.

    Returns
    -------
    int
        The number of spans written.

    Raises
    ------
    RuntimeError
        Nothing was ever collected.
    IsADirectoryError
        ``path`` is a directory.
    TraceFileError
        ``path`` is not a regular file (a FIFO, a device…); a ``ValueError``.
    OSError
        The file cannot be written.

    See Also
    --------
    load : read such a file back.

    Examples
    --------
    >>> llmtrace_nb.save("run-1.jsonl")  # doctest: +SKIP
    42
    """
    from .._ship import files

    sess = _source()
    # With content capture off, no prompt or completion text may reach a file either.
    return files.save(path, sess.collector.snapshot().spans(),
                      redact="none" if sess.capture_content else "drop")


def load(path: str | os.PathLike[str]) -> int:
    """Read spans saved with :func:`save` (or by a Collector's file exporter), or the
    traces saved in an executed notebook's outputs, into the session, so the DataFrames
    and views include them.

    A span the session holds already (same trace and span id: the file was loaded
    before, or saved from this session) is not added again. Works in a fresh kernel (it
    enables llmtrace_nb if needed).

    Parameters
    ----------
    path : str or os.PathLike
        An OTLP JSON lines file, or a notebook (``.ipynb``): the trace document of each
        traced cell's output is read — its cells, spans, tokens, cost, times and, as far
        as the document kept them, messages and attributes. What a document left out
        (spans past its limit, detail past its size budget) is named in a warning.

    Returns
    -------
    int
        The number of spans added.

    Raises
    ------
    TraceFileError
        A line (or a notebook's span) cannot be read (not UTF-8, not JSON, not OTLP, a
        bad id or value…), or ``path`` is not a regular file; the message names the line
        (or cell and span), and nothing is loaded. A ``ValueError``.
    OSError
        The file cannot be opened.

    Examples
    --------
    >>> llmtrace_nb.load("run-1.jsonl")  # doctest: +SKIP
    42
    >>> llmtrace_nb.load("executed/analysis.ipynb")  # doctest: +SKIP
    17
    """
    return load_counted(path)[0]


def load_counted(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(spans added, spans of the file already held)."""
    from .._ship import files, notebooks

    notes: list[str] = []
    if os.fspath(path).lower().endswith(".ipynb"):
        book = notebooks.read(path)
        loaded: files.Loaded = book
        notes = book.notes
    else:
        loaded = files.load(path)
    sess = _session.current() or _session.enable()
    if sess.keeper is not None:  # kept where it came from, not stored again
        sess.keeper.writer.skip(span.context.span_id for span, _ in loaded.entries)
    added = sess.collector.add_entries(loaded.entries, loaded.cells)
    for note in notes:
        warnings.warn(f"{os.fspath(path)}: {note}", NotebookNote, stacklevel=3)
    return added, len(loaded.entries) - added


class NotebookNote(UserWarning):
    """What a notebook's saved traces leave out (``load("….ipynb")``)."""


def explore(source: Source = None, *, auto_refresh: bool = False,
            max_rows: int = 200) -> Explorer:
    """A dashboard over the collected spans: filters, linked charts, a table, span detail.

    Parameters
    ----------
    source : DataFrame or callable, optional
        The spans to explore: default the live session's (``spans_df()``); a DataFrame
        of spans (e.g. loaded from a file) or a function returning one works too.
    auto_refresh : bool, default False
        Poll for new spans twice a second until the dashboard is closed (live session
        only).
    max_rows : int, default 200
        The table lists the newest ``max_rows`` matching spans, and says so.

    Returns
    -------
    Explorer
        An ipywidgets ``VBox``: display it. ``.refresh()`` reloads the spans,
        ``.select(span_id)`` shows one, ``.close()`` also stops the auto-refresh.

    Examples
    --------
    >>> dashboard = llmtrace_nb.explore(auto_refresh=True)  # doctest: +SKIP
    >>> dashboard  # doctest: +SKIP
    >>> errors = llmtrace_nb.spans_df().query("status == 'error'")  # doctest: +SKIP
    >>> llmtrace_nb.explore(errors)  # doctest: +SKIP
    """
    # imported here: plotly and ipywidgets are only paid for by those who explore
    from ..views.widgets import explore as _explore

    return _explore(source, auto_refresh=auto_refresh, max_rows=max_rows, judge=evaluate)


def set_price(model: str, input_per_mtok: float, output_per_mtok: float,
              cache_read_per_mtok: float | None = None,
              cache_write_per_mtok: float | None = None) -> None:
    """Override the price of a model, in USD per million tokens.

    The override applies to the calls already collected as well as to new ones, and wins
    over the price database (``genai_prices``).

    Parameters
    ----------
    model : str
        The model name as the calls report it (the ``model`` column). An undated name
        also prices its dated snapshots (``gpt-4o-mini`` prices
        ``gpt-4o-mini-2024-07-18``); an override of the dated name wins.
    input_per_mtok : float
        USD per million input tokens.
    output_per_mtok : float
        USD per million output tokens.
    cache_read_per_mtok : float, optional
        USD per million cached input tokens read; default the input price.
    cache_write_per_mtok : float, optional
        USD per million input tokens written to the cache; default the input price.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        ``model`` is empty, or a price is not a finite number >= 0.
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> llmtrace_nb.set_price("my-finetune", 0.30, 1.20)  # doctest: +SKIP
    """
    _source().prices.set_price(model, input_per_mtok, output_per_mtok, cache_read_per_mtok,
                               cache_write_per_mtok)


def status() -> str:
    """What ``%llmtrace status`` prints.

    Returns
    -------
    str
        Whether spans are being collected, how many are kept and dropped, the cells
        traced, the instrumentations and tracer providers, price overrides, content
        capture, auto mode, where spans are forwarded, models without a price and notes;
        one per line.

    Raises
    ------
    RuntimeError
        Nothing was ever collected.

    Examples
    --------
    >>> print(llmtrace_nb.status())  # doctest: +SKIP
    """
    return status_text(_source())


# -- judgements ------------------------------------------------------------------------------

#: what evaluate() judges: a span id, a row of llm_calls_df(), a cell (number, name or
#: view), or None for the last call
Target = Any


def _cell_of_view(view: TraceView) -> Any:
    """A view's cell as a key of :func:`_cells_matching`: its number, or its name when it
    has none."""
    number = view.document.get("cell")
    return number if isinstance(number, int) else view.document.get("name")


def _cells_matching(sess: _session.Session, key: Any, ended: bool = False) -> list[Any]:
    """The traced cells whose number or name is ``key`` (ended ones only, if ``ended``),
    oldest first."""
    return [c for c in sess.collector.cells() if (c.number == key or c.name == key)
            and (not ended or c.end_ns is not None)]


def _target(sess: _session.Session, target: Target) -> tuple[int, int, int | None,
                                                             str | None]:
    """The judged span: trace id, span id, its cell's seq, its response id."""
    frame = sess.frames.spans(capture_content=False, keep_private=True)
    calls = _frames.llm_calls(frame)
    if target is None or (isinstance(target, str) and target == "last"):
        if calls.empty:
            raise LookupError("no LLM call to judge yet")
        row = calls.sort_values("end_time", kind="stable").iloc[-1]
        return _span_of(sess, frame, str(row["trace_id"]), str(row["span_id"]))
    if isinstance(target, pd.DataFrame):
        if len(target) != 1:
            raise ValueError(f"judge one call at a time: a frame of {len(target)} rows "
                             "(use evaluate_calls for many)")
        target = target.iloc[0]
    if isinstance(target, pd.Series | Mapping) and "span_id" in target:
        trace_id = target.get("trace_id")
        return _span_of(sess, frame, None if trace_id is None else str(trace_id),
                        str(target["span_id"]))
    if isinstance(target, TraceView):
        target = _cell_of_view(target)
    if isinstance(target, str) and len(target) == 16 and _is_hex(target):
        return _span_of(sess, frame, None, target)
    if isinstance(target, int | str) and not isinstance(target, bool):
        cells = _cells_matching(sess, target)
        if not cells:
            raise LookupError(f"no traced cell and no span {target!r}")
        cell = cells[-1]
        if cell.trace_id is None or cell.root_span_id is None:
            raise LookupError(f"cell {target!r} has no root span to judge")
        return cell.trace_id, cell.root_span_id, cell.seq, None
    raise TypeError(f"cannot judge {type(target).__name__}: give a span id, a row of "
                    "llm_calls_df(), a cell number or name, a view, or None (the last call)")


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _span_of(sess: _session.Session, frame: pd.DataFrame, trace_id: str | None,
             span_id: str) -> tuple[int, int, int | None, str | None]:
    from .._capture import judge

    rows = frame[(frame["span_id"] == span_id).fillna(False).to_numpy()]
    if trace_id is not None:
        rows = rows[(rows["trace_id"] == trace_id).fillna(False).to_numpy()]
    if rows.empty:
        stored = _stored_span(sess, trace_id, span_id)
        if stored is None:
            raise LookupError(f"no collected span {span_id!r} (evicted, or never collected)")
        return stored
    row = rows.iloc[-1]
    cell = None if pd.isna(row["_cell_seq"]) else int(row["_cell_seq"])
    response = row["attributes"].get(judge.RESPONSE_ID) if isinstance(
        row["attributes"], Mapping) else None
    return (int(row["trace_id"], 16), int(row["span_id"], 16), cell,
            response if isinstance(response, str) else None)


def _stored_span(sess: _session.Session, trace_id: str | None, span_id: str
                 ) -> tuple[int, int, int | None, str | None] | None:
    """A span of this session that left the buffer but is in the store (a thumb on a
    view drawn before it was evicted): judged by its ids, in its trace's cell."""
    from .._capture import judge

    if sess.keeper is None or trace_id is None or not (
            _is_hex(trace_id) and _is_hex(span_id)):
        return None
    wanted = int(span_id, 16)
    for span in sess.keeper.trace_spans(int(trace_id, 16)):
        if span.context is not None and span.context.span_id == wanted:
            response = (span.attributes or {}).get(judge.RESPONSE_ID)
            return (span.context.trace_id, wanted, None,
                    response if isinstance(response, str) else None)
    return None


def evaluate(target: Target = None, name: str = "feedback", score: float | None = None,
             label: str | None = None, explanation: str | None = None) -> str:
    """Record a judgement of a call or a cell, as OpenTelemetry.

    The judgement is a ``gen_ai.evaluation.result`` (the GenAI semantic conventions'
    evaluation result: ``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``,
    ``.explanation``, and the call's ``gen_ai.response.id``), recorded as a zero-length
    child span of the judged span, in the judged span's cell: it shows in
    :func:`evaluations_df`, :func:`summary`, files, the store and forwarding.

    Parameters
    ----------
    target : str, pandas.Series, int, TraceView or None
        The span id (16 hex digits) of a call, a row of :func:`llm_calls_df`, a cell
        (its number or ``%%trace`` name, or its view: the cell's root span is judged),
        or None / ``"last"``: the last LLM call.
    name : str, default "feedback"
        The evaluation's name (``exact_match``, ``relevance``, ...).
    score : float, optional
        A numeric score; 0 or less counts as negative.
    label : str, optional
        A label (``pass``, ``fail``, ``thumbs_up``, ...); ``fail``, ``incorrect``,
        ``thumbs_down`` and their like count as negative.
    explanation : str, optional
        Why. It is content: with content capture off it is not kept.

    Returns
    -------
    str
        The judgement span's id.

    Raises
    ------
    LookupError
        The target is not among the collected spans.
    ValueError, TypeError
        No name, neither score nor label, or a value of the wrong type.

    Examples
    --------
    >>> llmtrace_nb.evaluate(None, "exact_match", score=1.0, label="pass")  # doctest: +SKIP
    >>> llmtrace_nb.evaluate(calls.iloc[2], "feedback", label="thumbs_down",
    ...                      explanation="wrong city")  # doctest: +SKIP
    """
    from .._capture import judge

    name, score, label, explanation = judge.checked(name, score, label, explanation)
    sess = _source()
    trace_id, span_id, cell, response = _target(sess, target)
    own = judge.record(sess.tracer, sess.collector, trace_id, span_id, cell, name, score,
                       label, explanation if sess.capture_content else None, response)
    return f"{own:016x}"


def evaluate_calls(fn: Any, calls: pd.DataFrame | None = None, name: str | None = None
                   ) -> pd.DataFrame:
    """Run ``fn(row)`` over calls and record each result with :func:`evaluate`.

    Parameters
    ----------
    fn : callable
        Takes a row of ``calls`` and returns a score (a number), a label (a string),
        ``(score, explanation)``, ``(score, label, explanation)``, or None (no judgement).
    calls : pandas.DataFrame, optional
        The calls to judge; default: every call of :func:`llm_calls_df`.
    name : str, optional
        The evaluation's name; default: ``fn``'s ``__name__``.

    Returns
    -------
    pandas.DataFrame
        The judgements recorded, as :func:`evaluations_df` gives them.

    Examples
    --------
    >>> def exact(row):
    ...     return float(row["output_messages"][0]["content"].strip() == "Paris")
    >>> llmtrace_nb.evaluate_calls(exact)  # doctest: +SKIP
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    name = name or getattr(fn, "__name__", None) or "evaluation"
    if name == "<lambda>":
        name = "evaluation"
    rows = llm_calls_df() if calls is None else calls
    recorded: list[str] = []
    for _, row in rows.iterrows():
        result = fn(row)
        if result is None:
            continue
        score, label, explanation = _result_of(result)
        recorded.append(evaluate(row, name, score=score, label=label,
                                 explanation=explanation))
    found = evaluations_df()
    return found[found["evaluation_span_id"].isin(recorded)].reset_index(drop=True)


def _result_of(result: Any) -> tuple[float | None, str | None, str | None]:
    if isinstance(result, bool):
        return float(result), None, None
    if isinstance(result, int | float):
        return float(result), None, None
    if isinstance(result, str):
        return None, result, None
    if isinstance(result, tuple) and len(result) == 2:
        first, explanation = result
        score, label, _ = _result_of(first)
        return score, label, explanation
    if isinstance(result, tuple) and len(result) == 3:
        score, label, explanation = result
        return score, label, explanation
    raise TypeError(f"an evaluator returns a score, a label, (score, explanation) or "
                    f"(score, label, explanation); got {result!r}")


def evaluations_df() -> pd.DataFrame:
    """One row per judgement, joined to the call (or cell) it judges.

    Returns
    -------
    pandas.DataFrame
        ``evaluation``, ``score``, ``label``, ``explanation`` (null with content capture
        off), ``negative``, the judged span's ``trace_id``, ``span_id``, ``name``,
        ``kind``, ``model``, ``cell``, ``cell_name`` and ``cost_usd``, the judgement's
        ``time`` and ``evaluation_span_id``.

    Examples
    --------
    >>> llmtrace_nb.evaluations_df().groupby("evaluation")["score"].mean()  # doctest: +SKIP
    """
    return _session_judgements(_source())


def _session_judgements(sess: _session.Session) -> pd.DataFrame:
    """evaluations_df() of ``sess``: only the judgements' rows are copied."""
    spans = sess.frames.spans(capture_content=sess.capture_content, shared=True)
    found = sess.frames.spans(capture_content=sess.capture_content,
                              where=_judgements.is_judgement)
    return _judgements.judgements(found, spans)


# -- comparison --------------------------------------------------------------------------------


def _side(sess: _session.Session, which: Any, index: int) -> Any:
    """One side of compare(): its label, its spans, its wall time when known."""
    from .._shape.compare import Side
    from .cells import cell_spans

    if isinstance(which, pd.DataFrame):
        return Side(f"frame {index + 1}", which)
    if isinstance(which, TraceView):
        which = _cell_of_view(which)
    if isinstance(which, str) and "=" in which:  # a tag filter: every cell carrying it
        key, _, value = which.partition("=")
        refs = [c for c in sess.collector.cells()
                if c.tags.get(key.strip()) == value.strip() and c.end_ns is not None]
        if not refs:
            raise LookupError(f"no traced cell tagged {which!r}")
        spans = pd.concat([cell_spans(sess, ref) for ref in refs], ignore_index=True)
        total = sum(((r.end_ns or 0) - (r.start_ns or 0)) / 1e6 for r in refs)
        return Side(which, spans, float(total))
    if isinstance(which, int | str) and not isinstance(which, bool):
        refs = _cells_matching(sess, which, ended=True)
        if not refs:
            raise LookupError(f"no traced cell {which!r}")
        ref = refs[-1]
        wall: float | None = None if ref.start_ns is None or ref.end_ns is None else \
            (ref.end_ns - ref.start_ns) / 1e6
        return Side(ref.name, cell_spans(sess, ref), wall)
    raise TypeError(f"cannot compare {type(which).__name__}: give a cell (number, name or "
                    "view), a tag as 'key=value', or a DataFrame of spans")


def compare(a: Any, b: Any, *more: Any, labels: Sequence[str] | None = None,
            pair: str = "order") -> Comparison:
    """Runs side by side: totals, per model, and the calls paired with output diffs.

    Parameters
    ----------
    a : int, str, TraceView or pandas.DataFrame
        The first side, which the others are measured against: a traced cell (its
        number or ``%%trace`` name; the last run of it), its :func:`view`, a tag as
        ``"key=value"`` (every traced cell tagged so, e.g. ``"prompt=v2"`` from
        ``%%trace --tag prompt=v2``), or a DataFrame of spans (:func:`spans_df`,
        :func:`history`, a loaded file's, filtered as you like).
    b : int, str, TraceView or pandas.DataFrame
        The second side, any of the same.
    *more : int, str, TraceView or pandas.DataFrame
        More sides, any of the same.
    labels : sequence of str, optional
        A name per side; default: the cell's name, the tag, or "frame N".
    pair : {"order", "name"}
        How the calls are paired for their output diffs: by position in each run
        (default), or by span name — the k-th call of a name with the k-th of the same
        name on every side, for runs whose steps differ (an agent that called a tool
        once more).

    Returns
    -------
    Comparison
        Displays as one bundle (``application/vnd.llmtrace.compare+json``, an HTML twin,
        a text table). ``.frame`` gives the metrics by side with deltas and ratios to the
        first side; ``.data`` the whole comparison.

    Raises
    ------
    LookupError
        No traced cell (or tag) matches a side.
    TypeError, ValueError
        A side of another type, labels that do not fit, or another ``pair``.

    Examples
    --------
    >>> llmtrace_nb.compare("prompt v1", "prompt v2")  # doctest: +SKIP
    >>> llmtrace_nb.compare("prompt=v1", "prompt=v2").frame  # doctest: +SKIP
    """
    from .._shape import compare as _compare

    sess = _source()
    sides = [_side(sess, which, i) for i, which in enumerate((a, b, *more))]
    if labels is not None:
        if len(labels) != len(sides):
            raise ValueError(f"{len(labels)} labels for {len(sides)} sides")
        sides = [_compare.Side(str(label), s.spans, s.wall_ms)
                 for label, s in zip(labels, sides, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for s in sides:  # labels name the frame's columns: each once
        seen[s.label] = seen.get(s.label, 0) + 1
        unique.append(s if seen[s.label] == 1 else _compare.Side(
            f"{s.label} ({seen[s.label]})", s.spans, s.wall_ms))
    return Comparison(_compare.compare(unique, _session_judgements(sess), pair))

"""IPython glue: ``%%trace``, ``%llmtrace`` and the per-cell hooks.

``%%trace`` is not run as an ordinary cell magic. A cell magic receives the body as a
string and would have to execute it with a nested ``run_cell``, which cannot run
top-level ``await`` inside ipykernel (its event loop is already running). Instead an input
transformer blanks the ``%%trace`` line, so IPython runs the body exactly as any cell
(``await``, last-expression display, tracebacks with the right line numbers), and the
``pre_run_cell`` / ``post_run_cell`` events open and close the cell's root span. The
registered ``trace`` cell magic is what runs only when the transformer left the line in
place: bad arguments (it prints the usage) or a direct ``run_cell_magic`` call.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from .. import views
from .._ship.forward import ForwardConfigError, make_config
from ..views.live import LiveLine
from ..views.text import plural
from . import api, cells, session
from .status import status_text

TRACE_USAGE = ("%%trace [NAME] [--quiet] [--max-cost USD] [--max-latency SECONDS] "
               "[--tag KEY=VALUE ...]")
LLMTRACE_USAGE = """\
%llmtrace [status]                     collector size, drops, instrumentations, options
%llmtrace auto on|off                  trace every cell without %%trace
%llmtrace content on|off               capture prompt and completion text or not
%llmtrace price MODEL IN_USD_PER_MTOK OUT_USD_PER_MTOK [CACHE_READ [CACHE_WRITE]]
%llmtrace clear                        drop collected spans
%llmtrace save PATH / load PATH        write / read the spans as OTLP JSON lines
%llmtrace forward URL [--protocol P] [--header K=V ...] [--only RULES] [--redact MODE]
%llmtrace forward off                  stop forwarding"""
_COMMANDS = ("status", "auto", "content", "price", "clear", "save", "load", "forward")


# -- %%trace arguments ----------------------------------------------------------------------


@dataclass
class TraceOptions:
    name: str | None = None
    quiet: bool = False
    max_cost: float | None = None
    max_latency: float | None = None
    tags: dict[str, str] = field(default_factory=dict)


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise _ArgumentError(message)


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise ValueError(text)
    return value


_non_negative.__name__ = "number >= 0"
_positive.__name__ = "number > 0"

_trace_parser = _Parser(prog="%%trace", add_help=False)
_trace_parser.add_argument("name", nargs="*")
_trace_parser.add_argument("--quiet", action="store_true")
_trace_parser.add_argument("--max-cost", type=_non_negative)
_trace_parser.add_argument("--max-latency", type=_positive)
_trace_parser.add_argument("--tag", action="extend", nargs="+", default=[])


def parse_trace_line(line: str) -> TraceOptions:
    """Arguments of ``%%trace`` → options; ``UsageError`` with the usage line if bad."""
    try:
        args = _trace_parser.parse_args(shlex.split(line, comments=True))
    except (_ArgumentError, ValueError) as exc:
        raise UsageError(f"%%trace: {exc}\nusage: {TRACE_USAGE}") from None
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"%%trace: --tag wants KEY=VALUE, got {item!r}\n"
                             f"usage: {TRACE_USAGE}")
        tags[key.strip()] = value
    return TraceOptions(name=" ".join(args.name) or None, quiet=args.quiet,
                        max_cost=args.max_cost, max_latency=args.max_latency, tags=tags)


def _trace_header(raw_cell: str) -> str | None:
    """The argument text of a leading ``%%trace`` line, or None if the cell has none."""
    first = raw_cell.lstrip("\n").split("\n", 1)[0].strip()
    if first == "%%trace" or first.startswith(("%%trace ", "%%trace\t")):
        return first[len("%%trace"):]
    return None


def _valid_options(header: str) -> TraceOptions | None:
    try:
        return parse_trace_line(header)
    except UsageError:
        return None


def strip_trace_line(lines: list[str]) -> list[str]:
    """Input transformer: blank a valid leading ``%%trace`` line (keeps line numbers)."""
    if not lines:
        return lines
    header = _trace_header(lines[0])
    if header is None or _valid_options(header) is None:
        return lines  # bad arguments: the `trace` cell magic runs and prints the usage
    rest = lines[1:]
    if rest and rest[0].startswith("%%"):
        return rest  # another cell magic must stay on the first line to be seen
    return ["\n", *rest]


strip_trace_line.llmtrace_nb = True  # type: ignore[attr-defined]


# -- per-cell hooks -------------------------------------------------------------------------


class CellHooks:
    """Opens a traced cell in ``pre_run_cell`` and closes it in ``post_run_cell``."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        # pre/post events nest (run_cell inside a cell); None marks an untraced run.
        self._stack: list[cells.ActiveCell | None] = []
        # IPython >= 9.9 counts a cell (In [N]) up *before* pre_run_cell, earlier releases
        # after it. The difference is learnt from the first post_run_cell, which carries
        # the true number; the cell being run while we are installed (`%load_ext`) is
        # that first one.
        self._observed: int | None = shell.execution_count
        self._count_offset = 0

    def _cell_number(self, info: Any) -> int:
        self._observed = self.shell.execution_count
        return self._observed - (self._count_offset if info.store_history else 0)

    def _learn_number(self, result: ExecutionResult | None) -> None:
        if result is None or self._observed is None or result.execution_count is None:
            return
        if result.info is None or result.info.store_history:
            self._count_offset = self._observed - result.execution_count
        self._observed = None

    def pre_run_cell(self, info: Any) -> None:
        sess = session.current()
        cell = None
        if sess is not None and sess.active:
            # a library may have set or swapped its provider since the last cell
            session.attach_providers(sess)
            header = _trace_header(info.raw_cell or "")
            number = self._cell_number(info)
            opts = _valid_options(header) if header is not None else None
            if opts is not None:
                cell = self.start(sess, number, opts)
            elif sess.auto:
                cell = cells.start_cell(sess, number, auto=True)
        self._stack.append(cell)

    def start(self, sess: session.Session, number: int | None,
              opts: TraceOptions) -> cells.ActiveCell:
        cell = cells.start_cell(
            sess, number, opts.name, opts.tags,
            budget=cells.Budget(opts.max_cost, opts.max_latency), quiet=opts.quiet,
        )
        # Only a kernel's frontend updates a display in place; a terminal would print
        # every refresh of the live line anew.
        if not opts.quiet and getattr(self.shell, "kernel", None) is not None:
            cell.live = LiveLine(sess.collector, sess.frames, cell.ref)
        return cell

    def post_run_cell(self, result: ExecutionResult | None) -> None:
        cell = self._stack.pop() if self._stack else None
        self._learn_number(result)
        sess = session.current()
        if cell is None or sess is None:
            return
        if result is not None and result.execution_count is not None:
            cells.renumber(cell, result.execution_count)
        error = None
        if result is not None:
            error = result.error_in_exec or result.error_before_exec
        budget_error = self.finish(sess, cell, error)
        if budget_error is not None and result is not None and result.success:
            # Raising from an event callback only prints "Error in callback"; marking the
            # result failed is what makes ipykernel answer the request with an error, so
            # nbclient and papermill stop on it.
            result.error_in_exec = budget_error
            self.shell.showtraceback((type(budget_error), budget_error, None))

    def finish(self, sess: session.Session, cell: cells.ActiveCell,
               error: BaseException | None) -> cells.BudgetExceeded | None:
        """End the cell, show its summary, and return a budget breach if there was one."""
        if cell.live is not None:
            cell.live.stop()
        cells.end_cell(sess, cell, error)
        if sess.forwarder is not None:
            sess.forwarder.nudge()
            warning = sess.forwarder.new_failure_warning()
            if warning:
                print(warning, file=sys.stderr)
        doc = cells.cell_document(sess, cell.ref)
        if cell.auto and doc["totals"]["llm_calls"] == 0:
            return None
        if cell.live is not None:
            cell.live.replace(views.bundle(doc))
        elif not cell.quiet:
            display(views.bundle(doc), raw=True)
        return cells.check_budget(cell.budget, doc["totals"])


# -- magics ---------------------------------------------------------------------------------


def command_usage(command: str) -> str:
    """The usage lines of one ``%llmtrace`` command (from LLMTRACE_USAGE), else all."""
    lines = [ln for ln in LLMTRACE_USAGE.splitlines()
             if ln.split()[1:2] == [command] or (command == "status" and "[status]" in ln)]
    return "\n".join(lines) if lines else LLMTRACE_USAGE


def _usage_error(command: str, problem: str) -> UsageError:
    """What was wrong, then how that command is used."""
    return UsageError(f"%llmtrace {command}: {problem}\nusage:\n{command_usage(command)}")


def _on_off(value: str, what: str) -> bool:
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise _usage_error(what, f"expected on or off, got {value!r}")


def _price(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _usage_error("price", f"{what} must be a number (USD per million tokens), "
                                    f"got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _usage_error("price", f"{what} must be >= 0, got {text!r}")
    return value


@magics_class
class TraceMagics(Magics):
    def __init__(self, shell: InteractiveShell, hooks: CellHooks) -> None:
        super().__init__(shell)
        self.hooks = hooks

    @cell_magic
    def trace(self, line: str, cell: str) -> None:
        """Trace one cell: %%trace [NAME] [--quiet] [--max-cost USD] [--max-latency S]
        [--tag KEY=VALUE ...]"""
        opts = parse_trace_line(line)  # bad arguments: UsageError, nothing runs
        sess = session.require()
        shell = self.hooks.shell
        # Reached only through a direct run_cell_magic() call: run the body nested.
        active = self.hooks.start(sess, shell.execution_count, opts)
        result = shell.run_cell(cell, store_history=False)
        error = result.error_in_exec or result.error_before_exec
        budget_error = self.hooks.finish(sess, active, error)
        if budget_error is not None and error is None:
            raise budget_error

    @line_magic
    def llmtrace(self, line: str) -> None:
        """%llmtrace [status|auto on|off|content on|off|price ...|clear]"""
        try:
            words = shlex.split(line, comments=True)  # "# …" ends the line, as in a shell
        except ValueError as exc:
            raise UsageError(f"%llmtrace: {exc}\nusage:\n{LLMTRACE_USAGE}") from None
        command, args = (words[0], words[1:]) if words else ("status", [])
        sess = session.require()
        if command == "status" and not args:
            print(status_text(sess))
        elif command == "clear" and not args:
            n = len(sess.collector)
            sess.collector.clear()
            print(f"llmtrace_nb: cleared {n:,} spans")
        elif command == "auto" and len(args) == 1:
            sess.auto = _on_off(args[0], "auto")
            print(f"llmtrace_nb: auto mode {'on' if sess.auto else 'off'}")
        elif command == "content" and len(args) == 1:
            sess.set_capture_content(_on_off(args[0], "content"))
            print(f"llmtrace_nb: content capture {'on' if sess.capture_content else 'off'}")
        elif command == "price" and len(args) in (3, 4, 5):
            model = args[0]
            rates = [_price(args[1], "input price"), _price(args[2], "output price")]
            cache = _price(args[3], "cache-read price") if len(args) >= 4 else None
            write = _price(args[4], "cache-write price") if len(args) == 5 else None
            sess.prices.set_price(model, rates[0], rates[1], cache, write)
            print(f"llmtrace_nb: price for {model}: ${rates[0]:g} in / ${rates[1]:g} out"
                  + (f" / ${cache:g} cache read" if cache is not None else "")
                  + (f" / ${write:g} cache write" if write is not None else "")
                  + " per million tokens")
        elif command in ("save", "load") and len(args) == 1:
            self._file(command, args[0])
        elif command == "forward" and args:
            self._forward(sess, args)
        elif command in _COMMANDS:
            raise _usage_error(command, f"wrong arguments {' '.join(args)!r}" if args
                               else "missing arguments")
        else:
            raise UsageError(f"%llmtrace: unknown command {command!r}\n"
                             f"usage:\n{LLMTRACE_USAGE}")


    def _forward(self, sess: session.Session, args: list[str]) -> None:
        assert sess.forwarder is not None
        if args == ["off"]:
            sess.forwarder.stop(wait=False)  # a dead endpoint must not hold the cell
            print("llmtrace_nb: forwarding off")
            return
        try:
            opts = _forward_parser.parse_args(args)
            config = make_config(opts.url, protocol=opts.protocol, headers=opts.header,
                                 only=opts.only, redact=opts.redact)
        except (_ArgumentError, ForwardConfigError) as exc:
            raise UsageError(f"%llmtrace forward: {exc}\nusage: {FORWARD_USAGE}") from None
        sess.forwarder.start(config)
        print(f"llmtrace_nb: forwarding to {config.describe()}")

    def _file(self, command: str, path: str) -> None:
        from .._ship.files import TraceFileError

        try:
            if command == "save":
                n = api.save(path)
            else:
                n, held = api.load_counted(path)
        except (OSError, TraceFileError) as exc:
            # one clear line, the session unchanged (load parses the whole file first)
            raise _usage_error(command, str(exc)) from None
        if command == "save":
            print(f"llmtrace_nb: wrote {plural(n, 'span')} to {path}")
        else:
            already = f" ({plural(held, 'span')} already loaded)" if held else ""
            print(f"llmtrace_nb: read {plural(n, 'span')} from {path}{already}")


FORWARD_USAGE = ("%llmtrace forward URL [--protocol http/protobuf|grpc] [--header K=V ...] "
                 "[--only errors,slow:SECONDS,cost:USD] [--redact none|hash|drop] | "
                 "%llmtrace forward off")
_forward_parser = _Parser(prog="%llmtrace forward", add_help=False)
_forward_parser.add_argument("url")
_forward_parser.add_argument("--protocol", default="http/protobuf")
_forward_parser.add_argument("--header", action="extend", nargs="+", default=[])
_forward_parser.add_argument("--only", default=None)
_forward_parser.add_argument("--redact", default="none")


# -- install / uninstall --------------------------------------------------------------------

_installed: dict[int, CellHooks] = {}


def install(shell: InteractiveShell) -> bool:
    """Register hooks, transformer and magics on ``shell``; False if already there."""
    if id(shell) in _installed:
        return False
    hooks = CellHooks(shell)
    shell.events.register("pre_run_cell", hooks.pre_run_cell)
    shell.events.register("post_run_cell", hooks.post_run_cell)
    transformers: Sequence[Any] = shell.input_transformers_cleanup
    if not any(getattr(t, "llmtrace_nb", False) for t in transformers):
        shell.input_transformers_cleanup.append(strip_trace_line)
    shell.register_magics(TraceMagics(shell, hooks))
    _installed[id(shell)] = hooks
    return True


def uninstall(shell: InteractiveShell) -> None:
    hooks = _installed.pop(id(shell), None)
    if hooks is None:
        return
    shell.events.unregister("pre_run_cell", hooks.pre_run_cell)
    shell.events.unregister("post_run_cell", hooks.post_run_cell)
    # `%unload_ext` inside a traced cell: its post_run_cell will no longer come.
    sess = session.current()
    while hooks._stack:
        cell = hooks._stack.pop()
        if cell is not None and sess is not None:
            cells.end_cell(sess, cell)
    shell.input_transformers_cleanup[:] = [
        t for t in shell.input_transformers_cleanup if not getattr(t, "llmtrace_nb", False)
    ]
    registry = shell.magics_manager.magics
    registry["cell"].pop("trace", None)
    registry["line"].pop("llmtrace", None)

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from .. import views
from .._shape import document
from .._ship.forward import ForwardConfigError, make_config
from ..views import html
from ..views.live import LiveLine
from ..views.text import plural
from . import api, cells, session
from .status import status_text, store_text, traceparent_text

# -- argparse for magic lines ---------------------------------------------------------------
#
# The usage and help texts are argparse's, generated from the parsers below; nothing about
# how a magic is called is written out by hand a second time.

# Fixed, not the terminal's: a notebook has none, and the texts read the same everywhere;
# wide enough for %%trace's usage on one line.
_WIDTH = 110


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=_WIDTH, max_help_position=30)


def _h(text: str) -> str:
    """A help string as written: argparse %-formats help (``%%trace`` → ``%trace``)."""
    return text.replace("%", "%%")


class _HelpShown(Exception):
    """``-h`` / ``--help`` printed a help: the magic ends there, without an error."""


class MagicParser(argparse.ArgumentParser):
    """argparse for a magic's line. A bad argument raises IPython's ``UsageError`` with
    what was wrong, prefixed by the parser's prog (``%llmtrace forward``), and the parser's
    generated usage, instead of printing it and exiting the process."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        kwargs.setdefault("add_help", False)
        if sys.version_info >= (3, 14):
            kwargs.setdefault("color", False)  # plain text: it ends up in a UsageError
        super().__init__(prog=prog, **kwargs)
        #: the subcommands' parsers, by name (filled by build_llmtrace_parser)
        self.subcommands: dict[str, MagicParser] = {}

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # reached only from a help action (error() above does not exit)
        raise _HelpShown


def _add_help(parser: MagicParser) -> None:
    """``-h`` / ``--help``, left out of the usage line (every command has it)."""
    parser.add_argument("-h", "--help", action="help", help=argparse.SUPPRESS)


def _bounded(text: str, ok: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    return _bounded(text, lambda v: v >= 0, "a number >= 0")


def _positive(text: str) -> float:
    return _bounded(text, lambda v: v > 0, "a number > 0")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _on_off(text: str) -> bool:
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _usd_per_mtok(text: str) -> float:
    return _bounded(text, lambda v: v >= 0, "USD per million tokens, a number >= 0")


def _split(parser: MagicParser, line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)  # "# …" ends the line, as in a shell
    except ValueError as exc:  # an unclosed quote
        parser.error(str(exc))


# -- %%trace arguments ----------------------------------------------------------------------


@dataclass
class TraceOptions:
    name: str | None = None
    quiet: bool = False
    max_cost: float | None = None
    max_latency: float | None = None
    tags: dict[str, str] = field(default_factory=dict)


# No -h here: the line is parsed for every cell that starts with %%trace (by the input
# transformer and the pre_run_cell hook), so parsing must print nothing.
_trace_parser = MagicParser(
    "%%trace", description="Trace one cell: its LLM calls and spans under one root span, "
                           "and a summary under the cell.")
_trace_parser.add_argument("name", nargs="*", metavar="NAME",
                           help=_h("the root span's name (default: cell [N])"))
_trace_parser.add_argument("--quiet", action="store_true",
                           help="show nothing: no live line, no summary")
_trace_parser.add_argument("--max-cost", type=_non_negative, metavar="USD",
                           help="fail the cell (BudgetExceeded) when its cost is over USD")
_trace_parser.add_argument("--max-latency", type=_positive, metavar="SECONDS",
                           help="fail the cell (BudgetExceeded) when it runs over SECONDS")
_trace_parser.add_argument("--tag", action="extend", nargs="+", type=_key_value,
                           default=[], metavar="KEY=VALUE",
                           help="llmtrace.tag.KEY on the root span and in cells_df()['tags'] "
                                "(repeatable)")


def parse_trace_line(line: str) -> TraceOptions:
    """Arguments of ``%%trace`` → options; ``UsageError`` with the usage line if bad."""
    args = _trace_parser.parse_args(_split(_trace_parser, line))
    return TraceOptions(name=" ".join(args.name) or None, quiet=args.quiet,
                        max_cost=args.max_cost, max_latency=args.max_latency,
                        tags=dict(args.tag))


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
            cell.live.replace(views.bundle(doc, sess.output))
        elif not cell.quiet:
            display(views.bundle(doc, sess.output), raw=True)
        return cells.check_budget(cell.budget, doc["totals"])


# -- %llmtrace: one argparse subcommand per command -----------------------------------------


Run = Callable[[argparse.Namespace, MagicParser], None]


@dataclass(frozen=True)
class Command:
    """A ``%llmtrace`` subcommand: its one-line help, its arguments, and what it does
    (given the parsed arguments and its parser, whose ``error`` raises a UsageError that
    names the command and shows its usage)."""

    help: str
    run: Run
    arguments: Callable[[MagicParser], object] = lambda parser: None


def _status(args: argparse.Namespace, parser: MagicParser) -> None:
    print(status_text(session.require()))


def _clear(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    n = len(sess.collector)
    sess.collector.clear()
    print(f"llmtrace_nb: cleared {n:,} spans")


def _auto(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    sess.auto = args.mode
    print(f"llmtrace_nb: auto mode {'on' if sess.auto else 'off'}")


def _content(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    sess.set_capture_content(args.mode)
    print(f"llmtrace_nb: content capture {'on' if sess.capture_content else 'off'}")


def _traceparent(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    if args.mode is not None:
        sess.set_traceparent(args.mode)
    print(f"llmtrace_nb: {traceparent_text(sess)}")


def _traceparent_argument(parser: MagicParser) -> None:
    parser.add_argument("mode", nargs="?", type=_on_off, metavar="on|off",
                        help="on: OpenAI requests carry a traceparent header; none shows "
                             "the current setting")


def _output(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    if args.mode is not None:
        sess.output = args.mode
    print(f"llmtrace_nb: output {sess.output} — " + (
        "each cell's view saves every attribute, and its static HTML details every span"
        if sess.output == "full" else
        "each cell's view leaves out attributes its fields already show, and its static "
        f"HTML details the first {html.COMPACT_DETAILS} calls and every error"))


def _output_argument(parser: MagicParser) -> None:
    parser.add_argument("mode", nargs="?", choices=document.OUTPUTS, metavar="full|compact",
                        help="compact (the default) or full; none shows the current one")


def _on_off_argument(parser: MagicParser) -> None:
    parser.add_argument("mode", type=_on_off, metavar="on|off",
                        help="on (or true, 1, yes) or off (or false, 0, no)")


def _price(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    cache, write = args.cache_read, args.cache_write
    sess.prices.set_price(args.model, args.input, args.output, cache, write)
    print(f"llmtrace_nb: price for {args.model}: ${args.input:g} in / ${args.output:g} out"
          + (f" / ${cache:g} cache read" if cache is not None else "")
          + (f" / ${write:g} cache write" if write is not None else "")
          + " per million tokens")


def _price_arguments(parser: MagicParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="the model name, as the calls report it; covers its dated "
                             "snapshots unless they have a price of their own")
    for dest, metavar, what in (("input", "IN", "input tokens"),
                                ("output", "OUT", "output tokens"),
                                ("cache_read", "CACHE_READ", "cache-read input tokens"),
                                ("cache_write", "CACHE_WRITE", "cache-write input tokens")):
        cached = dest.startswith("cache")
        parser.add_argument(dest, metavar=metavar, type=_usd_per_mtok,
                            nargs="?" if cached else None,
                            help=f"USD per million {what}"
                                 + (" (default: the input price)" if cached else ""))


def _file(args: argparse.Namespace, parser: MagicParser) -> None:
    from .._ship.files import TraceFileError

    path, saving = args.path, args.command == "save"
    try:
        if saving:
            n = api.save(path)
        else:
            n, held = api.load_counted(path)
    except (OSError, TraceFileError) as exc:
        # one clear line, the session unchanged (load parses the whole file first)
        parser.error(str(exc))
    if saving:
        print(f"llmtrace_nb: wrote {plural(n, 'span')} to {path}")
    else:
        already = f" ({plural(held, 'span')} already loaded)" if held else ""
        print(f"llmtrace_nb: read {plural(n, 'span')} from {path}{already}")


def _store(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    if args.where is not None:
        from .._keep.keeper import configured_path

        session.use_store(sess, configured_path(args.where))
    print(store_text(sess))


def _store_argument(parser: MagicParser) -> None:
    parser.add_argument("where", metavar="PATH|off", nargs="?",
                        help="the store's file from now on, or off")


def _restore(args: argparse.Namespace, parser: MagicParser) -> None:
    try:
        n = api.restore(args.session)
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))
    what = f"session {args.session}" if args.session is not None else \
        "this notebook's earlier sessions"
    print(f"llmtrace_nb: restored {plural(n, 'span')} from {what}")


def _restore_argument(parser: MagicParser) -> None:
    parser.add_argument("session", metavar="SESSION", nargs="?", type=int,
                        help="a session number from %%llmtrace store (default: every "
                             "earlier session of this notebook)")


def _path_argument(parser: MagicParser) -> None:
    parser.add_argument("path", metavar="PATH",
                        help="a file of OTLP JSON lines (load: or an executed .ipynb)")


def _forward(args: argparse.Namespace, parser: MagicParser) -> None:
    sess = session.require()
    assert sess.forwarder is not None
    options = (args.protocol, args.header, args.only, args.redact)
    if args.url == "off" and options == (None, None, None, None):
        sess.forwarder.stop(wait=False)  # a dead endpoint must not hold the cell
        print("llmtrace_nb: forwarding off")
        return
    try:
        config = make_config(args.url, protocol=args.protocol or "http/protobuf",
                             headers=args.header or [], only=args.only,
                             redact=args.redact or "none")
    except ForwardConfigError as exc:
        parser.error(str(exc).removeprefix("forward: "))  # the prog says forward already
    sess.forwarder.start(config)
    print(f"llmtrace_nb: forwarding to {config.describe()}")


def _forward_arguments(parser: MagicParser) -> None:
    # no defaults here: `forward off` is off only with no option given
    parser.add_argument("url", metavar="URL|off",
                        help="an OTLP endpoint: a collector's base address (/v1/traces is "
                             "appended over HTTP) or the full traces URL; off stops "
                             "forwarding")
    parser.add_argument("--protocol", metavar="http/protobuf|grpc",
                        help="default http/protobuf; grpc needs pip install "
                             "'llmtrace_nb[grpc]'")
    parser.add_argument("--header", action="extend", nargs="+", metavar="K=V",
                        help="a header sent with every export, e.g. "
                             "\"Authorization=Basic ...\" (repeatable)")
    parser.add_argument("--only", metavar="errors,slow:SECONDS,cost:USD,feedback:negative",
                        help="forward only the traced cells that had an error, took longer "
                             "than SECONDS, cost more than USD, or were judged negatively "
                             "(also after the cell ended)")
    parser.add_argument("--redact", metavar="none|hash|drop",
                        help="prompt and completion text: sent (none, the default), "
                             "replaced by sha256:<hex> (hash) or removed (drop)")


#: The ``%llmtrace`` subcommands, in the order the help lists them; each is one argparse
#: subparser, and ``help [COMMAND]`` is added to them.
COMMANDS: dict[str, Command] = {
    "status": Command("spans kept and dropped, buffer size, instrumentations, content "
                      "capture, auto mode, output, models without a price, forwarding", _status),
    "auto": Command("trace every cell without %%trace; a summary appears only for cells "
                    "that made LLM calls", _auto, _on_off_argument),
    "content": Command("capture prompt and completion text or not", _content,
                       _on_off_argument),
    "traceparent": Command("send each OpenAI request's trace context (a W3C traceparent "
                           "header) to the server, for a traced proxy: on|off (off by "
                           "default)", _traceparent, _traceparent_argument),
    "output": Command("what a cell's view saves in the notebook: compact (the default) "
                      "or full", _output, _output_argument),
    "price": Command("price override in USD per million tokens", _price, _price_arguments),
    "clear": Command("drop collected spans", _clear),
    "save": Command("write the session's spans to PATH as OTLP JSON lines", _file,
                    _path_argument),
    "load": Command("read the spans of PATH (OTLP JSON lines, or the traces saved in an "
                    "executed .ipynb) into the session", _file, _path_argument),
    "forward": Command("forward spans over OTLP to URL; forward off stops", _forward,
                       _forward_arguments),
    "store": Command("the local store of every span: where, size, sessions; PATH moves "
                     "it, off stops writing", _store, _store_argument),
    "restore": Command("bring the spans of this notebook's earlier sessions (or SESSION) "
                       "back from the store", _restore, _restore_argument),
}


def build_llmtrace_parser(commands: dict[str, Command]) -> MagicParser:
    """The ``%llmtrace`` parser: a subparser per command plus ``help``. Its usage lists
    every subparser's generated usage line."""
    top = MagicParser("%llmtrace", description=(
        "Tracing of LLM calls in this notebook. %llmtrace alone is %llmtrace status; "
        "%llmtrace help COMMAND or %llmtrace COMMAND -h describes one command."))
    _add_help(top)
    choices = top.add_subparsers(title="commands", dest="command", required=True,
                                 parser_class=MagicParser)
    for name, command in commands.items():
        sub = choices.add_parser(name, help=_h(command.help), description=command.help)
        _add_help(sub)
        command.arguments(sub)
        top.subcommands[name] = sub
    helper = choices.add_parser("help", help="this help, or one command's",
                                description="This help, or one command's.")
    _add_help(helper)
    helper.add_argument("topic", nargs="?", choices=[*commands, "help"], metavar="COMMAND",
                        help="the command to describe")
    top.subcommands["help"] = helper
    # "usage: %llmtrace status\n       %llmtrace auto on|off\n…", wrapped lines kept
    indent = " " * len("usage: ")
    usages = "\n".join(indent + sub.format_usage().rstrip()[len(indent):]
                       for sub in top.subcommands.values())
    top.usage = _h(usages[len(indent):])  # argparse %-formats a usage it is given
    return top


_llmtrace_parser = build_llmtrace_parser(COMMANDS)


def parse_llmtrace_line(line: str, parser: MagicParser = _llmtrace_parser,
                        ) -> tuple[str, argparse.Namespace, MagicParser]:
    """Arguments of ``%llmtrace`` → (command, its arguments, its parser); no command is
    ``status``. ``UsageError`` if bad; ``_HelpShown`` once ``-h`` printed a help."""
    words = _split(parser, line) or ["status"]
    args, extra = parser.parse_known_args(words)
    command = parser.subcommands[args.command]
    if extra:  # words the command did not take: argparse's message, the command's usage
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.command, args, command


# -- magics ---------------------------------------------------------------------------------


@magics_class
class TraceMagics(Magics):
    def __init__(self, shell: InteractiveShell, hooks: CellHooks) -> None:
        super().__init__(shell)
        self.hooks = hooks

    @cell_magic
    def trace(self, line: str, cell: str) -> None:
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
        try:
            command, args, parser = parse_llmtrace_line(line)
        except _HelpShown:  # -h: argparse printed the help
            return
        if command == "help":
            topics = _llmtrace_parser.subcommands
            print((topics[args.topic] if args.topic else _llmtrace_parser).format_help(), end="")
            return
        COMMANDS[command].run(args, parser)


# `%llmtrace?` and `%%trace?` show the parsers' help, as IPython's magic_arguments does
TraceMagics.llmtrace.__doc__ = _llmtrace_parser.format_help()
TraceMagics.trace.__doc__ = _trace_parser.format_help()


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

"""The local store with real kernels: a restart, kill -9, history, an unusable place."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from frameworks.kernel import Kernel

from llmtrace_nb._keep.history import DETAIL_COLUMNS
from llmtrace_nb.demo import DemoServer

NOTEBOOK = "/home/someone/analysis.ipynb"
SETUP = ("%load_ext llmtrace_nb\nimport openai, llmtrace_nb\n"
         "client = openai.OpenAI(base_url={url!r}, api_key='sk-demo', max_retries=0)")
CALLS = ("%%trace {name}\nfor i in range({n}):\n"
         "    client.chat.completions.create(model='gpt-4o-mini', "
         "messages=[{{'role': 'user', 'content': f'question {{i}}'}}])")


def _value(kernel: Kernel, expression: str) -> object:
    out = kernel.run(f"import json as _j\nprint('@@' + _j.dumps({expression}, default=str))")
    return json.loads(out.split("@@", 1)[1])


def _env(store: Path, notebook: str = NOTEBOOK) -> dict[str, str]:
    return {"LLMTRACE_NB_STORE": str(store), "JPY_SESSION_NAME": notebook}


def test_after_a_restart_one_command_brings_every_span_back(tmp_path: Path,
                                                           demo_server: DemoServer) -> None:
    store = tmp_path / "store" / "spans.sqlite"
    with Kernel(env=_env(store)) as first:
        first.run(SETUP.format(url=demo_server.base_url))
        first.run(CALLS.format(name="ask", n=3))
        before = _value(first, "sorted(llmtrace_nb.spans_df()['span_id'])")
        cost = _value(first, "float(llmtrace_nb.cells_df()['cost_usd'].sum())")
        first.stop()  # as a restart does: the last spans are written on the way out
    with Kernel(env=_env(store)) as second:
        loaded = second.run(SETUP.format(url=demo_server.base_url))
        assert f"{len(before)} spans from this notebook's earlier sessions" in loaded
        assert "%llmtrace restore" in loaded
        out = second.run("%llmtrace restore")
        assert f"restored {len(before)} spans" in out
        assert _value(second, "sorted(llmtrace_nb.spans_df()['span_id'])") == before
        cells = _value(second, "llmtrace_nb.cells_df()[['cell_name', 'llm_calls', 'tags']]"
                               ".to_dict('records')")
        assert cells == [{"cell_name": "ask", "llm_calls": 3, "tags": {"session": "1"}}]
        assert _value(second, "float(llmtrace_nb.cells_df()['cost_usd'].sum())") == \
            pytest.approx(cost)
        assert _value(second, "llmtrace_nb.view('ask').document['totals']['llm_calls']") == 3
        # restored spans are not stored again: the store still holds them once
        second.run(CALLS.format(name="more", n=2))
        history = _value(second, "{str(k): int(v) for k, v in llmtrace_nb.history()"
                                 ".groupby('session')['span_id'].count().items()}")
        assert history == {"1": len(before), "2": 3}
        shown = second.run("%llmtrace store")
        assert str(store) in shown and "2 sessions" in shown and NOTEBOOK in shown


def test_kill_9_mid_cell_loses_at_most_the_last_second(tmp_path: Path,
                                                        demo_server: DemoServer) -> None:
    store = tmp_path / "spans.sqlite"
    with Kernel(env=_env(store)) as doomed:
        doomed.run(SETUP.format(url=demo_server.base_url))
        doomed.kc.execute("%%trace endless\nimport sys\nn = 0\nwhile True:\n"
                          "    client.chat.completions.create(model='gpt-4o-mini', "
                          "messages=[{'role': 'user', 'content': 'hi'}])\n"
                          "    n += 1\n    print(n, flush=True)")
        counts = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            msg = doomed.kc.get_iopub_msg(timeout=10)
            if msg["msg_type"] == "stream":
                counts += [int(x) for x in msg["content"]["text"].split()]
        assert doomed.km is not None
        doomed.km.signal_kernel(signal.SIGKILL)
        made = counts[-1]
    rate = made / 4
    with Kernel(env=_env(store)) as after:
        after.run(SETUP.format(url=demo_server.base_url))
        after.run("%llmtrace restore")
        calls = _value(after, "len(llmtrace_nb.llm_calls_df())")
        assert made - rate <= calls <= made + rate  # the last second at most
        # the cell never ended: its calls are there, and its view says so
        assert _value(after, "llmtrace_nb.view('endless').document['totals']['llm_calls']") \
            == calls


def test_history_spans_sessions_and_notebooks(tmp_path: Path, demo_server: DemoServer) -> None:
    store = tmp_path / "spans.sqlite"
    for notebook, n in (("/a.ipynb", 2), ("/b.ipynb", 3), ("/a.ipynb", 1)):
        with Kernel(env=_env(store, notebook)) as k:
            k.run(SETUP.format(url=demo_server.base_url))
            k.run(CALLS.format(name="run", n=n))
            k.stop()
    with Kernel(env=_env(store, "/c.ipynb")) as k:
        k.run(SETUP.format(url=demo_server.base_url))
        calls = _value(k, "{k: int(v) for k, v in llmtrace_nb.summary(spans=llmtrace_nb"
                          ".history(), by='notebook')['calls'].items()}")
        assert calls == {"/a.ipynb": 3, "/b.ipynb": 3}
        only_a = _value(k, "int(llmtrace_nb.history(notebook='/a.ipynb')['session']"
                           ".nunique())")
        assert only_a == 2
        later = _value(k, "len(llmtrace_nb.history(since='2100-01-01'))")
        assert later == 0
        columns = _value(k, "list(llmtrace_nb.history().columns)")
        assert columns[-2:] == ["session", "notebook"]
        every = _value(k, "list(llmtrace_nb.spans_df().columns)")
        assert columns[:-2] == [c for c in every if c not in DETAIL_COLUMNS]
        assert _value(k, "list(llmtrace_nb.history(details=True).columns)")[:-2] == every
        said = _value(k, "[m[0]['content'] for m in llmtrace_nb.history(details=True)"
                         "['output_messages'].dropna()][:1]")
        assert said and said[0]


def test_an_unusable_location_is_said_and_the_notebook_goes_on(tmp_path: Path,
                                                               demo_server: DemoServer) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with Kernel(env=_env(blocker / "spans.sqlite")) as k:
        loaded = k.run(SETUP.format(url=demo_server.base_url))
        assert "cannot be used" in loaded and "kept in memory only" in loaded
        k.run(CALLS.format(name="still works", n=1))
        assert _value(k, "len(llmtrace_nb.llm_calls_df())") == 1
        assert "kept in memory only" in k.run("%llmtrace status")
        off = k.run(f"%llmtrace store {tmp_path / 'ok.sqlite'}")
        assert str(tmp_path / "ok.sqlite") in off
        assert "store off" in k.run("%llmtrace store off")

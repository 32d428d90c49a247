"""Forwarding to a real Arize Phoenix on loopback, read back with Phoenix's own client.

Phoenix runs from a virtual environment of its own (see phoenix_server.py). Its ingestion
is asynchronous: the test polls with a deadline instead of asserting at once.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import openai
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb

from conftest import run
from phoenix_server import phoenix_python, serve

READ_BACK = """
import json, sys
from phoenix.client import Client
df = Client(base_url=sys.argv[1]).spans.get_spans_dataframe(project_identifier="default")
cols = [c for c in ("context.span_id", "name", "attributes.llm.token_count.prompt",
                    "attributes.llm.token_count.completion") if c in df.columns]
print(json.dumps(df[cols].astype(object).where(df[cols].notna(), None).to_dict("records"),
                 default=str))
"""


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("phoenix")) as url:
        yield url


def test_spans_reach_phoenix(shell: InteractiveShell, demo_server: object,
                             phoenix: str) -> None:
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url,  # type: ignore[attr-defined]
                                            api_key="k")
    run(shell, f"%llmtrace forward {phoenix}/v1/traces")
    try:
        run(shell, "%%trace to phoenix --quiet\n"
                   "for q in ['one', 'two words', 'three more words']:\n"
                   "    client.chat.completions.create(model='gpt-4o-mini',\n"
                   "        messages=[{'role': 'user', 'content': q}])")
        ours = llmtrace_nb.spans_df().set_index("span_id")
        deadline = time.monotonic() + 120
        theirs: list[dict] = []
        while time.monotonic() < deadline:
            proc = subprocess.run([str(phoenix_python()), "-c", READ_BACK, phoenix],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr[-2000:]
            theirs = json.loads(proc.stdout.strip().splitlines()[-1])
            if len(theirs) >= len(ours):
                break
            time.sleep(2)
        assert len(theirs) == len(ours) == 4
        for span in theirs:
            row = ours.loc[span["context.span_id"]]
            assert span["name"] == row["name"]
            if row["kind"] == "llm":
                assert span["attributes.llm.token_count.prompt"] == row["input_tokens"]
                assert span["attributes.llm.token_count.completion"] == row["output_tokens"]
    finally:
        run(shell, "%llmtrace forward off")

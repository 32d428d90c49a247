"""The static HTML view of a trace document (placeholder until the full waterfall lands)."""

from __future__ import annotations

import html as _html
from collections.abc import Mapping
from typing import Any

from . import text


def render(doc: Mapping[str, Any]) -> str:
    return f"<pre class=\"llmtrace-summary\">{_html.escape(text.summary(doc))}</pre>"

"""``python -m llmtrace_nb.demo [--port N] [--latency S] [--chunk-delay S]``."""

import sys

from .server import main

sys.exit(main())

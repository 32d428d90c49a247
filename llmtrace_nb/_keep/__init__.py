"""Keep: spans written to an embedded local store, and read back (restore, history)."""

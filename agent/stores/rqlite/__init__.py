"""rqlite: its HTTP API, and stale entries dropped before rqlited joins by itself."""

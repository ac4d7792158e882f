"""A store that exists in the tests only: its whole folder, as a new non-raft store's."""

"""etcd: its v3 JSON gateway, learner joins before start, the member id in its WAL."""

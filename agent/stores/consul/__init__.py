"""Consul servers: raft configuration, autopilot health, graceful leave through the agent."""

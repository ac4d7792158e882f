"""The agent's error hierarchy and the exit code each error maps to."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[str] = list(problems or [])

    def lines(self) -> list[str]:
        """One readable line per problem (or the message when there is no list)."""
        return self.problems or [self.message]


class ConfigError(AgentError):
    """The configuration is invalid; nothing was done."""

    exit_code = 2


class RenderError(AgentError):
    """A template could not be rendered or written; the output dir is untouched."""

    exit_code = 3


class DiscoveryError(AgentError):
    """DNS discovery did not find what was needed before its deadline."""

    exit_code = 4


class BackendUnavailable(AgentError):
    """The store's API did not answer (retryable)."""

    exit_code = 5


class BackendError(AgentError):
    """The store answered, but not in a way we can use."""

    exit_code = 6


class KubeError(AgentError):
    """The Kubernetes API refused or failed a request."""

    exit_code = 7

    def __init__(self, message: str, *, retryable: bool = False,
                 not_found: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable  # timeouts, 5xx, 429: asking again may work
        # The API server said the object asked for does not exist (a 404 Status naming
        # it): not a wrong URL, a proxy's page or another kind missing.
        self.not_found = not_found


class DeadlineExceeded(AgentError):
    """A polled condition did not hold before its deadline."""

    exit_code = 8

    def __init__(self, what: str, *, waited_seconds: float, last_reason: str) -> None:
        super().__init__(
            f"gave up waiting for {what} after {waited_seconds:.1f}s: {last_reason}"
        )
        self.what = what
        self.waited_seconds = waited_seconds
        self.last_reason = last_reason


class RemovalDenied(AgentError):
    """The store refused a member's removal for good (no permission): retrying cannot
    help."""

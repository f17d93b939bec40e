"""Errors the router reports to its callers."""

from __future__ import annotations


class CommRouterError(Exception):
    """Base of every error commrouter raises."""


class ValueNotJSON(CommRouterError, TypeError):
    """A value that cannot be encoded as JSON was refused at the edge."""

    def __init__(self, address: str, value_type: str, detail: str = "") -> None:
        self.address = address
        self.value_type = value_type
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"value for address {address!r} is not JSON data: "
            f"type {value_type} cannot be encoded{extra}"
        )


class InvalidAddress(CommRouterError, ValueError):
    """An address that is not a non-empty string, or a private one used by a caller."""


class FrontEndUnavailable(CommRouterError):
    """The front-end could not be installed or did not open the comm in time."""


class LinkNotOpen(CommRouterError):
    """An operation needed the open comm and there is none."""


class PublishFailed(CommRouterError):
    """The host's publisher raised while sending toward the front-end."""


class ActorGivenUp(CommRouterError):
    """The actor that would answer crashed too often and the supervisor gave up on it."""


class RouterNotRunning(CommRouterError):
    """The router was used before `start()` or after `stop()`."""


class HandlerFailed(CommRouterError):
    """The actor handling a request failed on it (a bug); the request was not carried out."""

"""Brokers the outbox relay publishes to (issue #17): the port, and finding a broker by URL.

A broker takes a batch of `Message` in order and says how many of them, from the first, it has
confirmed; the relay marks only those published. Built in: ``nats://`` (NATS JetStream, through
nats-py) and ``amqp://`` / ``amqps://`` (RabbitMQ with publisher confirms, through aio-pika). Any
other scheme is looked up in the entry-point group ``lifecycle.relays``: the entry point's name
is the scheme, its value a factory ``(url: str, *, prefix: str) -> Broker``. In a plug-in's
``pyproject.toml``::

    [project.entry-points."lifecycle.relays"]
    kafka = "acme_lifecycle.kafka:KafkaBroker"

The clients are optional extras (``lifecycle[nats]``, ``lifecycle[rabbitmq]``, both in
``lifecycle[relay]``) and imported only when their scheme is used, so the base install stays
lean. Entry points are read when a URL is looked up, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Protocol, cast
from urllib.parse import SplitResult, urlsplit

from lifecycle.errors import LifecycleError

__all__ = [
    "RELAYS_GROUP",
    "Broker",
    "BrokerFactory",
    "BrokerUnavailable",
    "InvalidBrokerUrl",
    "Message",
    "UnknownBroker",
    "broker_for",
    "broker_schemes",
    "redacted",
]

RELAYS_GROUP = "lifecycle.relays"


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox event as a broker sees it."""

    #: the event's id: ``Nats-Msg-Id`` on NATS (the stream drops a repeat), ``message_id`` on AMQP
    id: str
    #: where it goes, already prefixed by the caller: ``"lifecycle.order.shipped"``
    subject: str
    #: the event JSON (UTF-8), published as is with content type application/json
    body: bytes
    #: the aggregate, ``"order/o-1"``: header ``Lifecycle-Aggregate``, for brokers that partition by key
    key: str


class Broker(Protocol):
    """What the relay publishes through."""

    def publish(self, messages: Sequence[Message]) -> int:
        """Publish in the order given; return only when the broker has confirmed them, with the
        number of LEADING messages it confirmed (``len(messages)`` when all were). Raise
        `BrokerUnavailable` when the broker cannot be reached / the connection is lost before any
        confirm."""
        ...

    def close(self) -> None:
        """Let go of the connection (and anything else held); publishing afterwards reconnects
        or fails, as the broker documents."""
        ...


BrokerFactory = Callable[..., Broker]


class BrokerUnavailable(LifecycleError):
    """The broker could not be reached, the connection was lost, or nothing was confirmed in
    time. Retryable: the relay backs off and publishes the same events again (the broker's dedupe,
    or the consumer's, drops what arrived twice)."""

    exit_code = 3

    def __init__(self, url: str, reason: str):
        self.url, self.reason = redacted(url), reason
        super().__init__(f"broker {self.url} is unavailable ({reason}); try again when it is back")


class InvalidBrokerUrl(LifecycleError, ValueError):
    """A broker URL that names no broker we can build (no host, a bad port or option). Raised
    before anything connects."""

    exit_code = 2

    def __init__(self, url: str, reason: str, *, message: str | None = None):
        self.url, self.reason = redacted(url), reason
        super().__init__(message or f"invalid broker URL {self.url}: {reason}")


class UnknownBroker(InvalidBrokerUrl):
    """No broker for the URL's scheme: neither built in nor declared under ``lifecycle.relays``,
    or built in but its client library is not installed (``missing`` names the extra)."""

    def __init__(self, url: str, scheme: str, known: Iterable[str], *, missing: str | None = None):
        self.scheme = scheme
        self.known = tuple(sorted(known))
        self.missing = missing
        if missing is not None:
            reason = (f"the {scheme} broker needs its client library: "
                      f"pip install 'lifecycle[{missing}]'")
        else:
            reason = f"no broker for scheme {scheme!r}; known: {', '.join(self.known)}"
        super().__init__(url, reason, message=f"broker URL {redacted(url)}: {reason}")


def redacted(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``: what errors and logs may print."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def split(url: str) -> SplitResult:
    """The parts of a built-in broker's URL; `InvalidBrokerUrl` when it has no host or a bad
    port, so a typo fails here instead of as a connection refused later."""
    try:
        parts = urlsplit(url)
        port = parts.port  # urlsplit checks the port only when asked
    except ValueError as exc:
        raise InvalidBrokerUrl(url, str(exc)) from exc
    if not parts.hostname:
        raise InvalidBrokerUrl(url, "no host (expected scheme://host:port)")
    del port
    return parts


def _jetstream(url: str, *, prefix: str) -> Broker:
    try:
        from lifecycle.brokers.nats import JetStreamBroker
    except ModuleNotFoundError as exc:
        if exc.name != "nats":
            raise
        raise UnknownBroker(url, "nats", broker_schemes(), missing="nats") from exc
    return JetStreamBroker(url, prefix=prefix)


def _rabbitmq(url: str, *, prefix: str) -> Broker:
    try:
        from lifecycle.brokers.rabbitmq import RabbitMQBroker
    except ModuleNotFoundError as exc:
        if exc.name not in {"aio_pika", "aiormq", "pamqp"}:
            raise
        raise UnknownBroker(url, urlsplit(url).scheme, broker_schemes(), missing="rabbitmq") from exc
    return RabbitMQBroker(url, prefix=prefix)


def builtin_brokers() -> Mapping[str, BrokerFactory]:
    """The brokers lifecycle ships, by URL scheme (their clients may still be missing)."""
    return {"nats": _jetstream, "amqp": _rabbitmq, "amqps": _rabbitmq}


def _declared() -> list[metadata.EntryPoint]:
    # Looked up through the module so tests can substitute metadata.entry_points.
    return list(metadata.entry_points(group=RELAYS_GROUP))


def broker_schemes() -> list[str]:
    """Every URL scheme a broker is available for: built in and installed."""
    return sorted({*builtin_brokers(), *(ep.name for ep in _declared())})


def _factory(url: str, scheme: str) -> BrokerFactory:
    builtins = builtin_brokers()
    if scheme in builtins:
        # A plug-in cannot take over a built-in scheme: which one runs would depend on what
        # happens to be installed.
        return builtins[scheme]
    declared = [ep for ep in _declared() if ep.name == scheme]
    if not declared:
        raise UnknownBroker(url, scheme, broker_schemes())
    if len(declared) > 1:
        providers = ", ".join(f"{ep.value} (from {ep.dist.name if ep.dist else 'an unnamed distribution'})"
                              for ep in declared)
        raise InvalidBrokerUrl(url, f"scheme {scheme!r} is declared more than once: {providers}")
    entry_point = declared[0]
    try:
        loaded = entry_point.load()
    # A plug-in's import can fail in any way its author allowed; report it as this broker's.
    except Exception as exc:
        raise InvalidBrokerUrl(url, f"entry point {entry_point.value} failed to load: {exc}") from exc
    if not callable(loaded):
        raise InvalidBrokerUrl(url, f"entry point {entry_point.value} is not callable")
    return cast(BrokerFactory, loaded)


def broker_for(url: str, *, prefix: str = "lifecycle") -> Broker:
    """The broker ``url`` names, not yet connected (the first publish connects).

    ``prefix`` is for brokers that set something up from it (the NATS stream's subjects
    ``"{prefix}.>"``); the subjects of the messages arrive already prefixed. `UnknownBroker` for a
    scheme nobody provides, `InvalidBrokerUrl` for a URL without a host: both before any
    connection is tried.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise InvalidBrokerUrl(url, str(exc)) from exc
    if not scheme:
        raise UnknownBroker(url, "", broker_schemes())
    broker = _factory(url, scheme)(url, prefix=prefix)
    missing = [member for member in ("publish", "close") if not callable(getattr(broker, member, None))]
    if missing:
        # Clearer now than an AttributeError in the relay's loop.
        raise InvalidBrokerUrl(url, f"the {scheme} broker built does not implement {', '.join(missing)}")
    return broker

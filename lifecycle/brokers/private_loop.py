"""The sync face of a broker whose client is asyncio-only (nats-py, aio-pika): the relay is plain
sync code, so such a broker owns a private event loop and runs each call on it to completion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lifecycle.brokers import Message


class OnPrivateLoop:
    """`publish` and `close` of the `Broker` port, run on a loop of the object's own; a subclass
    writes ``_publish`` and ``_disconnect`` as coroutines."""

    _loop: asyncio.AbstractEventLoop | None = None

    def publish(self, messages: Sequence[Message]) -> int:
        """Publish ``messages`` in order; the number of leading ones the broker confirmed.
        `BrokerUnavailable` if none was."""
        if not messages:
            return 0
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._publish(messages))

    def close(self) -> None:
        """Close the connection and the private loop; a later publish starts both afresh."""
        if self._loop is None or self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(self._disconnect())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()
            self._loop = None

    async def _publish(self, messages: Sequence[Message]) -> int:
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

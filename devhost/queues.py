"""Queue triggers: poll an Azure Storage queue (Azurite locally) the way the Functions host does.

Message encoding: like the host, messages are base64-decoded by default (host.json
``extensions.queues.messageEncoding`` = ``"base64"``), so producers must base64-encode the text
they send, e.g. ``QueueClient(..., message_encode_policy=BinaryBase64EncodePolicy())`` or
``send_message(base64.b64encode(data).decode())``. With ``"none"`` the text is passed as UTF-8.
A message that is not valid base64 goes straight to ``<queue>-poison``, as in the host.

Retries: a failed invocation makes the message visible again after ``visibilityTimeout``; once a
message has been dequeued ``maxDequeueCount`` times and fails again it is copied, unchanged, to
``<queue>-poison`` and deleted. While a function runs its message stays invisible (the lease is
renewed), so a long-running function is not picked up twice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as FunctionsQueueMessage
from azure.storage.queue import QueueClient, QueueMessage

from devhost.settings import QueueOptions

log = logging.getLogger("devhost.queue")

_MIN_BACKOFF = 0.1
_DEFAULT_LEASE = timedelta(seconds=60)


def queue_client(connection_string: str, queue_name: str) -> QueueClient:
    """A client that fails fast: the poll loop does its own retrying, the SDK's waits 15 s+."""
    return QueueClient.from_connection_string(
        connection_string, queue_name, retry_total=0, connection_timeout=2, read_timeout=30
    )


def decode_body(content: str, encoding: str) -> bytes:
    """Message text to the bytes a function sees; raises ValueError for invalid base64."""
    if encoding == "none":
        return content.encode("utf-8")
    try:
        return base64.b64decode("".join(content.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"message is not valid base64: {exc}") from exc


class _Lease:
    """Keeps a message invisible while its function runs, tracking the changing pop receipt."""

    def __init__(self, client: QueueClient, message: QueueMessage, duration: timedelta) -> None:
        self.pop_receipt: str | None = message.pop_receipt
        self._client = client
        self._id = message.id
        self._duration = duration
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="queue-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        interval = self._duration.total_seconds() / 2
        while not self._done.wait(interval):
            try:
                updated = self._client.update_message(
                    self._id,
                    self.pop_receipt,
                    visibility_timeout=int(self._duration.total_seconds()),
                )
                self.pop_receipt = updated.pop_receipt
            except AzureError as exc:
                log.warning("could not renew lease of message %s: %s", self._id, _brief(exc))

    def release(self) -> str | None:
        self._done.set()
        self._thread.join()
        return self.pop_receipt


def _brief(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class QueuePoller:
    """Background poller feeding one queue-triggered function; survives storage outages."""

    def __init__(
        self,
        function_name: str,
        queue_name: str,
        connection_string: str,
        run: Callable[[FunctionsQueueMessage], Any],
        options: QueueOptions | None = None,
        lease: timedelta = _DEFAULT_LEASE,
    ) -> None:
        self.function_name = function_name
        self.queue_name = queue_name
        self.poison_queue_name = f"{queue_name}-poison"
        self.options = options or QueueOptions()
        self._run = run
        self._lease = lease
        self._client = queue_client(connection_string, queue_name)
        self._poison_client = queue_client(connection_string, self.poison_queue_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue_ready = False
        self._outage = False

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"queue-{self.function_name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; invocations already running finish on their own (daemon threads)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        max_backoff = max(self.options.max_polling_interval.total_seconds(), _MIN_BACKOFF)
        backoff = _MIN_BACKOFF
        while not self._stop.is_set():
            try:
                found = self._poll_once()
            except Exception:
                # Whatever goes wrong, the poller must keep going, as the host's listener does.
                log.exception(
                    "%s: unexpected error polling %r", self.function_name, self.queue_name
                )
                found = False
            if found:
                backoff = _MIN_BACKOFF
            else:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)

    def _poll_once(self) -> bool:
        """Receive one batch and process it concurrently; False when nothing was received."""
        try:
            messages = self._receive()
        except AzureError as exc:
            self._report_outage(exc)
            return False
        workers = [
            threading.Thread(target=self._process_safely, args=(m,), daemon=True) for m in messages
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return bool(messages)

    def _receive(self) -> list[QueueMessage]:
        if not self._queue_ready:
            with contextlib.suppress(ResourceExistsError):
                self._client.create_queue()
            self._queue_ready = True
        try:
            messages = list(
                self._client.receive_messages(
                    messages_per_page=self.options.batch_size,
                    max_messages=self.options.batch_size,
                    visibility_timeout=int(self._lease.total_seconds()),
                )
            )
        except AzureError:
            # The queue may be gone (e.g. an in-memory Azurite restarted): recreate next time.
            self._queue_ready = False
            raise
        if self._outage:
            log.info("%s: queue %r reachable again", self.function_name, self.queue_name)
            self._outage = False
        return messages

    def _report_outage(self, exc: AzureError) -> None:
        level = logging.DEBUG if self._outage else logging.WARNING
        log.log(
            level,
            "%s: cannot poll queue %r (%s); retrying",
            self.function_name,
            self.queue_name,
            _brief(exc),
        )
        self._outage = True

    def _process_safely(self, message: QueueMessage) -> None:
        try:
            self._process(message)
        except Exception:
            # The message stays leased and comes back once the lease runs out.
            log.exception("%s: error handling message %s", self.function_name, message.id)

    def _process(self, message: QueueMessage) -> None:
        if message.dequeue_count and message.dequeue_count > self.options.max_dequeue_count:
            self._poison(message, message.pop_receipt, "dequeue count already exceeded")
            return
        try:
            body = decode_body(message.content or "", self.options.message_encoding)
        except ValueError as exc:
            self._poison(message, message.pop_receipt, str(exc))
            return
        lease = _Lease(self._client, message, self._lease)
        try:
            self._run(self._functions_message(message, body))
        except Exception:
            receipt = lease.release()
            log.exception(
                "%s: failed on message %s (dequeue count %s)",
                self.function_name,
                message.id,
                message.dequeue_count,
            )
            self._after_failure(message, receipt)
            return
        receipt = lease.release()
        try:
            self._client.delete_message(message.id, receipt)
        except AzureError as exc:
            log.warning("%s: could not delete message %s: %s", self.function_name, message.id, exc)

    @staticmethod
    def _functions_message(message: QueueMessage, body: bytes) -> FunctionsQueueMessage:
        return FunctionsQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    def _after_failure(self, message: QueueMessage, receipt: str | None) -> None:
        if (message.dequeue_count or 0) >= self.options.max_dequeue_count:
            self._poison(message, receipt, f"failed {message.dequeue_count} times")
            return
        try:
            self._client.update_message(
                message.id,
                receipt,
                visibility_timeout=int(self.options.visibility_timeout.total_seconds()),
            )
        except AzureError as exc:
            log.warning(
                "%s: could not schedule retry of %s: %s", self.function_name, message.id, exc
            )

    def _poison(self, message: QueueMessage, receipt: str | None, reason: str) -> None:
        try:
            with contextlib.suppress(ResourceExistsError):
                self._poison_client.create_queue()
            self._poison_client.send_message(message.content)
            self._client.delete_message(message.id, receipt)
        except AzureError as exc:
            log.warning("%s: could not poison message %s: %s", self.function_name, message.id, exc)
            return
        log.error(
            "%s: message %s moved to %r (%s)",
            self.function_name,
            message.id,
            self.poison_queue_name,
            reason,
        )

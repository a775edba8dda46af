"""The load clients' resend policy (fast: a raw loopback server, no model, no Worker)."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from scripts.load import DEV_PROXY_MAX_RETRIES, PlannedRequest, local_client, send_all

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


def read_request(connection: socket.socket) -> None:
    """Read the whole request, so that closing sends a clean FIN rather than a reset."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    headers = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in headers if line.startswith(b"content-length"))
    while len(body) < length:
        body += connection.recv(65536)


def serve(listener: socket.socket, drop_first: int, accepted: list[int]) -> None:
    """Answer each connection's first request, after closing the first `drop_first` connections unanswered."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            read_request(connection)
            accepted.append(1)
            if len(accepted) > drop_first:
                connection.sendall(ANSWER)


@contextmanager
def dropping_server(drop_first: int) -> Iterator[tuple[str, list[int]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    threading.Thread(target=serve, args=(listener, drop_first, accepted), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()


def send_one(drop_first: int):
    with dropping_server(drop_first) as (url, accepted):
        planned = [PlannedRequest("/v1/generate", {"prompt": "x"})]
        outcomes, _ = send_all(url, planned, concurrency=1, timeout_s=10)
    return outcomes[0], len(accepted)


def test_a_connection_closed_without_an_answer_is_resent():
    outcome, connections = send_one(drop_first=1)
    assert (outcome.status, outcome.dev_proxy_retries, connections) == (200, 1, 2)
    assert outcome.content == b'{"ok":true}'


def test_a_server_that_never_answers_is_an_error_after_the_resends():
    outcome, connections = send_one(drop_first=100)
    assert outcome.status == 0 and "without sending a response" in outcome.error
    assert connections == DEV_PROXY_MAX_RETRIES + 1


def test_the_plain_client_resends_a_connection_closed_without_an_answer():
    with dropping_server(drop_first=1) as (url, accepted), local_client(url) as client:
        response = client.post("/v1/generate", json={"prompt": "x"})
    assert (response.status_code, response.content, len(accepted)) == (200, b'{"ok":true}', 2)

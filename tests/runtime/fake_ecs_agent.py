"""A stand-in for the ECS agent's task-protection endpoint: a real HTTP server on loopback that records
each PUT and answers as the agent does (200 `{"protection": ...}`), or fails on request."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEcsAgent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self._failures: list[str] = []
        self._lock = threading.Lock()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with agent._lock:
                    agent.calls.append((self.path, body))
                    failure = agent._failures.pop(0) if agent._failures else None
                if failure == "status":
                    self._answer(500, {"error": {"Code": "ServerException", "Message": "agent busy"}})
                elif failure == "failure":
                    self._answer(200, {"failure": {"Arn": "task-1", "Reason": "TASK_NOT_VALID"}})
                else:
                    protection = {"ProtectionEnabled": body["ProtectionEnabled"], "TaskArn": "task-1"}
                    self._answer(200, {"protection": protection})

            def _answer(self, status: int, document: dict) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # ECS_AGENT_URI has a path (`http://169.254.170.2/api/<task id>`); the runtime appends to it.
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/api/task-1"

    def fail_next(self, failures: list[str]) -> None:
        with self._lock:
            self._failures.extend(failures)

    def bodies(self) -> list[dict]:
        with self._lock:
            return [body for _, body in self.calls]

    def __enter__(self) -> "FakeEcsAgent":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

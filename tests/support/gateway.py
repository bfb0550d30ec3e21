"""A gateway under test (nginx and the ingest's gunicorn, started by `pistats services`), seen
from outside: HTTP, its logs, its processes, and the moto stream it puts into."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pistats.contract import decode_record
from pistats.gateway.nginx import nginx_command

PISTATS = str(Path(sys.executable).with_name("pistats"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def event(event_id: str, **overrides) -> dict:
    return {"event_id": event_id, "type": "page_view", "property_id": "site-1", "user_id": "u-1",
            "timestamp": "2026-11-26T11:00:00Z", **overrides}


@dataclass
class Response:
    status: int
    body: dict | None
    headers: dict[str, str]


@dataclass
class Gateway:
    port: int
    state: Path
    stream: str
    kinesis: object
    env: dict[str, str] = field(repr=False)

    @property
    def nginx_home(self) -> Path:
        return self.state / "gateway"

    @property
    def ingest_home(self) -> Path:
        return self.state / "gateway-ingest"

    @property
    def access_log(self) -> Path:
        return self.nginx_home / "access.log"

    def log_lines(self) -> list[dict]:
        """The access log, one dict per line (each line must be JSON)."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines()]

    def logs(self) -> dict[Path, str]:
        """Every log either process wrote."""
        return {path: path.read_text(errors="replace") for path in self.state.rglob("*.log")}

    def ingest_requests(self) -> int:
        """Requests gunicorn served (its access log), health checks left out."""
        path = self.ingest_home / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return sum(1 for line in lines if " /healthz" not in line)

    def wait_ingest_requests(self, expected: int) -> None:
        """Wait until gunicorn logged ``expected`` requests (it logs after answering), then check a
        moment later that no more came."""
        wait_until(lambda: self.ingest_requests() >= expected)
        time.sleep(0.3)
        assert self.ingest_requests() == expected

    def log_line(self, status: int) -> dict:
        """The one access log line of that status; nginx writes it once the connection is done
        with (after lingering on a 413), so it is waited for."""
        wait_until(lambda: any(line["status"] == status for line in self.log_lines()))
        (line,) = [line for line in self.log_lines() if line["status"] == status]
        return line

    def post(self, body, key: str | None, *, headers: dict | None = None, path: str = "/v1/events",
             timeout: float = 15) -> Response:
        """One POST on a connection of its own; the body is JSON unless given as bytes."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **({"X-Pistats-Key": key} if key else {}), **(headers or {})}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", path, data, sent)
            response = connection.getresponse()
            raw = response.read()
            return Response(response.status, json.loads(raw) if raw else None, dict(response.headers))
        finally:
            connection.close()

    def get(self, path: str) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            raw = response.read()
            return Response(response.status, json.loads(raw) if raw else None, dict(response.headers))
        finally:
            connection.close()

    def records(self) -> list[dict]:
        """Every record of the stream, decoded."""
        found = []
        for shard in self.kinesis.list_shards(StreamName=self.stream)["Shards"]:
            iterator = self.kinesis.get_shard_iterator(
                StreamName=self.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while iterator:
                response = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)
                found += [decode_record(r["Data"]) for r in response["Records"]]
                if not response["Records"]:
                    break
                iterator = response.get("NextShardIterator")
        return found

    def services(self, action: str, *names: str) -> subprocess.CompletedProcess:
        return subprocess.run([PISTATS, "services", action, *(names or ["gateway"])], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def worker_pids(self) -> set[int]:
        """gunicorn's workers: the master's children."""
        master = int((self.ingest_home / "gunicorn.pid").read_text())
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return {int(pid) for pid in children}

    def nginx_worker_pids(self) -> set[int]:
        master = int((self.nginx_home / "nginx.pid").read_text())
        return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}

    def reload_nginx(self) -> None:
        subprocess.run(nginx_command(self.nginx_home, "-s", "reload"), check=True, capture_output=True)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)

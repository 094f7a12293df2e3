"""moto's S3 server on 127.0.0.1 for tests and benchmarks: a loopback S3 for DVC remotes.

The benchmarks import this module as `tests.servers` (run from the repository root), so it imports nothing
from the tests.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import boto3

from carvana.server.processes import HOST, free_port, stop_group, wait_for_http

START_TIMEOUT = 30
ADMIN_KEY = "moto-admin"  # access key id and secret of the server's own client (moto accepts any credentials)
SPACE = re.compile(r"\s*")
SIGNED_BY = re.compile(r"Credential=([^/]+)/")  # the access key id in an AWS Signature V4 Authorization header


def start_server(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server in a new session (so that stop_group() ends it with all its children), its output into log."""
    with log.open("w") as output:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


class S3Server:
    """moto's server mode in a subprocess, for the length of a `with` block; its log and, once
    record_requests() is called, every request it serves are kept in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.log = folder / "moto.log"
        self.recording = folder / "requests.jsonl"

    def __enter__(self) -> "S3Server":
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(self.recording)}
        argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]
        self.process = start_server(argv, self.folder, env, self.log)
        try:
            self.wait_until_serving()
        except BaseException:
            stop_group(self.process)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        stop_group(self.process)

    def wait_until_serving(self) -> None:
        wait_for_http(f"{self.endpoint}/moto-api/", self.process, START_TIMEOUT, self.log)

    def create_bucket(self, name: str) -> None:
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ADMIN_KEY,
            aws_secret_access_key=ADMIN_KEY,
        )
        client.create_bucket(Bucket=name)

    def record_requests(self) -> None:
        """From now on, the server appends every request it serves (headers and body) to self.recording."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/start-recording", method="POST")
        urllib.request.urlopen(request, timeout=5).close()

    def signing_keys(self) -> list[str]:
        """The access key id that signed each recorded request, in order ('' for an unsigned one)."""
        return [signer(request["headers"]) for request in self.recorded_requests()]

    def recorded_requests(self) -> Iterator[dict]:
        """The requests served since record_requests(). moto's threads append them to one file, each entry in
        one write, but with its newline in another: entries arrive whole, not always one a line."""
        text = self.recording.read_text() if self.recording.exists() else ""
        decoder, position = json.JSONDecoder(), 0
        while (position := SPACE.match(text, position).end()) < len(text):
            request, position = decoder.raw_decode(text, position)
            yield request


def signer(headers: dict[str, str]) -> str:
    found = SIGNED_BY.search(headers.get("Authorization", ""))
    return found.group(1) if found else ""

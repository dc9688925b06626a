"""A real `jupyter server` SIGKILLed in the middle of a batch, then started again: the batch
resumes and every request ends with exactly one result."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anthropic
import pytest

from claude_nb.service.store import DB_NAME, Store
from tests.support.fake_upstream import Reply
from tests.support.script import Script

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "restart-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.1)


class Server:
    """`python -m jupyter_server` with the extension enabled, this tree first on the path."""

    def __init__(self, tmp_path: Path, name: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        config = tmp_path / "jupyter-config"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"server_ext": True}},
            "IdentityProvider": {"token": TOKEN},
            "BatchRunner": {"workers_per_batch": 1}}))
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
               "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.log = open(tmp_path / f"{name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--port_retries=0",
             "--no-browser", "--allow-root", f"--ServerApp.root_dir={root}"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._up, what="the server answering")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the server exited; see its log"
        try:
            with urllib.request.urlopen(self.url + "v1/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=TOKEN, max_retries=0)

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.mark.cli
def test_sigkill_mid_batch_then_restart(tmp_path, cli_env, upstream):
    script = Script(upstream).on("q2", Reply.text("this answer never arrives", hang=20))
    db_path = Path(os.environ["JUPYTER_DATA_DIR"]) / "claude_nb" / DB_NAME
    first = Server(tmp_path, "first")
    try:
        batch = first.client().messages.batches.create(requests=[
            {"custom_id": f"r{i}", "params": {"model": "sonnet", "max_tokens": 30,
                                              "messages": [{"role": "user", "content": f"q{i}"}]}}
            for i in range(6)])
        wait_until(lambda: script.counts["q2"] == 1, what="the third request running")
        reader = Store(db_path)
        before = reader.item_results(batch.id)
        assert sorted(before) == ["r0", "r1"]
        first.kill()
    finally:
        first.stop()

    second = Server(tmp_path, "second")
    try:
        client = second.client()
        wait_until(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended",
                   what="the resumed batch ending")
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.request_counts.succeeded == 6 and ended.request_counts.processing == 0
        assert ended.results_url.startswith(second.url)
        results = list(client.messages.batches.results(batch.id))
    finally:
        second.stop()
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(6)]
    assert all(r.result.type == "succeeded" for r in results)
    assert [r.result.message.content[0].text for r in results] == [f"You said: q{i}" for i in range(6)]
    # the two stored before the kill are the same results, not rerun
    assert {r.custom_id: r.result.message.id for r in results[:2]} == \
        {cid: result["message"]["id"] for cid, result in before.items()}
    assert [script.counts[f"q{i}"] for i in range(6)] == [1, 1, 2, 1, 1, 1]
    assert reader.item_attempts(batch.id)["r2"] == 2
    reader.close()
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM batch_items WHERE batch_id = ? AND result IS NOT NULL",
                      (batch.id,)).fetchone()[0] == 6
    db.close()

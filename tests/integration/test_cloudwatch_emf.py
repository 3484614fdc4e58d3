"""Covers: sidecar.observability.emf, sidecar.observability.metrics.

CloudWatch EMF records from a real sidecar, read by a local listener (the agent's TCP port)
and from a JSON-lines file."""

from __future__ import annotations

import json
import socket
import threading

from sidecar.testing import SidecarProcess, wait_until


class LineListener:
    """A TCP listener standing in for the CloudWatch agent: collects newline-delimited JSON."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records: list[dict] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                self.records.append(json.loads(line))

    def close(self) -> None:
        self.sock.close()


def check_emf(record: dict, namespace: str) -> list[str]:
    """The EMF rules the agent enforces: every declared metric is a number at the top level."""
    [directive] = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == namespace and directive["Dimensions"] == [["Pool"]]
    assert isinstance(record["_aws"]["Timestamp"], int) and record["Pool"] == "primary"
    names = [m["Name"] for m in directive["Metrics"]]
    for name in names:
        assert isinstance(record[name], float), name
    return names


def test_emf_records_reach_a_local_agent_listener_with_call_deltas(tmp_path) -> None:
    listener = LineListener()
    try:
        config = {"pool": {"initial-size": 2, "spares": 0},
                  "monitoring": {"cloudwatch": {"enabled": True, "namespace": "Plant/Py3",
                                                "endpoint": f"tcp://127.0.0.1:{listener.port}",
                                                "interval": "200ms"}}}
        with SidecarProcess(config, workdir=str(tmp_path)) as proc:
            client = proc.client()
            wait_until(lambda: listener.records, 10, message="a first EMF record")
            for i in range(5):
                client.execute(f"{i} + 1")
            wait_until(lambda: sum(r["Calls"] for r in listener.records) >= 5, 10,
                       message="the five calls in the Calls deltas")
            record = listener.records[-1]
            names = check_emf(record, "Plant/Py3")
            assert {"WorkersReady", "QueueLength", "Utilization", "HealthScoreMin",
                    "WorkerRssMax", "Calls", "Errors", "Crashes", "SidecarRss"} <= set(names)
            assert record["WorkersTarget"] == 2.0 and record["SidecarRss"] > 1 << 20
            assert sum(r["CallsSucceeded"] for r in listener.records) >= 5
            # deltas, not totals: no single record claims every call after the first interval
            assert max(r["Calls"] for r in listener.records) <= sum(
                r["Calls"] for r in listener.records)
            view = client.health()["cloudwatch"]
            assert view["sent"] >= 2 and view["failed"] == 0
    finally:
        listener.close()


def test_emf_to_a_file_and_an_unreachable_agent_is_only_counted(tmp_path) -> None:
    out = tmp_path / "metrics.jsonl"
    config = {"pool": {"initial-size": 1, "spares": 0},
              "monitoring": {"cloudwatch": {"enabled": True, "endpoint": f"file://{out}",
                                            "interval": "200ms"}}}
    with SidecarProcess(config, workdir=str(tmp_path / "a")) as proc:
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, 10,
                   message="two EMF lines in the file")
        check_emf(json.loads(out.read_text().splitlines()[0]), "py3sidecar")
        assert proc.client().execute("1+1").value == 2
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()   # nobody listens there now
    config["monitoring"]["cloudwatch"]["endpoint"] = f"tcp://127.0.0.1:{port}"
    with SidecarProcess(config, workdir=str(tmp_path / "b")) as proc:
        client = proc.client()
        wait_until(lambda: client.health()["cloudwatch"]["failed"] >= 2, 10,
                   message="failed sends counted")
        assert client.execute("2+2").value == 4
        assert proc.log().count("cannot send CloudWatch EMF metrics") == 1   # once per outage

"""The harness pieces of bench/hosts.py that need no root: the forwarder between a host and
the local services, finding a crashed run's forwarders, and which jobs a killed host held (by
its messages, and by its attempts that were taken over)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from bench import hosts_probe, netns
from bench.hosts_drive import jobs_lost, open_messages


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(netns, "STATE_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def echo_server():
    """An echo server on 127.0.0.1; `closed` is set when a peer that sent data hangs up."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    closed = threading.Event()

    def echo(conn: socket.socket) -> None:
        talked = False
        with conn:
            while data := conn.recv(1024):
                talked = True
                conn.sendall(data)
        if talked:
            closed.set()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], closed
    server.close()


def test_forwarder_relays_and_its_kill_closes_the_server_side_connection(state_dir, echo_server):
    # given a forwarder on another loopback address in front of a local server
    port, closed = echo_server
    forwarder = netns.Forwarder("t", "127.0.0.2", [port])
    forwarder.start()
    try:
        client = socket.create_connection(("127.0.0.2", port), timeout=5)
        client.sendall(b"ping")
        assert client.recv(16) == b"ping"
        assert netns.forwarder_pids() == [forwarder.proc.pid]

        # when the forwarder is killed (a host cut off)
        forwarder.kill()

        # then the server sees its connection close at once, and nothing is left behind
        assert closed.wait(timeout=5)
        assert client.recv(16) == b""
        assert netns.forwarder_pids() == []
        assert not forwarder.pidfile.exists()
    finally:
        forwarder.kill()


def test_a_pidfile_whose_pid_is_no_forwarder_is_never_taken_for_one(state_dir):
    # a crashed run's pid file, its pid since reused by an unrelated process (this one)
    (state_dir / "forwarder-a.pid").write_text(str(os.getpid()))
    (state_dir / "forwarder-b.pid").write_text("not a pid")

    assert netns.forwarder_pids() == []
    assert netns.is_forwarder([b"python", b"-m", b"bench.netns", b"forward", b"10.0.0.1"])
    assert not netns.is_forwarder([b"python", b"-m", b"pytest"])


def test_host_commands_run_in_its_namespace_and_addresses_follow_its_index():
    host = netns.Host("b", 2)

    assert host.exec_argv(["celery", "worker"]) == [
        "ip", "netns", "exec", "hosts-b", "celery", "worker"
    ]  # fmt: skip
    assert (host.gateway, host.address) == ("10.231.2.1", "10.231.2.2")
    assert len(host.host_link) <= 15  # interface names are limited to 15 characters


def test_jobs_held_are_messages_taken_and_not_finished_before_the_kill(tmp_path):
    probe = tmp_path / "probe-b1.log"
    probe.write_text(
        "10.0 b1 1 ready - -\n"
        "11.0 b1 1 received t1 7\n"
        "11.1 b1 2 start t1 7\n"
        "11.5 b1 2 end t1 7\n"  # done before the kill
        "12.0 b1 1 received t2 8\n"
        "12.1 b1 2 start t2 8\n"  # running at the kill
        "12.2 b1 1 received t3 9\n"  # taken, not started
        "13.5 b1 2 end t2 8\n"  # after the kill: does not count
        "garbled line\n"
    )
    rows = hosts_probe.read(probe)

    assert open_messages(rows, until=13.0) == {"t2": 8, "t3": 9}


@pytest.mark.django_db
def test_jobs_lost_with_the_host_are_those_whose_open_attempt_was_taken_over():
    from integration.models import Job, JobAttempt

    # given attempts open at the kill: one on the killed host, one on the live host
    lost_job, live_job = (
        Job.objects.create(kind="notification.deliver", idempotency_key=f"k-{n}") for n in (1, 2)
    )
    on_b = JobAttempt.objects.create(job=lost_job, number=1)
    on_a = JobAttempt.objects.create(job=live_job, number=1)
    open_at_kill = {on_b.pk, on_a.pk}

    # while either is open, nothing is known yet
    JobAttempt.objects.filter(pk=on_a.pk).update(outcome=JobAttempt.Outcome.SUCCEEDED)
    assert jobs_lost(open_at_kill) is None

    # once the live host took the job over (the lost attempt closed as abandoned)
    JobAttempt.objects.filter(pk=on_b.pk).update(outcome=JobAttempt.Outcome.ABANDONED)
    JobAttempt.objects.create(job=lost_job, number=2)
    assert jobs_lost(open_at_kill) == {lost_job.pk}

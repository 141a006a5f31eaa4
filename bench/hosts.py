"""Several hosts: workers on two machines share the database, Redis, the broker and the portal's
limit; one machine is lost mid-run and comes back.

    .venv/bin/python bench/hosts.py                    # both brokers, ~4 minutes here (root)
    .venv/bin/python bench/hosts.py --broker redis     # one broker
    .venv/bin/python -m bench.netns cleanup            # a crashed run's leftovers, by hand

On this one machine (bench/netns.py): two network namespaces, host a and host b, joined to the
host by veth pairs, each pinned to a core of its own (HOSTS_CPUS, default "0;1"). PostgreSQL,
Redis and RabbitMQ stay where they are (127.0.0.1, shared with other runs, untouched); each
host reaches them through its own forwarder on its host-side address. The sandbox (Bitrix24
portal, OAuth server, Unitalk) runs in this process on the host, on 10.231.0.1. The hosts run
the Procfile's commands: release, web (gunicorn) and one worker in host a; two workers and beat
in host b. Each worker is one Celery node for both lanes (the Procfile's `worker` command with
`worker-interactive`'s queue added: bench/hosts_run.py `worker_command`). Every process of both
hosts has the same secrets and settings except the addresses.

Per broker (RabbitMQ vhost `hosts`, made if missing, then Redis db 11; rate limits and cache in
Redis db 10, both flushed; database app_hosts_<broker>), a fresh run:
  1. install the app through the portal; a mixed load starts and runs to the end: a
     click-to-call through the portal or an inbound Unitalk call (a third unanswered) every
     HOSTS_LOAD_INTERVAL_S, Unitalk webhooks duplicated (HOSTS_DUPLICATE_RATE) and reordered;
  2. one host: 2/5 of HOSTS_CALLS ended calls to sync, host a's worker alone (beat on host b);
  3. two hosts: host b's two workers start; another 2/5;
  4. the cut: Bitrix24 answers slowly (1.5 s) for a moment and the last 1/5 is seeded; once a
     job has run on host b for 0.3 s (a request in flight), host b's link goes down, 2 s later
     its processes are SIGKILLed and its forwarder with them (the servers see its connections
     close, as their keepalive / AMQP heartbeat would later on a real network);
  5. until every job host b held (bench/hosts_probe.py: messages it took and never finished;
     and attempts open at the kill that host a later closed as abandoned, which also finds a
     follow-up run inside another job's message) has succeeded, on host a; then host b comes
     back (link, forwarder, both workers, beat);
  6. 10 s more load on both hosts; the load stops; every call and job settles.

Figures: exactly_once = calls finished exactly once in the sandbox portal / calls made (flagged
FAIL if any call is missing or doubled, an unknown call is finished or one is left active);
records = answered calls with exactly one record / answered calls with a recording (the seeded
backlog has none by construction); jobs_not_succeeded = jobs dead, pending, running... at the
end (lost work); rejected_503 = REST answers 503 from the portal's bucket (burst 50, drain 2/s)
over the whole run; two_over_one = backlog drain rate of phase 3 over phase 2 (ended calls per
second, from the first sync attempt until 90 % of the backlog's sync jobs succeeded: the last
few wait out a fixed 2 s retry); recovery_s = from the SIGKILL until the last job host b held
succeeded on host a (recovery_claimed_s: until host a claimed the last of them). Recovery is
bounded by the job lease (JOB_LEASE_S, here 25 s with a 20 s hard time limit): a job whose
worker died stays `running` until its lease expires, and the next dispatch hands it to a live
worker; recovery_bound says whether the lease or a redelivery bounded the slowest job. With beat
gone with host b, that dispatch is the one each webhook's kick runs (the load keeps them coming).

Last line per broker:
  hosts: broker=<b> exactly_once=<n>/<n> rejected_503=<n> two_over_one=<r> recovery_s=<s> ...

Environment: HOSTS_CALLS (500), HOSTS_LOAD_INTERVAL_S (2.0), HOSTS_DUPLICATE_RATE (0.3),
HOSTS_DEADLINE_S (1500, the whole run; every phase has its own bound too), HOSTS_JOB_LEASE_S
(25), HOSTS_REDIS_DB / HOSTS_BROKER_DB (10 / 11), HOSTS_CPUS ("0;1"; "" = no pinning),
HOSTS_KEEP_DB=1 (keep app_hosts_<broker> to look at; the next run drops it). Logs of every
process: /tmp/bench-hosts/<broker>/ (until the next run). Needs root and `ip`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import netns  # noqa: E402

BROKERS = ("rabbitmq", "redis")
DEADLINE_S = float(os.environ.get("HOSTS_DEADLINE_S", "1500"))
CLEANUP_GRACE_S = 90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=(*BROKERS, "both"), default="both")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/hosts.py creates network namespaces: run it as root", file=sys.stderr)
        return 2
    deadline_at = float(os.environ.get("HOSTS_DEADLINE_AT") or time.time() + DEADLINE_S)
    if args.broker != "both":
        from bench.hosts_run import run

        return run(args.broker, deadline_at=deadline_at)

    # One child process per broker: each owns its Django settings, network, processes and
    # cleanup; this parent only enforces the deadline and cleans up after a child that hung.
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    started = time.monotonic()
    lines, status = [], 0
    try:
        for broker in BROKERS:
            line, code = _run_child(broker, deadline_at)
            status = status or code
            lines.append(line or f"hosts: broker={broker} FAILED (exit {code})")
    except KeyboardInterrupt:
        status = 130
    print(f"\nwall_s={time.monotonic() - started:.0f} (both brokers)")
    for line in lines:
        print(line)
    return status


def _run_child(broker: str, deadline_at: float) -> tuple[str | None, int]:
    """Run one broker in a child, echo its output, keep its `hosts:` line; past the deadline
    SIGTERM it (it cleans up), and if that hangs, SIGKILL it and clean up after it."""
    env = {**os.environ, "HOSTS_DEADLINE_AT": str(deadline_at - CLEANUP_GRACE_S)}
    child = subprocess.Popen(
        [sys.executable, __file__, "--broker", broker],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    found: list[str] = []

    def echo() -> None:
        assert child.stdout is not None
        for out in child.stdout:
            print(out, end="", flush=True)
            if out.startswith("hosts: "):
                found.append(out.strip())

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    interrupted = False
    try:
        child.wait(timeout=max(1.0, deadline_at - time.time()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        print(f"[{broker} run stopped: {'interrupted' if interrupted else 'deadline'}]", flush=True)
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=CLEANUP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            for item in netns.cleanup():
                print("removed leftover", item)
    reader.join(timeout=5)
    if interrupted:
        raise KeyboardInterrupt
    return (found[-1] if found else None), child.returncode


if __name__ == "__main__":
    sys.exit(main())

"""The phases and the figures of one broker's run of bench/hosts.py (see its docstring)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench import hosts_probe, netns
from bench.hosts_run import (
    AFTER_RESTORE_LOAD_S,
    BIN,
    CALLS,
    DUPLICATE_RATE,
    HOST_A,
    HOST_B,
    JOB_LEASE_S,
    LINK_DOWN_BEFORE_KILL_S,
    LOAD_INTERVAL_S,
    ROOT,
    TIMINGS,
    WEB_URL,
    Run,
    log,
)
from tests.support.waiting import wait_until

B_WORKERS = ("b1", "b2")
PHASE_TIMEOUT_S = 300
CUT_LATENCY_S = 1.5
SETTLE_TIMEOUT_S = 300


@dataclass
class Cut:
    killed_at: float
    held: set[int]
    leases: dict[int, datetime | None]
    running_attempts: set[int] = field(default_factory=set)
    recovered_s: float | None = None
    picked_up_s: float | None = None
    bound: str = "-"


@dataclass
class Load:
    """The mixed load: a click-to-call or an inbound Unitalk call every interval, until stopped."""

    world: Any
    interval: float
    clicks: list[str] = field(default_factory=list)
    inbound: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="load", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        member_id = self.world.portal.member_id
        i = 0
        while not self.stop.is_set():
            try:
                if i % 2 == 0:
                    out = self.world.bx(
                        f"portals/{member_id}/click-to-call",
                        {"user_id": "1", "phone": f"+38063{i:07d}"},
                    )
                    self.clicks.append(out["call"]["CALL_ID"])
                else:
                    outcome = "noanswer" if i % 6 == 1 else "answer"
                    out = self.world.ut("calls", {"from": f"38066{i:07d}", "outcome": outcome})
                    self.inbound[str(out["call"]["id"])] = outcome
            except (requests.RequestException, KeyError) as exc:
                self.errors.append(f"{i}: {type(exc).__name__}: {exc}")
            i += 1
            self.stop.wait(self.interval)


def drive(run: Run) -> str:
    from bitrixapp.models import portal_options
    from tests.support.world import World

    run.release()
    run.start("web", HOST_A, "web")
    run.start("a1", HOST_A, "worker", worker="a1")
    run.start("beat", HOST_B, "beat")
    run.wait_ready("web", "a1", "beat")
    world = World(run.sandbox)
    portal = world.install()
    # Unknown numbers stay unknown (as in bench/sync_throughput.py): no lead and so no timeline
    # comment per call, one request each, that would spend the portal's 2 requests/s on
    # the backlog instead of the calls.
    options = portal_options(portal)
    options.create_leads = False
    options.save()
    log(f"installed portal {world.portal.member_id}; host a: web + a1, host b: beat")
    world.ut("settings", {"duplicate_rate": DUPLICATE_RATE, "reorder": True})
    load = Load(world, LOAD_INTERVAL_S)
    load_thread = load.start()
    sizes = (2 * CALLS // 5, 2 * CALLS // 5, CALLS - 4 * CALLS // 5)
    seeded: list[str] = []

    one = backlog(world, sizes[0], "one", seeded)
    log(f"phase one host: {sizes[0]} ended calls drained at {one:.1f} calls/s")
    for name in B_WORKERS:
        run.start(name, HOST_B, "worker", worker=name)
    run.wait_ready(*B_WORKERS)
    two = backlog(world, sizes[1], "two", seeded)
    log(f"phase two hosts: {sizes[1]} ended calls drained at {two:.1f} calls/s")

    cut = cut_host_b(run, world, sizes[2], seeded)
    restore_host_b(run)
    health_check(run)
    time.sleep(AFTER_RESTORE_LOAD_S)  # the load goes on against both hosts for a while
    load.stop.set()
    load_thread.join(timeout=60)
    log(f"load stopped: {len(load.clicks)} click-to-calls, {len(load.inbound)} inbound calls")
    settle(run, world, load, seeded)
    return report(run, world, load, seeded, one=one, two=two, cut=cut)


def backlog(world: Any, count: int, prefix: str, seeded: list[str]) -> float:
    """Seed `count` ended calls and wait until all their sync jobs succeeded; returns ended
    calls per second, from the first attempt to 90 % of the jobs succeeded."""
    from django.db.models import Min
    from django.utils import timezone

    from integration.calls.models import CallSync
    from integration.models import Job, JobAttempt
    from tests.support.world import ended_calls_seed

    ids = ended_calls_seed(
        portal=world.portal,
        count=count,
        prefix=prefix,
        started_at=timezone.now() - timedelta(hours=1),
    )
    cpu_before = cpu_sample()
    seeded += ids
    keys = [
        f"call.sync:{pk}"
        for pk in CallSync.objects.filter(
            portal=world.portal, call__unitalk_call_id__in=ids
        ).values_list("pk", flat=True)
    ]
    jobs = Job.objects.filter(idempotency_key__in=keys)
    wait_until(
        lambda: jobs.filter(state=Job.State.SUCCEEDED).count() == count,
        timeout=PHASE_TIMEOUT_S,
        interval=0.5,
        message=f"the {prefix} backlog's {count} sync jobs",
    )
    first = JobAttempt.objects.filter(job__in=jobs).aggregate(first=Min("started_at"))["first"]
    finished = sorted(jobs.values_list("finished_at", flat=True))
    # Up to the 90th percentile: the last few jobs of a backlog often wait out a fixed 2 s
    # "another drain holds this call" retry, a tail that is not throughput.
    done = int(len(finished) * 0.9)
    last = finished[done - 1]
    log(
        f"  CPU busy during the {prefix} backlog: {cpu_busy(cpu_before)}"
        f" (load average {os.getloadavg()[0]:.1f}; other people's runs share these cores)"
    )
    return done / max((last - first).total_seconds(), 1e-3)


def cpu_sample() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core and for the machine, from /proc/stat."""
    sample = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu"):
            name, *fields = line.split()
            values = [int(v) for v in fields]
            idle = values[3] + values[4]  # idle + iowait
            sample[name] = (sum(values) - idle, sum(values))
    return sample


def cpu_busy(since: dict[str, tuple[int, int]]) -> str:
    now = cpu_sample()
    shares = {
        name: (now[name][0] - busy) / max(now[name][1] - total, 1)
        for name, (busy, total) in since.items()
        if name in now
    }
    return ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares.items()))


def probe_rows(run: Run, workers: tuple[str, ...]) -> list[tuple[float, str, str, str, str]]:
    rows = []
    for name in workers:
        rows += hosts_probe.read(run.tmp / f"probe-{name}.log")
    return sorted(rows)


def open_messages(rows: list[tuple[float, str, str, str, str]], until: float) -> dict[str, int]:
    """Task id -> job id of messages taken (received or started) and not finished by `until`."""
    taken: dict[str, int] = {}
    for at, _worker, event, task_id, job_id in rows:
        if at > until or job_id == "-":
            continue
        if event in ("received", "start"):
            taken[task_id] = int(job_id)
        elif event == "end":
            taken.pop(task_id, None)
    return taken


def cut_host_b(run: Run, world: Any, count: int, seeded: list[str]) -> Cut:
    from django.utils import timezone

    from integration.models import Job, JobAttempt
    from tests.support.world import ended_calls_seed

    # Bitrix24 answers slowly for a moment, so that host b is lost with requests in flight:
    # carried out by the portal, their answers never arrive (the doubt the sync resolves).
    world.fault("bitrix", "latency", rate=1.0, seconds=CUT_LATENCY_S)
    ids = ended_calls_seed(
        portal=world.portal,
        count=count,
        prefix="cut",
        started_at=timezone.now() - timedelta(minutes=30),
    )
    seeded += ids
    seeded_at = time.time()

    def b_in_request() -> bool:
        """Host b has run a job for a while without ending it: waiting on Bitrix24."""
        rows = [r for r in probe_rows(run, B_WORKERS) if r[0] >= seeded_at]
        ended = {r[3] for r in rows if r[2] == "end"}
        now = time.time()
        return any(r[2] == "start" and r[3] not in ended and now - r[0] > 0.3 for r in rows)

    try:
        wait_until(b_in_request, timeout=30, interval=0.05, message="host b to be in a request")
    except AssertionError:
        log("host b ran nothing of the last backlog within 30 s; cutting it anyway")
    log("cut: host b's link goes down")
    netns.link_set(HOST_B, up=False)
    time.sleep(LINK_DOWN_BEFORE_KILL_S)  # the scenario: a host unreachable, then dead
    killed_at = run.kill_host(HOST_B)
    # Attempts open at the kill, on either host: host b's are those later closed as abandoned
    # (jobs_lost), which also finds a follow-up host b ran inside another job's message.
    running_attempts = set(
        JobAttempt.objects.filter(outcome=JobAttempt.Outcome.RUNNING).values_list("pk", flat=True)
    )
    run.forwarder_cpu_s += run.forwarders[HOST_B.name].cpu_seconds()
    run.forwarders[HOST_B.name].kill()
    world.fault("bitrix", "latency", rate=0)
    held = set(open_messages(probe_rows(run, B_WORKERS), killed_at).values())
    # Already done by someone else (a duplicate message) is not work host b held.
    held -= set(
        Job.objects.filter(
            pk__in=held,
            state=Job.State.SUCCEEDED,
            finished_at__lt=datetime.fromtimestamp(killed_at, tz=UTC),
        ).values_list("pk", flat=True)
    )
    leases = dict(Job.objects.filter(state=Job.State.RUNNING).values_list("pk", "lease_expires_at"))
    log(
        f"cut: host b SIGKILLed holding {len(held)} jobs by their messages"
        f" ({len(held & set(leases))} running); {len(running_attempts)} attempts open on both hosts"
    )
    cut = Cut(killed_at=killed_at, held=held, leases=leases, running_attempts=running_attempts)
    recovery_wait(run, cut)
    return cut


def jobs_lost(running_attempts: set[int]) -> set[int] | None:
    """Jobs whose attempt open at the kill was closed as abandoned (taken over from a dead
    worker: host b's, host a lives), or None while one of those attempts is still open."""
    from integration.models import JobAttempt

    attempts = JobAttempt.objects.filter(pk__in=running_attempts)
    if attempts.filter(outcome=JobAttempt.Outcome.RUNNING).exists():
        return None
    return set(
        attempts.filter(outcome=JobAttempt.Outcome.ABANDONED).values_list("job_id", flat=True)
    )


def recovery_wait(run: Run, cut: Cut) -> None:
    """Until every job host b held has ended (host b is dead: only host a can do it): the jobs
    of the messages it had taken, and those whose attempts it was running when killed."""
    from integration.calls.models import CallSync
    from integration.models import Job

    def held() -> Any:
        return Job.objects.filter(pk__in=list(cut.held))

    limit = JOB_LEASE_S + float(TIMINGS["JOB_REDISPATCH_AFTER_S"]) + 90
    doubts: list[Counter[str]] = []

    def recovered() -> bool:
        # A few seconds on, host a's own requests have long been answered: a call still marked
        # "request sent, answer unknown" is one host b was lost in the middle of.
        if not doubts and time.time() - cut.killed_at > 5:
            doubts.append(
                Counter(CallSync.objects.exclude(sent_op="").values_list("sent_op", flat=True))
            )
            log(f"cut: requests host b left in doubt (sent, answer lost): {dict(doubts[0])}")
        lost = jobs_lost(cut.running_attempts)
        if lost is None:
            return False
        cut.held |= lost
        return not held().exclude(state__in=(Job.State.SUCCEEDED, Job.State.DEAD)).exists()

    try:
        wait_until(
            recovered, timeout=limit, interval=0.5, message="host a to finish the jobs host b held"
        )
    except AssertionError:
        log(f"recovery: not done within {limit:.0f} s: {list(held().values_list('pk', 'state'))}")
        return
    if not cut.held:
        cut.recovered_s = cut.picked_up_s = 0.0
        return
    from integration.models import JobAttempt

    killed = datetime.fromtimestamp(cut.killed_at, tz=UTC)
    # Host a's claim of a held job is the job's first attempt after the kill (host b is dead).
    claims: dict[int, datetime] = {}
    for job_id, started in (
        JobAttempt.objects.filter(job_id__in=cut.held, started_at__gt=killed)
        .order_by("started_at")
        .values_list("job_id", "started_at")
    ):
        claims.setdefault(job_id, started)
    done = {pk: at for pk, at in held().values_list("pk", "finished_at") if at}
    slowest = max(done, key=lambda pk: done[pk])
    cut.recovered_s = (done[slowest] - killed).total_seconds()
    cut.picked_up_s = max(((at - killed).total_seconds() for at in claims.values()), default=0.0)
    lease, claim = cut.leases.get(slowest), claims.get(slowest)
    cut.bound = (
        f"lease(JOB_LEASE_S={JOB_LEASE_S})"
        if lease is not None and claim is not None and claim >= lease
        else "redelivery"
    )
    lease_s = f"{(lease - killed).total_seconds():.1f}" if lease else "-"
    claim_s = f"{(claim - killed).total_seconds():.1f}" if claim else "-"
    log(
        f"recovery: host a finished all {len(cut.held)} jobs host b held {cut.recovered_s:.1f} s"
        f" after the kill; the last (job {slowest}) had its lease expire at +{lease_s} s, was"
        f" claimed by host a at +{claim_s} s; bound: {cut.bound}"
    )


def restore_host_b(run: Run) -> None:
    netns.link_set(HOST_B, up=True)
    run.forwarders[HOST_B.name].start()
    for name in (*B_WORKERS, "beat"):
        run.start(name, HOST_B, "beat" if name == "beat" else "worker", worker=name)
    run.wait_ready(*B_WORKERS)
    log("host b is back: link up, b1, b2 and beat restarted")


def health_check(run: Run) -> None:
    """What an operator checks per host (docs/deploy.md): the web's /healthz and every worker
    answering a remote-control ping over the broker."""
    health = requests.get(f"{WEB_URL}/healthz", timeout=10)
    ping = subprocess.run(
        HOST_A.exec_argv([str(BIN / "celery"), "-A", "bitrixapp", "inspect", "ping", "-t", "5"]),
        cwd=ROOT,
        env=run.env(HOST_A.gateway),
        capture_output=True,
        text=True,
        timeout=60,
    )
    answered = sorted(re.findall(r"->\s+(\S+?)@\S+: OK", ping.stdout))
    log(
        f"health: /healthz {health.status_code} {health.json()}; workers answering ping: {answered}"
    )


def settle(run: Run, world: Any, load: Load, seeded: list[str]) -> None:
    """Until every call made is finished (answered calls of the load also recorded), none is
    left active in the portal, no job is open and no webhook event waits for its job."""
    from django.db.models import Q

    from integration.calls.models import CallSync
    from integration.models import Job
    from integration.unitalk.models import UnitalkEvent

    ours = Q(call__unitalk_call_id__in=[*seeded, *load.inbound]) | Q(bitrix_call_id__in=load.clicks)
    expected = len(load.clicks) + len(load.inbound) + len(seeded)
    started = time.monotonic()

    def settled() -> bool:
        done = CallSync.objects.filter(
            ours, stage__in=(CallSync.Stage.FINISHED, CallSync.Stage.RECORDED)
        )
        return (
            done.count() == expected
            # answered calls of the load wait for their record
            and not done.filter(stage=CallSync.Stage.FINISHED, status_code="200")
            .exclude(call__unitalk_call_id__in=seeded)
            .exists()
            and not Job.objects.filter(
                state__in=(Job.State.PENDING, Job.State.RUNNING, Job.State.RETRYING)
            ).exists()
            and not UnitalkEvent.objects.filter(state=UnitalkEvent.State.RECEIVED).exists()
            and not world.portal_state()["calls"]
        )

    try:
        wait_until(settled, timeout=SETTLE_TIMEOUT_S, interval=1, message="every call and job")
        log(f"settled {time.monotonic() - started:.0f} s after the load stopped")
    except AssertionError as exc:
        log(f"settle: {exc}")


def report(
    run: Run, world: Any, load: Load, seeded: list[str], *, one: float, two: float, cut: Cut
) -> str:
    from integration.models import Job

    state = world.portal_state()
    finished = state["finished"]
    by_external = Counter(str(f["EXTERNAL_CALL_ID"]) for f in finished.values())
    once = (
        sum(1 for k in load.inbound if by_external[k] == 1)
        + sum(1 for k in seeded if by_external[k] == 1)
        + sum(1 for c in load.clicks if c in finished)
    )
    expected = len(load.inbound) + len(seeded) + len(load.clicks)
    extra = len(finished) - expected
    active = len(state["calls"])
    records = Counter(r["CALL_ID"] for r in state["records"])
    backlog = set(seeded)
    answered = {
        call_id
        for call_id, f in finished.items()
        if f["CALL_FAILED_CODE"] == "200" and str(f["EXTERNAL_CALL_ID"]) not in backlog
    }
    recorded_once = sum(1 for call_id in answered if records[call_id] == 1)
    jobs = Counter(Job.objects.values_list("state", flat=True))
    not_succeeded = sum(n for s, n in jobs.items() if s != Job.State.SUCCEEDED)
    deliveries = requests.get(f"{run.sandbox.unitalk_url}/_sandbox/state", timeout=30).json()
    sent = deliveries["unitalk"]["deliveries"] if "unitalk" in deliveries else []
    duplicates = len(sent) - len({(d["call_id"], d["event"]) for d in sent})
    failed_deliveries = sum(1 for d in sent if d["status"] != 200)
    log(
        f"calls: {len(load.clicks)} click-to-calls, {len(load.inbound)} inbound"
        f" ({sum(1 for o in load.inbound.values() if o == 'noanswer')} unanswered),"
        f" {len(seeded)} ended calls seeded; load errors {len(load.errors)} {load.errors[:3]}"
    )
    log(
        f"webhooks: {len(sent)} delivered, {duplicates} duplicates, {failed_deliveries} not"
        f" answered 200; REST answers by status {dict(sorted(run.rest.items()))}"
    )
    log(f"jobs: {dict(sorted(jobs.items()))}")
    forwarders_cpu = run.forwarder_cpu_s + sum(f.cpu_seconds() for f in run.forwarders.values())
    log(
        f"forwarders used {forwarders_cpu:.0f} CPU s over the run's"
        f" {time.monotonic() - run.started:.0f} s (the harness's stand-in for the network)"
    )
    ok = once == expected and extra == 0 and active == 0
    ratio = two / one if one else 0.0
    recovery = f"{cut.recovered_s:.1f}" if cut.recovered_s is not None else "timeout"
    claimed = f"{cut.picked_up_s:.1f}" if cut.picked_up_s is not None else "-"
    return (
        f"hosts: broker={run.broker} exactly_once={once}/{expected}{'' if ok else ' FAIL'}"
        f" rejected_503={run.rest[503]} two_over_one={ratio:.2f} recovery_s={recovery}"
        f" recovery_bound={cut.bound} recovery_claimed_s={claimed} held_by_b={len(cut.held)}"
        f" records={recorded_once}/{len(answered)} extra_records={sum(records.values()) - recorded_once}"
        f" jobs_not_succeeded={not_succeeded} extra_finished={extra} still_active={active}"
        f" one_host_cps={one:.1f} two_hosts_cps={two:.1f}"
    )

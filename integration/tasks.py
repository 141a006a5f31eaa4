"""Celery tasks: thin doors into `integration.jobs`. Ids in, one service call each."""

from __future__ import annotations

from celery import shared_task

from integration import jobs


@shared_task(name="integration.job_run", ignore_result=True)
def job_run(job_id: int) -> None:
    jobs.job_execute(job_id=job_id)


@shared_task(name="integration.jobs_dispatch", ignore_result=True)
def jobs_dispatch() -> None:
    jobs.jobs_dispatch()

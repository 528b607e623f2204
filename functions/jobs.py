"""The job watchdog: no training or batch scoring job stays queued or running forever."""

import azure.functions as func

from shared.container import Services
from shared.http import Routes
from shared.jobs.queue_job import watch
from shared.observability import get_logger

bp = func.Blueprint()
routes = Routes(bp, tag="jobs")
log = get_logger("jobs")


@routes.timer("job_watchdog", schedule="0 */5 * * * *")
def job_watchdog(services: Services, timer: func.TimerRequest) -> None:
    """Re-drive jobs with no progress for JOB_STALL_SECONDS; fail them after a few tries."""
    settings = services.settings
    for runner in (services.trainer, services.batch_scorer):
        report = watch(runner, settings.job_stall_seconds, settings.job_max_redrives)
        log.info(
            "job watchdog",
            extra={
                "kind": report.kind,
                "checked": report.checked,
                "redriven": len(report.redriven),
                "failed": len(report.failed),
            },
        )

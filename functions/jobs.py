"""The job watchdog: no training or batch scoring job stays queued or running forever."""

import azure.functions as func

from shared import services
from shared.jobs.queue_job import watch
from shared.observability import get_logger
from shared.settings import get_settings
from shared.storage_deadline import worker_deadline

bp = func.Blueprint()
log = get_logger("jobs")


@bp.function_name("job_watchdog")
@bp.timer_trigger(
    arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True
)
def job_watchdog(timer: func.TimerRequest) -> None:
    """Re-drive jobs with no progress for JOB_STALL_SECONDS; fail them after a few tries."""
    from shared.prediction.batch_service import batch_scorer

    settings = get_settings()
    for runner in (services.trainer(), batch_scorer()):
        with worker_deadline():
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

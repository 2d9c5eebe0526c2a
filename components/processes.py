"""The app's other processes and its schedules, as every phase's components take them, and the cron reading
they share.

A *process* (``ProcessSpec``) runs the app's image with its own command beside the web process: a queue worker, a
websocket fan-out. It gets the same environment (the app contract, env and secret env) and never receives
traffic. A *schedule* (``ScheduleSpec``) runs the image with its own command on a cron schedule, once per tick
across the whole tier, never overlapping its own previous run.

Cron: five fields (minute hour day-of-month month day-of-week), numbers only, with ``*``, ranges ``a-b``, steps
``/n`` and lists ``,`` (``parse_cron``), in robfig/cron v3's bounds (``parser.go``: day-of-week 0-6, so 7 is refused
as the Kubernetes API server refuses it; ``a/n`` means ``a-max/n``). Kubernetes runs the text as is (a CronJob's
``schedule``, robfig/cron's standard parser); the droplets run it as a systemd timer (``on_calendar``), so the text
is read here and refused where the two would not agree: a schedule restricting both day-of-month and day-of-week
runs when *either* matches in cron (robfig/cron ``dayMatches``; Vixie cron alike) but when *both* match in systemd
(systemd.time(7): the weekday "must match too"), so it is refused, with a hint to split it in two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

PROCESS_NAME = re.compile(r"[a-z]([-a-z0-9]{0,18}[a-z0-9])?")
"""A DNS label of at most 20 characters: it names a Compose service, a systemd unit and a Kubernetes object
(``<app>-<name>``, within the 52 characters a CronJob's name may have)."""

RESERVED_PROCESS_NAMES = ("app", "web", "release", "migrate", "proxy", "db", "redis", "pgbouncer", "status",
                          "backup", "candidate", "logical-backup", "database-role")
"""Names phasekit's own services, components and objects already use in some phase."""


@dataclass(frozen=True)
class ProcessSpec:
    """A long-running process of the app besides the web one (a queue worker)."""

    name: str
    command: Sequence[str]
    """Exec form; like Compose's ``command`` and a pod's ``args``, it keeps the image's entrypoint."""

    count: int = 1
    """Containers per app host in phases 1 and 2; replicas (the autoscaler's floor) in phase 3."""

    max_count: int | None = None
    """Phase 3: the autoscaler's ceiling (CPU-based); None: ``count`` replicas, no autoscaler."""

    cpu: str = "250m"
    """CPU each replica requests in phase 3 (a Kubernetes quantity); never a limit."""

    memory_mib: int = 512
    """Memory each replica may use in every phase: the container's limit (and phase 3's request)."""

    stop_timeout_seconds: int = 30
    """Time between SIGTERM and SIGKILL: how long a worker has to finish or hand back its current job."""

    @property
    def most_replicas(self) -> int:
        return self.max_count if self.max_count is not None else self.count


@dataclass(frozen=True)
class ScheduleSpec:
    """A command run on a cron schedule, at most one run at a time across the tier."""

    name: str
    cron: str
    """Five-field cron, UTC (``parse_cron``)."""

    command: Sequence[str]
    timeout_seconds: int = 3600
    """A run still going after this is stopped and counts as failed."""

    cpu: str = "250m"
    memory_mib: int = 512


# --- cron -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int


CRON_FIELDS = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day-of-month", 1, 31),
               _Field("month", 1, 12), _Field("day-of-week", 0, 6))
CRON_ALLOWED = ("five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, "
                "steps /n and lists a,b, e.g. '*/15 * * * *'")
_ELEMENT = re.compile(r"(?P<start>\*|[0-9]+)(?:-(?P<end>[0-9]+))?(?:/(?P<step>[0-9]+))?")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


class CronError(ValueError):
    """A schedule phasekit does not run; the message says what and what is allowed."""


@dataclass(frozen=True)
class CronFields:
    """The values each field of a schedule matches (day-of-week 0 is Sunday)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def runs_on(self, day: date) -> bool:
        """Whether the schedule has ticks on ``day``: its month, and its day of month or of week, whichever is
        restricted (``parse_cron`` refuses both at once)."""
        weekday = day.isoweekday() % 7  # cron's 0 is Sunday
        return (day.month in self.months and (not self.days_restricted or day.day in self.days)
                and (not self.weekdays_restricted or weekday in self.weekdays))

    def runs_at(self, moment: datetime) -> bool:
        """Whether ``moment``'s minute is one of the schedule's ticks."""
        return self.runs_on(moment.date()) and moment.hour in self.hours and moment.minute in self.minutes


def read_cron(text: str) -> CronFields:
    """The schedule's fields as robfig/cron v3 (Kubernetes) reads them, or ``CronError`` naming the first fault; a
    schedule that never runs is refused too."""
    parts = text.split()
    if len(parts) != len(CRON_FIELDS):
        raise CronError(f"{text!r} has {len(parts)} field{'' if len(parts) == 1 else 's'}; allowed: {CRON_ALLOWED}")
    minutes, hours, days, months, weekdays = (
        _parse_field(part, field, text) for part, field in zip(parts, CRON_FIELDS, strict=True))
    days_restricted, weekdays_restricted = parts[2] != "*", parts[4] != "*"
    if days_restricted and not weekdays_restricted and min(days) > max(_DAYS_IN_MONTH[month - 1]
                                                                       for month in months):
        raise CronError(f"{text!r} never runs: no month in its month field has day {min(days)}; allowed: a day "
                        "those months have")
    return CronFields(minutes, hours, days, months, weekdays, days_restricted, weekdays_restricted)


def parse_cron(text: str) -> CronFields:
    """``read_cron``, refusing what systemd would read otherwise: a schedule restricting both day-of-month and
    day-of-week (the schedules the droplets run as timers, ``on_calendar``)."""
    fields = read_cron(text)
    if fields.days_restricted and fields.weekdays_restricted:
        raise CronError(
            f"{text!r} restricts both day-of-month and day-of-week, which cron runs when either matches and systemd "
            "only when both do; allowed: one of the two as *, e.g. two schedules, one per field")
    return fields


def _parse_field(part: str, field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for element in part.split(","):
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise CronError(f"{text!r}: {field.name} {element!r} is not a number, *, range or step; "
                            f"allowed: {CRON_ALLOWED}")
        start_text, end_text, step_text = match["start"], match["end"], match["step"]
        if start_text == "*" and end_text is not None:
            raise CronError(f"{text!r}: {field.name} {element!r} is not a number, *, range or step; "
                            f"allowed: {CRON_ALLOWED}")
        start = field.low if start_text == "*" else int(start_text)
        # robfig/cron reads 'a/n' as 'a-high/n'.
        end = int(end_text) if end_text is not None else (
            field.high if start_text == "*" or step_text is not None else start)
        step = int(step_text) if step_text is not None else 1
        for number in (start, end):
            if not field.low <= number <= field.high:
                raise CronError(f"{text!r}: {field.name} {number} is out of range; allowed: "
                                f"{field.low}-{field.high}")
        if end < start:
            raise CronError(f"{text!r}: {field.name} range {start}-{end} runs backwards; allowed: a-b with a <= b")
        if step < 1:
            raise CronError(f"{text!r}: {field.name} step 0; allowed: a step of 1 or more")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def on_calendar(text: str) -> str:
    """The schedule as a systemd ``OnCalendar`` expression in UTC that elapses at exactly the same minutes
    (checked against ``systemd-analyze calendar`` in the tests)."""
    fields = parse_cron(text)

    def listed(values: frozenset[int], field: _Field) -> str:
        if values == frozenset(range(field.low, field.high + 1)):
            return "*"
        return ",".join(f"{value:02d}" for value in sorted(values))

    minute, hour, day, month, _ = CRON_FIELDS
    weekdays = (",".join(_WEEKDAYS[weekday] for weekday in sorted(fields.weekdays)) + " "
                if fields.weekdays_restricted else "")
    return (f"{weekdays}*-{listed(fields.months, month)}-{listed(fields.days, day)} "
            f"{listed(fields.hours, hour)}:{listed(fields.minutes, minute)}:00 UTC")

"""Prometheus metrics of every process (API and workers), and the /metrics exposition.

Processes count into prometheus-client's multiprocess files when ``PROMETHEUS_MULTIPROC_DIR``
is set in their environment (``mailer dev`` sets it for its children; set it to one empty
directory shared by the API and the workers of a machine, cleaned before they start). The
API's ``/metrics`` adds up every process' files, its own live counters, and the numbers
read at scrape time from PostgreSQL and Redis (queue depths, suppressions, reputation,
campaign progress, region quotas): those are facts of the whole system, not of a process.

``/metrics`` is served only with ``MAILER_METRICS_TOKEN`` set, to a scraper that sends it as
a bearer token (:func:`require`, shared by every server of metrics): without the setting
it answers 404, without the token or with a wrong one 401.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from mailer import metrics_token
from mailer.errors import NotFound, Unauthorized

if TYPE_CHECKING:
    from mailer.config import Settings

SENDS = Counter("mailer_sends", "Recorded send outcomes", ["mail_class", "region", "outcome"])
SES_ERRORS = Counter(
    "mailer_ses_errors", "SES calls that failed, by error code", ["region", "operation", "code"]
)
THROTTLES = Counter("mailer_ses_throttles", "SES throttling answers", ["region"])
SES_SECONDS = Histogram(
    "mailer_ses_call_seconds",
    "SES call latency",
    ["region", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_SLOTS = Counter(
    "mailer_rate_slots", "Send slots booked from the region rate limiter", ["region"]
)
RATE_LIMIT = Gauge(
    "mailer_rate_limit_per_second",
    "Configured send rate of a region",
    ["region"],
    multiprocess_mode="mostrecent",
)
EVENTS = Counter("mailer_events", "SES events applied, by type", ["type"])
AUTO_PAUSES = Counter("mailer_auto_pauses", "Automatic pauses", ["scope", "mail_class"])


# outcomes the send path records (sending.repository.record), for zero-valued series
SEND_OUTCOMES = ("sent", "failed", "suppressed", "cancelled", "retry", "throttled", "release")
AUTO_PAUSE_SCOPES = ("campaign", "mail_class")


def declare_known_labels(mail_classes: Iterable[str], regions: Iterable[str]) -> None:
    """Create every series whose labels are known at start-up, at 0, so that a family
    exists before its first event (an alert on ``rate(mailer_ses_errors_total[5m])`` sees 0,
    not "no data"). The error code of an SES error is not known before it happens: its
    zero series has an empty ``code`` (Prometheus reads an empty label as no label)."""
    regions = list(regions)
    for mail_class in mail_classes:
        for region in regions:
            for outcome in SEND_OUTCOMES:
                SENDS.labels(mail_class, region, outcome)
        for scope in AUTO_PAUSE_SCOPES:
            AUTO_PAUSES.labels(scope, mail_class)
    for region in regions:
        SES_ERRORS.labels(region, "SendEmail", "")
        THROTTLES.labels(region)
        RATE_SLOTS.labels(region)


def authorized(authorization: str | None, settings: Settings) -> bool:
    """Whether an ``Authorization`` header carries the metrics token (constant time)."""
    return settings.metrics_token is not None and metrics_token.carries(
        authorization, settings.metrics_token
    )


def require(authorization: str | None, settings: Settings) -> None:
    """Raise the answer a metrics request gets unless it may read them: 404 while
    ``MAILER_METRICS_TOKEN`` is unset (metrics are served to nobody), 401 without the token."""
    if settings.metrics_token is None:
        raise NotFound("/metrics is off: set MAILER_METRICS_TOKEN to serve it")
    if not authorized(authorization, settings):
        raise Unauthorized("/metrics needs Authorization: Bearer <MAILER_METRICS_TOKEN>")


def in_multiprocess_mode() -> bool:
    """Whether this process writes its metrics to the multiprocess directory."""
    return values.ValueClass is not values.MutexValue


def count_sends(kinds: Any) -> None:
    """Count the outcomes a record statement applied: [{mail_class, region, outcome, n}]."""
    if not kinds:
        return
    if isinstance(kinds, str):
        kinds = json.loads(kinds)
    for k in kinds:
        SENDS.labels(k["mail_class"], k["region"] or "", k["outcome"]).inc(k["n"])


def ses_call(
    region: str, operation: str, started: float, code: str | None = None, throttled: bool = False
) -> None:
    """One SES call: its latency and, when it failed, its error code."""
    SES_SECONDS.labels(region, operation).observe(time.perf_counter() - started)
    if code is not None:
        SES_ERRORS.labels(region, operation, code).inc()
    if throttled:
        THROTTLES.labels(region).inc()


class _Families:
    """A collector of ready-made families (the scrape-time numbers)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _Merged:
    """Families of several collectors as one: samples of the same name and labels added
    up (gauges: the largest), as prometheus-client's own multiprocess collector does."""

    def __init__(self, sources: list[Any]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for source in self.sources:
            for family in source.collect():
                if family.name not in merged:
                    merged[family.name] = family
                    values[family.name] = {}
                seen = values[family.name]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key in seen and family.type == "gauge":
                        seen[key] = max(seen[key], sample.value)
                    else:
                        seen[key] = seen.get(key, 0.0) + sample.value
        for name, family in merged.items():
            family.samples = [
                Sample(n, dict(labels), value) for (n, labels), value in values[name].items()
            ]
        return iter(merged.values())


def exposition(multiproc_dir: Path | None, extra: Iterable[Metric]) -> bytes:
    """The text exposition: every process' files, this process' own, and ``extra``."""
    sources: list[Any] = []
    own_in_files = False
    if multiproc_dir is not None and multiproc_dir.is_dir():
        scratch = CollectorRegistry()
        sources.append(MultiProcessCollector(scratch, path=str(multiproc_dir)))
        own_in_files = in_multiprocess_mode()
    if not own_in_files:
        sources.append(REGISTRY)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(sources))  # type: ignore[arg-type]
    registry.register(_Families(extra))  # type: ignore[arg-type]
    return generate_latest(registry)


def gauge(
    name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in rows:
        family.add_metric(label_values, value)
    return family

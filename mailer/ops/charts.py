"""Bar charts as inline SVG, drawn on the server: no script, no CDN, no build step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

WIDTH, HEIGHT, PAD = 640, 180, 36
LEFT = 64  # room for the scale's labels


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


@dataclass
class Chart:
    title: str
    unit: str
    bars: list[Bar] = field(default_factory=list)
    ymax: float = 0.0
    threshold: float | None = None
    threshold_y: float | None = None
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD
    left: int = LEFT
    start: str = ""
    end: str = ""


def bar_chart(
    title: str,
    points: list[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    step_seconds: int,
    *,
    unit: str = "",
    threshold: float | None = None,
) -> Chart:
    """Bars for ``points`` (bin start, value) between ``start`` and ``end``, with an
    optional threshold line; the scale always shows the threshold."""
    bins = max(1, int((end - start).total_seconds() // step_seconds))
    top = max([v for _, v in points] + [threshold or 0.0, 1e-9])
    ymax = top * 1.15
    inner_w, inner_h = WIDTH - LEFT - PAD, HEIGHT - 2 * PAD
    slot = inner_w / bins
    chart = Chart(
        title=title,
        unit=unit,
        ymax=ymax,
        threshold=threshold,
        start=start.strftime("%H:%M"),
        end=end.strftime("%H:%M"),
    )
    for at, value in points:
        index = int((at - start).total_seconds() // step_seconds)
        if not 0 <= index < bins or value <= 0:
            continue
        h = inner_h * value / ymax
        chart.bars.append(
            Bar(
                x=LEFT + index * slot,
                y=PAD + inner_h - h,
                width=max(slot * 0.8, 1.5),
                height=h,
                label=at.strftime("%H:%M"),
                value=value,
            )
        )
    if threshold is not None:
        chart.threshold_y = PAD + inner_h - inner_h * threshold / ymax
    return chart

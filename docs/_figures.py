"""Draw the documentation's figures from the library's own numbers.

    python docs/_figures.py          # rewrites docs/images/refresh-windows.svg

The refresh-window timeline is computed with ``RefreshPolicy().windows(...)``, the same
function the refresher uses, and botocore's fixed windows are read from botocore itself,
so the figure changes when the defaults do. ``tests/test_docs.py`` checks that the
committed SVG is what this script draws. The SVG is written by hand (no plotting
library needed) and is byte-for-byte reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from botocore.credentials import RefreshableCredentials

from aio_assume_role_lib import RefreshPolicy

OUTPUT = Path(__file__).resolve().parent / "images" / "refresh-windows.svg"

WIDTH, LEFT, RIGHT = 760, 190, 736
BAR_HEIGHT, ROW_HEIGHT = 24, 50
FRESH, ADVISORY, BLOCKING = "#43a047", "#ffb300", "#e53935"
TEXT, MUTED = "#212121", "#616161"
EN_DASH = "\N{EN DASH}"
CHAR_WIDTH = 6.7  # a generous estimate of one character's width at font-size 12


@dataclass(frozen=True)
class Row:
    """One credential lifetime; every time is in seconds before expiry."""

    title: str
    subtitle: str
    lifetime: float
    advisory_earliest: float  # the advisory window starts between these two...
    advisory_latest: float
    blocking: float  # ...and the blocking window this long before expiry


@dataclass(frozen=True)
class Panel:
    title: str
    axis_seconds: float  # the axis runs from this long before expiry to expiry
    rows: tuple[Row, ...]


def library_row(lifetime: float, policy: RefreshPolicy) -> Row:
    # rand=0 gives the earliest advisory start, rand=1 the latest (jitter only delays it).
    earliest, blocking_at = policy.windows(obtained_at=0.0, expiry=lifetime, rand=0.0)
    latest, _ = policy.windows(obtained_at=0.0, expiry=lifetime, rand=1.0)
    return Row(
        title="aio-assume-role-lib",
        subtitle="RefreshPolicy()",
        lifetime=lifetime,
        advisory_earliest=lifetime - earliest,
        advisory_latest=lifetime - latest,
        blocking=lifetime - blocking_at,
    )


def botocore_row(lifetime: float) -> Row:
    # botocore's classic windows (its default; the 2026 behaviour is behind a flag): the
    # advisory refresh there also makes the caller wait, unlike ours.
    advisory = min(float(RefreshableCredentials._advisory_refresh_timeout), lifetime)
    mandatory = min(float(RefreshableCredentials._mandatory_refresh_timeout), lifetime)
    return Row(
        title="botocore",
        subtitle="fixed windows",
        lifetime=lifetime,
        advisory_earliest=advisory,
        advisory_latest=advisory,
        blocking=mandatory,
    )


def panels(policy: RefreshPolicy | None = None) -> list[Panel]:
    policy = policy or RefreshPolicy()
    short, long = 900.0, 12 * 3600.0
    return [
        Panel(
            "900-second credentials (the whole lifetime)",
            short,
            (library_row(short, policy), botocore_row(short)),
        ),
        Panel(
            "12-hour credentials (the last 65 minutes)",
            65 * 60.0,
            (library_row(long, policy), botocore_row(long)),
        ),
    ]


def clock(seconds: float) -> str:
    """Time before expiry as ``m:ss``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{_fmt(x)}" y="{_fmt(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _rect(x0: float, x1: float, y: float, height: float, fill: str) -> str:
    return (
        f'<rect x="{_fmt(x0)}" y="{_fmt(y)}" width="{_fmt(x1 - x0)}" height="{_fmt(height)}" '
        f'fill="{fill}"/>'
    )


def _fits(text: str, width: float) -> bool:
    return len(text) * CHAR_WIDTH + 8 <= width


class Drawing:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def row(self, row: Row, top: float, x_of: _Scale) -> None:
        self.add(
            _text(16, top + 11, row.title, "start", ' font-weight="bold"'),
            _text(16, top + 26, row.subtitle, "start", f' fill="{MUTED}"'),
        )
        start, expiry = x_of(row.lifetime), x_of(0)
        earliest, latest = x_of(row.advisory_earliest), x_of(row.advisory_latest)
        blocking = x_of(row.blocking)
        segments = [
            (start, earliest, FRESH, "fresh", "white"),
            (earliest, latest, "url(#jitter)", "", TEXT),
            (latest, blocking, ADVISORY, "advisory", TEXT),
            (blocking, expiry, BLOCKING, "blocking", "white"),
        ]
        for x0, x1, fill, label, color in segments:
            if x1 - x0 < 0.05:
                continue
            self.add(_rect(x0, x1, top, BAR_HEIGHT, fill))
            if label and _fits(label, x1 - x0):
                self.add(_text((x0 + x1) / 2, top + 16, label, extra=f' fill="{color}"'))
        if row.lifetime > x_of.seconds:
            # The bar goes on to the left, beyond the axis: mark the break.
            self.add(
                f'<path d="M{_fmt(start + 9)},{_fmt(top - 3)} l-6,{BAR_HEIGHT + 6}" '
                'stroke="white" stroke-width="3"/>'
            )
        else:
            self.add(
                f'<line x1="{_fmt(start)}" y1="{_fmt(top - 4)}" x2="{_fmt(start)}" '
                f'y2="{_fmt(top + BAR_HEIGHT + 4)}" stroke="{TEXT}" stroke-width="1.5"/>'
            )
        # Where the windows start, under the bar; a jittered start is shown as a range.
        if row.advisory_latest < row.advisory_earliest:
            advisory_label = f"{clock(row.advisory_latest)}{EN_DASH}{clock(row.advisory_earliest)}"
        else:
            advisory_label = clock(row.advisory_earliest)
        marks = [((earliest + latest) / 2, advisory_label), (blocking, clock(row.blocking))]
        if row.lifetime <= x_of.seconds and abs(start - earliest) > 1:
            marks.insert(0, (start, clock(row.lifetime)))
        below = top + BAR_HEIGHT + 13
        for x, label in marks:
            self.add(_text(x, below, label, extra=f' font-size="11" fill="{MUTED}"'))

    def axis(self, y: float, x_of: _Scale) -> None:
        self.add(f'<line x1="{LEFT}" y1="{_fmt(y)}" x2="{RIGHT}" y2="{_fmt(y)}" stroke="{MUTED}"/>')
        minutes = round(x_of.seconds / 60)
        # A tick a minute and a label every 3 on a short axis; every 5 and 10 on a long one.
        tick, label_every = (1, 3) if minutes <= 20 else (5, 10)
        for minute in range(0, minutes + 1, tick):
            x = x_of(minute * 60)
            self.add(
                f'<line x1="{_fmt(x)}" y1="{_fmt(y)}" x2="{_fmt(x)}" y2="{_fmt(y + 4)}" '
                f'stroke="{MUTED}"/>'
            )
            if minute % label_every == 0:
                label = "expiry" if minute == 0 else f"{minute} min"
                self.add(_text(x, y + 16, label, extra=f' font-size="11" fill="{MUTED}"'))
        self.add(
            _text(16, y + 16, "time before expiry", "start", f' font-size="11" fill="{MUTED}"')
        )


class _Scale:
    """x position of a time before expiry, on an axis of ``seconds`` ending at expiry."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, before_expiry: float) -> float:
        clamped = min(before_expiry, self.seconds)
        return LEFT + (self.seconds - clamped) / self.seconds * (RIGHT - LEFT)


def render_svg(policy: RefreshPolicy | None = None) -> str:
    drawing = Drawing()
    y = 46.0
    for panel in panels(policy):
        scale = _Scale(panel.axis_seconds)
        drawing.add(_text(16, y, panel.title, "start", ' font-size="13" font-weight="bold"'))
        y += 14
        for row in panel.rows:
            drawing.row(row, y, scale)
            y += ROW_HEIGHT
        drawing.axis(y - 6, scale)
        y += 40
    legend = [
        (FRESH, "fresh: requests use the credentials as they are"),
        ("url(#jitter)", "the advisory window starts at a random point here"),
        (ADVISORY, "advisory: one refresh in the background, nobody waits"),
        (BLOCKING, "blocking: requests wait for the refresh in flight"),
    ]
    for index, (fill, label) in enumerate(legend):
        x = 16 + (index % 2) * 370
        line_y = y + (index // 2) * 20
        drawing.add(_rect(x, x + 12, line_y - 10, 12, fill), _text(x + 18, line_y, label, "start"))
    height = round(y + 30)
    header = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, '
        f'Segoe UI, Roboto, Helvetica, Arial, sans-serif" font-size="12" fill="{TEXT}">',
        "<title>When assumed-role credentials are refreshed: the fresh, advisory and "
        "blocking windows for 900-second and 12-hour credentials</title>",
        "<defs>",
        '<pattern id="jitter" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)">',
        _rect(0, 6, 0, 6, FRESH),
        _rect(0, 3, 0, 6, ADVISORY),
        "</pattern>",
        "</defs>",
        f'<rect width="{WIDTH}" height="{height}" rx="6" fill="white"/>',
        _text(
            16,
            22,
            "When credentials are refreshed: each bar starts when the credentials were obtained",
            "start",
            ' font-size="14" font-weight="bold"',
        ),
    ]
    return "\n".join([*header, *drawing.parts, "</svg>"]) + "\n"


def main() -> None:
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render_svg(), encoding="utf-8")
    print(
        f"wrote {OUTPUT.relative_to(Path.cwd()) if OUTPUT.is_relative_to(Path.cwd()) else OUTPUT}"
    )


if __name__ == "__main__":
    main()

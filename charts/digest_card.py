"""The digest card: one compact image per brief or recap, a tile per symbol with a 3 x 2 grid of
labelled numbers, sized for a phone (1080 px wide, no text under 16 px)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from charts.style import (
    BG,
    FS_BIG,
    FS_SMALL,
    FS_SUBTITLE,
    FS_TITLE,
    GRID,
    MUTED,
    PANEL,
    TEXT,
    WIDTH_IN,
    maybe_watermark,
    new_figure,
    rendering,
    to_png,
)

HEADER_IN = 1.5
TILE_IN = 3.0
FOOT_LINE_IN = 0.32
COLUMNS = 3
FS_VALUE = 26


@dataclass(frozen=True)
class CardRow:
    symbol: str
    cells: list[tuple[str, str]]  # (label, value), up to 6, filled row by row in 3 columns
    note: str = ""  # one short line under the grid
    tone: str = TEXT  # colour of the symbol: the row's headline state


def render_digest_card(title: str, subtitle: str, rows: list[CardRow], *, data_source: str,
                       footnote: str = "") -> bytes:
    foot = textwrap.wrap(footnote, 80) if footnote else []
    height = HEADER_IN + TILE_IN * max(len(rows), 1) + FOOT_LINE_IN * len(foot) + 0.3
    with rendering():
        fig = new_figure(height_in=height, width_in=WIDTH_IN)
        fig.patch.set_facecolor(BG)

        def y(inches_from_top: float) -> float:
            return 1 - inches_from_top / height

        fig.text(0.04, y(0.35), title, color=TEXT, fontsize=FS_TITLE, fontweight="bold", va="top",
                 parse_math=False)
        fig.text(0.04, y(0.95), subtitle, color=MUTED, fontsize=FS_SUBTITLE, va="top", parse_math=False)
        for i, row in enumerate(rows):
            top = HEADER_IN + i * TILE_IN
            ax = fig.add_axes((0.03, y(top + TILE_IN - 0.12), 0.94, (TILE_IN - 0.24) / height))
            ax.set_facecolor(PANEL)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(GRID)
            fig.text(0.06, y(top + 0.2), row.symbol, color=row.tone, fontsize=FS_BIG, fontweight="bold",
                     va="top", parse_math=False)
            for k, (label, value) in enumerate(row.cells[:2 * COLUMNS]):
                col, line = k % COLUMNS, k // COLUMNS
                x = 0.25 + col * 0.25
                fig.text(x, y(top + 0.22 + line * 1.05), label, color=MUTED, fontsize=FS_SMALL, va="top",
                         parse_math=False)
                fig.text(x, y(top + 0.52 + line * 1.05), value, color=TEXT, fontsize=FS_VALUE,
                         fontweight="bold", va="top", parse_math=False)
            if row.note:
                fig.text(0.06, y(top + TILE_IN - 0.62), row.note, color=MUTED, fontsize=FS_SMALL, va="top",
                         parse_math=False)
        for j, line in enumerate(foot):
            fig.text(0.04, y(HEADER_IN + TILE_IN * len(rows) + 0.1 + j * FOOT_LINE_IN), line, color=MUTED,
                     fontsize=FS_SMALL, va="top", parse_math=False)
        maybe_watermark(fig, data_source)
        return to_png(fig)

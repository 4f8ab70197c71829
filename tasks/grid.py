"""The one grid layout every figure uses: equally sized cells separated by gaps, with optional
text lines above the grid, above every row and a label column on the left.

Units are the caller's (pixels of a mosaic, pixels of an SVG, inches of a matplotlib figure);
the layout only places cells. :mod:`tasks.figures` draws matplotlib axes in it, the sketch
figures draw SVG/PNG cells, DooD's pictures fill one pixel mosaic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GridLayout"]


@dataclass
class GridLayout:
    """Cell ``(r, c)`` has its top-left corner at :meth:`origin`; the whole grid is
    :attr:`width` × :attr:`height`.

    From the top: a gap, ``header`` (title/column-label lines), then per row a ``row_title``
    line, the cell and a gap. From the left: a gap, ``left`` (the row-label column), then per
    column the cell and a gap, with ``col_extra_gap[c]`` more space before column ``c``.
    """

    nrows: int
    ncols: int
    cell_w: float
    cell_h: float
    gap: float
    header: float = 0.0
    row_title: float = 0.0
    left: float = 0.0
    col_extra_gap: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nrows < 1 or self.ncols < 1:
            raise ValueError(f"a grid needs >= 1 row and column, found {self.nrows}×{self.ncols}")
        x = self.gap + self.left
        self.col_x: list[float] = []
        for c in range(self.ncols):
            x += self.col_extra_gap.get(c, 0.0)
            self.col_x.append(x)
            x += self.cell_w + self.gap
        self.width = x
        y = self.gap + self.header
        self.row_y: list[float] = []  # distance from the top to the top of each row's cell
        for _ in range(self.nrows):
            y += self.row_title
            self.row_y.append(y)
            y += self.cell_h + self.gap
        self.height = y

    def origin(self, row: int, col: int) -> tuple[float, float]:
        """``(x, y)`` of the top-left corner of cell ``(row, col)``, ``y`` from the top."""
        return self.col_x[col], self.row_y[row]

    def centre_x(self, col: int) -> float:
        """Horizontal centre of column ``col``."""
        return self.col_x[col] + 0.5 * self.cell_w

    def row_title_y(self, row: int) -> float:
        """Vertical centre of the text line above row ``row``."""
        return self.row_y[row] - 0.5 * self.row_title

    def header_line_y(self, line: int, line_height: float) -> float:
        """Vertical centre of header line ``line`` (0 = top) of height ``line_height``."""
        return self.gap + (line + 0.5) * line_height

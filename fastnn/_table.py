"""Plain-text tables for the terminal (diagnostics summaries, experiment results)."""
import math


def format_number(value, digits=4):
    """A table cell for a number: ``digits`` significant digits for 0 and 1e-3 <= |x| < 1e4,
    otherwise scientific notation; "-" for None (not applicable), "nan", "inf", "-inf"."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"


def format_table(header, rows, group=0):
    """Left-aligned columns two spaces apart under a header and a rule of dashes.

    Cells are shown with ``str``. With ``group=k``, the first k cells of a row are left
    blank when they repeat the previous row's (one block of lines per layer, say).
    """
    header = [str(h) for h in header]
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[k]) for row in rows)) if rows else len(h)
              for k, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header).rstrip(), "  ".join("-" * w for w in widths)]
    previous = None
    for row in rows:
        shown = row if row[:group] != previous else [""] * group + row[group:]
        previous = row[:group]
        out.append(line.format(*shown).rstrip())
    return "\n".join(out)

"""The table printed at the end of a run: one row per figure, one column pair per configuration."""

from __future__ import annotations

from typing import Any


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return "-"
    text = f"{_number(figure['value'])} {figure['unit']}"
    if figure.get("ratio") is not None:
        text += f" ({_number(figure['ratio'])}x"
        if figure.get("target") is not None:
            text += f", target {_number(figure['target'])}x {'met' if figure['met'] else 'MISSED'}"
        text += ")"
    elif figure.get("target") is not None:
        text += f" (target {_number(figure['target'])} {'met' if figure['met'] else 'MISSED'})"
    return text


def table(runs: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """Rows in figure order, the configurations side by side; baselines get a row of their own."""
    names = list(runs)
    rows: list[tuple[str, ...]] = []
    keys: list[tuple[int, str, str]] = []
    for run in runs.values():
        for figure in run.get("figures", []):
            key = (figure["figure"], figure["key"], figure["label"])
            if key not in keys:
                keys.append(key)
    keys.sort(key=lambda item: item[0])
    for number, key, label in keys:
        found = {name: next((f for f in runs[name].get("figures", []) if f["key"] == key), None) for name in names}
        rows.append((str(number), label, *(_cell(found[name]) for name in names)))
        baseline = next((f for f in found.values() if f and f.get("baseline") is not None), None)
        if baseline:
            rows.append(
                (
                    "",
                    f"  {baseline['baseline_label']}",
                    *(
                        f"{_number(f['baseline'])} {f['unit']}" if f and f.get("baseline") is not None else "-"
                        for f in found.values()
                    ),
                )
            )
    header = ("#", "figure", *(labels.get(name, name) for name in names))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for name in names:
        for number, error in sorted(runs[name].get("errors", {}).items()):
            lines.append(f"figure {number} failed on {labels.get(name, name)}: {error.strip().splitlines()[-1]}")
        if runs[name].get("skipped"):
            lines.append(f"{labels.get(name, name)} skipped: {runs[name]['skipped']}")
    return "\n".join(lines)

"""Writing an evaluation run to disk: ``report.md``, ``results.json`` and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.harness import METRIC_KEYS, EvalResult

CHART = "metrics.png"
RATE_KEYS = [k for k in METRIC_KEYS if k != "n" and not k.startswith("latency")]


def fmt(value: Any, key: str = "") -> str:
    """A metric for people: rates with 3 decimals, latencies in ms, None as n/a."""
    if value is None:
        return "n/a"
    if key.startswith("latency"):
        return f"{value:.0f} ms"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_chart(result: EvalResult, path: Path) -> Path:
    """Bar chart of the rate metrics beside a histogram of per-question latency (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, hist) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    values = [result.metrics.get(k) for k in RATE_KEYS]
    heights = [v if v is not None else 0.0 for v in values]
    drawn = bars.bar(
        range(len(RATE_KEYS)), heights, color=["#4c72b0" if v is not None else "#cccccc" for v in values]
    )
    for rect, value, key in zip(drawn, values, RATE_KEYS, strict=True):
        bars.annotate(
            fmt(value, key),
            (rect.get_x() + rect.get_width() / 2, rect.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    bars.set_xticks(range(len(RATE_KEYS)), [k.replace("_", "\n") for k in RATE_KEYS], fontsize=7)
    bars.set_ylim(0, 1.1)
    bars.set_title(f"metrics (n={result.metrics.get('n')}, k={result.k}, judge={result.judge})")
    latencies = [q.latency_ms for q in result.questions]
    hist.hist(latencies, bins=min(20, max(5, len(latencies) // 2)), color="#55a868")
    for key, style in (("latency_p50_ms", "--"), ("latency_p95_ms", ":")):
        if result.metrics.get(key) is not None:
            hist.axvline(
                result.metrics[key],
                color="black",
                linestyle=style,
                label=f"{key.split('_')[1]} {result.metrics[key]:.0f} ms",
            )
    hist.set_xlabel("time to answer (ms)")
    hist.set_ylabel("questions")
    hist.set_title("latency")
    if latencies:
        hist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: EvalResult, gate_failures: list[str] | None = None) -> str:
    """The run as a Markdown report: overall metrics, gates, then one row per question."""
    lines = [
        f"# Evaluation: {result.dataset or 'dataset'}",
        "",
        f"answerer `{result.answerer}`, judge `{result.judge}`, k={result.k}, "
        f"{len(result.questions)} questions in {result.seconds:.1f} s",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {key} | {fmt(result.metrics.get(key), key)} |" for key in METRIC_KEYS),
        "",
        f"![metrics and latency]({CHART})",
        "",
    ]
    if gate_failures is not None:
        lines += ["## Gates", ""]
        lines += [f"- FAILED: {g}" for g in gate_failures] if gate_failures else ["- all gates passed"]
        lines.append("")
    lines += [
        "## Questions",
        "",
        "| id | ok | rank | latency | answer | failures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for q in result.questions:
        answer = q.answer.replace("|", "\\|").replace("\n", " ")
        answer = answer if len(answer) <= 120 else answer[:117] + "…"
        failures = "; ".join(f.replace("|", "\\|") for f in q.failures) or ""
        lines.append(
            f"| {q.id} | {'yes' if q.passed else 'no'} | {q.rank or '-'} | {q.latency_ms:.0f} ms | "
            f"{answer} | {failures} |"
        )
    return "\n".join(lines) + "\n"


def write_report(result: EvalResult, directory: Path, gate_failures: list[str] | None = None) -> list[Path]:
    """Write ``report.md``, ``results.json`` and the chart into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        **result.to_json(),
        "config": {
            "k": result.k,
            "judge": result.judge,
            "answerer": result.answerer,
            "dataset": result.dataset,
            "seconds": result.seconds,
        },
        "gate_failures": gate_failures or [],
    }
    json_path = directory / "results.json"
    json_path.write_text(
        json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    md_path = directory / "report.md"
    md_path.write_text(markdown(result, gate_failures), encoding="utf-8")
    return [md_path, json_path, write_chart(result, directory / CHART)]

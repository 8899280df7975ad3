"""The plots of ``seasoned bench`` (matplotlib, Agg backend), each drawn only when the grid has its data.

- ``accuracy_vs_tokens.png``: accuracy against mean tokens per task, one curve per strategy across budgets,
  with the Wilson 95% interval as error bars (one panel per environment), and the oracle's curve for
  simulated environments;
- ``subtask_spend.png``: multi-stage arms, mean tokens per task spent on each subtask kind, stacked, one
  bar per arm, grouped by allocation policy;
- ``memory_stream.png``: memory on versus off over the task stream, rolling success rate and tokens per
  solved task (arms that differ only in memory share a colour; on is solid with circles, off dashed with
  crosses). Each line is drawn a few points apart from the others, so identical lines stay visible; the x
  axis counts whole tasks; the title gives the window actually used (a short stream uses all its tasks).
"""

from __future__ import annotations

from pathlib import Path

from .grid_config import Arm
from .stats import rolling

CURVE_FIELDS = ("model", "allocation", "memory")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_name(arm: Arm, varying: list[str]) -> str:
    extra = [f for f in CURVE_FIELDS if f in varying]
    return arm.label(["strategy", *extra])


def accuracy_vs_tokens(summaries: list[dict], arms: dict[str, Arm], varying: list[str], path: Path,
                       oracles: dict[str, list[dict]] | None = None) -> Path | None:
    plt = _pyplot()
    envs = sorted({arms[s["arm"]].env for s in summaries if s["n"]})
    if not envs:
        return None
    fig, axes = plt.subplots(1, len(envs), figsize=(6.4 * len(envs), 4.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        curves: dict[str, list[tuple[float, dict, Arm]]] = {}
        for s in summaries:
            arm = arms[s["arm"]]
            if arm.env == env and s["n"]:
                curves.setdefault(_curve_name(arm, varying), []).append((s["mean_tokens"], s, arm))
        for name, points in sorted(curves.items()):
            points.sort(key=lambda p: (p[2].budget is None, p[2].budget or 0, p[0]))
            xs = [p[0] for p in points]
            ys = [p[1]["accuracy"] for p in points]
            low = [p[1]["accuracy"] - p[1]["ci95"][0] for p in points]
            high = [p[1]["ci95"][1] - p[1]["accuracy"] for p in points]
            ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=name)
            labels: dict[tuple[float, float], list[str]] = {}
            for x, y, (_, _, arm) in zip(xs, ys, points):
                labels.setdefault((x, y), []).append(str(arm.budget) if arm.budget is not None else "no cap")
            for (x, y), names in labels.items():  # budgets that landed on the same point share a label
                ax.annotate(",".join(names), (x, y), fontsize=7, textcoords="offset points", xytext=(4, 4))
        if oracles and oracles.get(env):  # simulated environment: the best any policy could do
            top = max(x for name_points in curves.values() for x, _, _ in name_points) * 1.2
            shown = [p for p in oracles[env] if p["tokens_per_task"] <= top]
            ax.plot([p["tokens_per_task"] for p in shown], [p["accuracy"] for p in shown], "k--", label="oracle")
        n = max(s["n"] for s in summaries if arms[s["arm"]].env == env)
        ax.set(title=f"{env} (n={n} tasks per point, 95% Wilson intervals)", xlabel="mean tokens per task",
               ylabel="accuracy", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, plt, path)


def subtask_spend(summaries: list[dict], arms: dict[str, Arm], varying: list[str], path: Path) -> Path | None:
    rows = [s for s in summaries if s.get("subtask_tokens")]
    if not rows:
        return None
    plt = _pyplot()
    rows.sort(key=lambda s: (arms[s["arm"]].env, arms[s["arm"]].allocation or "", s["arm"]))
    kinds = sorted({kind for s in rows for kind in s["subtask_tokens"]})
    others = [f for f in varying if f != "allocation"]
    labels = [arms[s["arm"]].label(["allocation", *others]).replace(" / ", "\n") for s in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4.8))
    bottom = [0.0] * len(rows)
    for kind in kinds:
        values = [s["subtask_tokens"].get(kind, 0.0) for s in rows]
        ax.bar(range(len(rows)), values, bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set(title="spend per subtask kind (mean tokens per task)", ylabel="tokens")
    ax.legend(title="subtask kind", fontsize=8)
    return _save(fig, plt, path)


LINE_OFFSET_POINTS = 3.0  # how far apart (on screen) lines are drawn, so identical ones do not hide each other
MAX_MARKERS = 25  # markers per line on long streams


def memory_stream(rows_by_arm: dict[str, list[dict]], arms: dict[str, Arm], varying: list[str], window: int,
                  path: Path) -> Path | None:
    """Pairs of arms that differ only in memory; nothing when the grid has no such pair."""
    fig = memory_stream_figure(rows_by_arm, arms, varying, window)
    return None if fig is None else _save(fig, _pyplot(), path)


def memory_stream_figure(rows_by_arm: dict[str, list[dict]], arms: dict[str, Arm], varying: list[str],
                         window: int):
    """The figure of ``memory_stream`` (None without a pair of arms differing only in memory)."""
    pairs: dict[tuple, dict[bool, str]] = {}
    for key, arm in arms.items():
        if rows_by_arm.get(key):
            fields = arm.fields()
            fields.pop("memory")
            pairs.setdefault(tuple(sorted(fields.items())), {})[arm.memory] = key
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    if not pairs:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import offset_copy

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    others = [f for f in varying if f != "memory"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines = [(number, pair, on) for number, (_, pair) in enumerate(sorted(pairs.items())) for on in (True, False)]
    longest = max(len(rows_by_arm[pair[on]]) for _, pair, on in lines)
    for position, (number, pair, on) in enumerate(lines):
        colour = colours[number % len(colours)]
        rows = sorted(rows_by_arm[pair[on]], key=lambda r: r["index"])
        success, per_solved = rolling([r["passed"] for r in rows], [r["tokens"] for r in rows], window)
        xs = [r["index"] + 1 for r in rows]
        name = arms[pair[on]].label([*others, "memory"])
        shift = (position - (len(lines) - 1) / 2) * LINE_OFFSET_POINTS  # points: data values are unchanged
        style = {"linestyle": "-" if on else "--", "marker": "o" if on else "x", "markersize": 4,
                 "color": colour, "label": name, "markevery": max(1, len(xs) // MAX_MARKERS)}
        for ax, ys in ((top, success), (bottom, [float("nan") if v is None else v for v in per_solved])):
            (line,) = ax.plot(xs, ys, **style)  # placed in data space first, so the axis limits fit the data
            line.set_transform(offset_copy(ax.transData, fig=fig, x=shift, y=shift, units="points"))
    used = min(window, longest)
    shown = f"rolling window of {used} task{'s' if used != 1 else ''}" + (", the whole stream" if used < window else "")
    top.set(title=f"memory on vs off over the task stream\n({shown})", ylabel="success rate", ylim=(-0.04, 1.04))
    bottom.set(xlabel="task in stream", ylabel="tokens per solved task")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend(fontsize=8)
    return fig


def _save(fig, plt, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

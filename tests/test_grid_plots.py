"""memory_stream.png stays readable: identical lines do not hide each other, whole task numbers on the x
axis, and the title gives the window actually used."""

import numpy as np
import pytest
from seasoned.benchmarks.grid_config import Arm
from seasoned.benchmarks.grid_plots import memory_stream, memory_stream_figure


def arms_and_rows(n: int) -> tuple[dict, dict]:
    arms, rows = {}, {}
    for on in (True, False):
        arm = Arm(env="addition", model="scripted/x", strategy="single", allocation=None, budget=None, memory=on,
                  seed=0, max_tokens=64)
        arms[arm.key] = arm
        rows[arm.key] = [{"index": i, "passed": i % 2 == 0, "tokens": 10 + i} for i in range(n)]  # identical
    return arms, rows


def drawn(line) -> np.ndarray:
    """Where the line's points land on the canvas (pixels)."""
    return line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]))


@pytest.mark.parametrize("n, window, title", [(3, 20, "(rolling window of 3 tasks, the whole stream)"),
                                             (40, 10, "(rolling window of 10 tasks)")])
def test_identical_lines_stay_visible_with_whole_task_numbers(n, window, title):
    import matplotlib.pyplot as plt

    arms, rows = arms_and_rows(n)
    fig = memory_stream_figure(rows, arms, ["memory"], window)
    try:
        top, bottom = fig.axes
        assert title in top.get_title()
        for ax in (top, bottom):
            on, off = ax.get_lines()
            assert list(on.get_ydata()) == list(off.get_ydata()) or np.allclose(on.get_ydata(), off.get_ydata(),
                                                                                equal_nan=True)
            assert not np.allclose(drawn(on), drawn(off), equal_nan=True)  # same data, not drawn on top
            assert on.get_marker() != off.get_marker() and on.get_linestyle() != off.get_linestyle()
            fig.canvas.draw()
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(fig)


def test_the_png_is_written_and_nothing_without_a_pair(tmp_path):
    arms, rows = arms_and_rows(4)
    assert memory_stream(rows, arms, ["memory"], 5, tmp_path / "m.png") == tmp_path / "m.png"
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_on = {k: v for k, v in rows.items() if arms[k].memory}
    assert memory_stream(only_on, arms, ["memory"], 5, tmp_path / "none.png") is None

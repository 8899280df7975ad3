"""llama.cpp's CPU defaults: on a CPU with AMX the extra weight buffers are left out (ggml's AMX matrix
multiply crashed the process at the first decode there), elsewhere llama.cpp's defaults stand."""

import pytest

pytest.importorskip("llama_cpp")

import llama_cpp
from seasoned.models import llama_cpu


@pytest.mark.parametrize("amx, choice, expected", [
    (True, None, False), (False, None, True), (True, "on", True), (False, "off", False)])
def test_extra_buffers_are_left_out_where_the_cpu_has_amx(monkeypatch, amx, choice, expected):
    monkeypatch.setattr(llama_cpu, "cpu_has_amx", lambda: amx)
    if choice:
        monkeypatch.setenv("SEASONED_LOCAL_EXTRA_BUFFERS", choice)
    llama_cpu.use_safe_defaults()
    llama_cpu.use_safe_defaults()  # idempotent: one wrapper, not two
    assert llama_cpp.llama_model_default_params().use_extra_bufts is expected
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is expected


def test_the_cpu_flags_are_read():
    assert isinstance(llama_cpu.cpu_has_amx(), bool)


def test_a_bad_setting_is_named(monkeypatch):
    from seasoned.errors import SettingsError
    from seasoned.settings import settings

    monkeypatch.setenv("SEASONED_LOCAL_EXTRA_BUFFERS", "sometimes")
    with pytest.raises(SettingsError, match="LOCAL_EXTRA_BUFFERS"):
        settings()

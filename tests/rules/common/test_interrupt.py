"""A child stopped by Ctrl-C is the build being interrupted, not the child failing."""

import subprocess

import pytest

from rules.common.errors import raise_if_interrupted


@pytest.mark.parametrize("script", ["kill -INT $$", "exit 130"])
def test_a_child_stopped_by_sigint_raises_keyboard_interrupt(script):
    proc = subprocess.run(["sh", "-c", script])
    with pytest.raises(KeyboardInterrupt):
        raise_if_interrupted(proc.returncode)


@pytest.mark.parametrize("code", [1, 2, -9, 137])
def test_other_failures_are_left_to_the_caller(code):
    raise_if_interrupted(code)

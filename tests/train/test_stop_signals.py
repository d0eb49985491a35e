"""Ctrl-C (SIGINT) during training is handled like SLURM's SIGTERM/SIGUSR1: a flag the loop reads at
the next step boundary (save, name train.resume=auto, exit 75); a second Ctrl-C stops at once."""

import os
import signal

import pytest

from rocoft_llm.train.loop import StopFlag


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_only_sets_the_flag(sig):
    before = signal.getsignal(sig)
    with StopFlag() as stop:
        os.kill(os.getpid(), sig)
        assert stop.signum == sig
    assert signal.getsignal(sig) is before  # the previous handler is back


def test_a_second_ctrl_c_stops_at_once():
    with StopFlag() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)

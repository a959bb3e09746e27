"""The simulated ESP32 board: flash, bootloader, MicroPython runs, serial REPL."""

from .board import Board, BoardError, RunResult
from .flash import Flash

__all__ = ["Board", "BoardError", "Flash", "RunResult"]

"""acupdate-deploy: put the acupdate agent on a MicroPython board with mpremote.

Compiles device/acupdate with mpy-cross, copies it to /lib/acupdate with boot.py,
main.py and /acupdate.json (written from command-line options), then checks what the
board holds. See ``python -m tools.deploy --help``.
"""

from .core import compile_package, deploy
from .errors import DeployError, OptionError
from .settings import Options, board_files, build, check_ca, dumps

__all__ = [
    "DeployError",
    "OptionError",
    "Options",
    "board_files",
    "build",
    "check_ca",
    "compile_package",
    "deploy",
    "dumps",
]

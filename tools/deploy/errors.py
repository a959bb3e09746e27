"""The deploy tool's one error type (and its kind for bad options)."""

from tools.cli import CLIError


class DeployError(CLIError):
    """Deploying cannot go on; the message says why and what to do. Exit status 1."""

    exit_code = 1


class OptionError(DeployError):
    """A command-line option the board would not accept. Exit status 2."""

    exit_code = 2

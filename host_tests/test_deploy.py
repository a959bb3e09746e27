"""tools.deploy and package.json against the simulated board, through the real mpremote."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import mpremote

from tools.board.serial import SerialBoard
from tools.demo.__main__ import SerialLog
from tools.deploy import Options, build, dumps
from tools.deploy.__main__ import main
from tools.deploy.core import Plan, check_board

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "device" / "acupdate"
MODULES = sorted(p.stem for p in PKG.glob("*.py"))
WIFI = ["--wifi-ssid", "acupdate-lab", "--wifi-key", "otapass123"]


@pytest.fixture
def serial(board):
    log = SerialLog()
    with SerialBoard(board, echo=log) as sb:
        assert sb.wait_boots(1)
        sb.log = log
        yield sb


def deploy(sb, tmp_path, *args):
    return main(["--device", sb.device, "--build-dir", str(tmp_path / "build"), *args])


def test_deploy_puts_the_compiled_agent_boot_files_and_settings_on_the_board(
    serial, board, tmp_path, capsys
):
    stale = board.fs / "lib" / "acupdate"
    stale.mkdir(parents=True)
    (stale / "config.py").write_text("raise ImportError('stale source shadows the .mpy')\n")
    (stale / "gone.mpy").write_bytes(b"M")
    args = [*WIFI, "--server", "http://127.0.0.1:8123/fw", "--timeout", "5", "--led", "2"]
    args += ["--led-active", "0", "--no-reboot", "--health-import", "json"]
    args += ["--startup-update", "app.bin", "--reset"]
    assert deploy(serial, tmp_path, *args) == 0
    out = capsys.readouterr().out
    assert "acupdate.config imports from /lib/acupdate/config.mpy" in out
    assert serial.wait_boots(2)  # --reset: a hard reset, boot.py from the deploy ran
    assert serial.log.wait_for("Wi-Fi 'acupdate-lab' joined")
    text = serial.log.text()
    assert text.rfind("boot: slot=ota_0") < text.find("Wi-Fi 'acupdate-lab' joined")

    on_board = sorted(p.name for p in (board.fs / "lib" / "acupdate").iterdir())
    assert on_board == [f"{m}.mpy" for m in MODULES]  # stale files gone, no .py
    for name in ("boot.py", "main.py"):
        assert (board.fs / name).read_text() == (ROOT / name).read_text()
    cfg = json.loads((board.fs / "acupdate.json").read_text())
    assert cfg == {
        "wifi": {"ssid": "acupdate-lab", "key": "otapass123"},
        "server": {
            "url": "http://127.0.0.1:8123/fw",
            "timeout": 5,
            "led": 2,
            "led_on": 0,
            "reboot": False,
        },
        "health": {"network": True, "imports": ["json"]},
        "startup": {"update": True, "image": "app.bin", "timeout": 3},
    }
    # The board reads those settings back through the agent (real MicroPython, the .mpy),
    # and a traceback names the module where it lives on the board (mpy-cross -s).
    code = (
        "import sys, io, acupdate.repl, acupdate.config\n"
        "print(acupdate.config.__file__)\n"
        "print(repr(acupdate.repl.config()))\n"
        "s = io.StringIO()\n"
        "try:\n    acupdate.config.parse_url(5)\n"
        "except ValueError as e:\n    sys.print_exception(e, s)\n"
        "print(s.getvalue())\n"
    )
    out = mpremote(serial, "exec", code)
    assert "/lib/acupdate/config.mpy" in out
    assert "Config(url='http://127.0.0.1:8123/fw', timeout=5, led=2, led_on=0, reboot=False)" in out
    assert 'File "acupdate/config.py"' in out


def test_redeploy_as_source_replaces_the_mpy_and_keeps_the_settings(serial, board, tmp_path):
    assert deploy(serial, tmp_path, *WIFI, "--server", "http://127.0.0.1:8000/") == 0
    cfg = (board.fs / "acupdate.json").read_text()
    assert deploy(serial, tmp_path, "--source") == 0
    on_board = sorted(p.name for p in (board.fs / "lib" / "acupdate").iterdir())
    assert on_board == [f"{m}.py" for m in MODULES]
    assert (board.fs / "acupdate.json").read_text() == cfg  # no options: file kept
    out = mpremote(serial, "exec", "import acupdate.config; print(acupdate.config.__file__)")
    assert out.strip() == "/lib/acupdate/config.py"


def test_config_only_writes_just_the_settings(serial, board, tmp_path):
    assert deploy(serial, tmp_path, "--config-only", "--server", "http://10.0.0.5/") == 0
    assert json.loads((board.fs / "acupdate.json").read_text())["server"]["url"] == (
        "http://10.0.0.5/"
    )
    assert not (board.fs / "lib").exists()
    assert not (board.fs / "boot.py").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--server", "https://h:8000/"], "http:// only, got https://"),
        (["--server", "192.168.1.10:8000"], "http:// only"),
        (["--server", "http:///fw"], "has no host"),
        (["--server", "http://h:99999/"], "Port out of range"),
        (["--server", "http://h:80x/"], "--server 'http://h:80x/'"),
        (["--server", "http://h/fw?x=1"], "query or fragment"),
        (["--server", "http://u:p@h/"], "user:password@"),
        (["--server", "http://h/../up"], "leaves the catalog folder"),
        (["--wifi-key", "otapass123"], "--wifi-key needs --wifi-ssid"),
        (["--wifi-ssid", "lab", "--wifi-key", "short"], "got 5 characters"),
        (["--wifi-ssid", "x" * 33], "got 33 bytes"),
        (["--timeout", "5"], "need(s) --server"),
        (["--server", "http://h/", "--timeout", "8000"], "at most 300 seconds, got 8000"),
        (["--server", "http://h/", "--timeout", "0"], "more than 0"),
        (["--server", "http://h/", "--timeout", "soon"], "invalid float value: 'soon'"),
        (["--server", "http://h/", "--led", "99"], "GPIO number 0..48, got 99"),
        (["--server", "http://h/", "--led-active", "1"], "--led-active needs --led"),
        (["--server", "http://h/", "--led", "2", "--led-active", "2"], "invalid choice: 2"),
        (["--health-import", "1app"], "'1app' is not a module name"),
        (["--server", "http://h/", "--startup-update", "fw/app.bin"], "file name in the server"),
        (["--startup-timeout", "3"], "needs --startup-update"),
        (["--config-only"], "--config-only needs settings options"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, words, capsys, tmp_path):
    # No board is touched: options are checked before anything is built or copied.
    rc = main(["--device", "/dev/null-no-board", "--build-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert words in err
    assert not (tmp_path / "lib").exists()


def test_bad_url_from_the_command_line_module():
    res = subprocess.run(
        [sys.executable, "-m", "tools.deploy", "config", "--server", "ftp://h/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "acupdate-deploy: --server 'ftp://h/': the board speaks http:// only" in res.stderr


def test_config_subcommand_prints_or_writes_the_json(capsys, tmp_path):
    args = ["config", *WIFI, "--server", "http://127.0.0.1:8000/", "--no-health-network"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["health"] == {"network": False}
    assert printed["server"] == {"url": "http://127.0.0.1:8000/", "timeout": 8, "reboot": True}
    assert main([*args, "-o", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text()) == printed


def test_health_network_is_not_required_without_wifi():
    assert build(Options(server="http://h/"))["health"] == {"network": False}
    assert build(Options(wifi_ssid="open"))["wifi"] == {"ssid": "open", "key": ""}
    assert json.loads(dumps(build(Options()))) == {
        "health": {"network": False},
        "startup": {"update": False},
    }


def test_dry_run_without_device_lets_mpremote_find_the_board(capsys, tmp_path):
    assert main(["--dry-run", "--build-dir", str(tmp_path)]) == 0
    cmd = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ "))
    assert "mpremote exec" in cmd and " connect " not in cmd
    assert sorted(p.name for p in (tmp_path / "lib" / "acupdate").iterdir()) == [
        f"{m}.mpy" for m in MODULES
    ]


def test_a_missing_board_is_a_failure_with_mpremote_s_words(capsys, tmp_path):
    rc = main(["--device", str(tmp_path / "ttyNONE"), "--build-dir", str(tmp_path)])
    assert rc == 1
    assert "mpremote failed" in capsys.readouterr().err


def test_check_board_finds_what_does_not_match(tmp_path):
    mod = tmp_path / "config.mpy"
    mod.write_bytes(b"x" * 10)
    plan = Plan([mod], None, startup=False, reset=False)
    report = {
        "files": {"/lib/acupdate/config.mpy": 9, "/lib/acupdate/old.py": 3},
        "module": "/lib/acupdate/config.py",
    }
    problems = check_board(report, plan, None)
    assert "/lib/acupdate/config.mpy: 9 bytes on the board, 10 here" in problems
    assert "stale files left in /lib/acupdate: /lib/acupdate/old.py" in problems
    assert "acupdate.config imports from /lib/acupdate/config.py, not " in problems[2]


# --- package.json for `mpremote mip install` ----------------------------------------------


def test_package_json_lists_every_module_and_the_project_version():
    pkg = json.loads((ROOT / "package.json").read_text())
    urls = dict(pkg["urls"])
    assert sorted(urls) == [f"acupdate/{m}.py" for m in MODULES]
    for dest, src in urls.items():
        assert src == f"device/{dest}" and (ROOT / src).is_file()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pkg["version"] == version


def test_mip_install_from_the_local_repository(serial, board):
    out = mpremote(serial, "mip", "install", str(ROOT / "package.json"), timeout=120)
    assert "Done" in out
    installed = board.fs / "lib" / "acupdate"
    assert sorted(p.name for p in installed.iterdir()) == [f"{m}.py" for m in MODULES]
    for m in MODULES:
        assert (installed / f"{m}.py").read_bytes() == (PKG / f"{m}.py").read_bytes()
    out = mpremote(
        serial,
        "exec",
        "import acupdate.config as c; print(c.__file__, c.Config(url='http://h:81/x').url())",
    )
    assert out.strip() == "/lib/acupdate/config.py http://h:81/x"

"""tools.deploy and package.json against the simulated board, through the real mpremote."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import mpremote
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from faults import make_certs
from signing import espsecure

from tools import devicepkg
from tools.board.serial import SerialBoard
from tools.demo.__main__ import SerialLog
from tools.deploy import Options, board_files, build, dumps
from tools.deploy.__main__ import main
from tools.deploy.core import Plan, check_board
from tools.server.core import UpdateServer

ROOT = Path(__file__).resolve().parent.parent
MODULES = devicepkg.modules()  # 'acupdate/agent.py', ..., 'acupdate/http/client.py', ...


def tree(folder: Path) -> list[str]:
    """The files under `folder` as 'acupdate/...' paths (folder is an 'acupdate'), sorted."""
    return sorted(p.relative_to(folder.parent).as_posix() for p in folder.rglob("*") if p.is_file())


def compiled(suffix: str) -> list[str]:
    """MODULES with `suffix` ('.mpy' or '.py') for '.py'."""
    return sorted(m[:-3] + suffix for m in MODULES)


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
    assert "next reset" not in out and "board: hard reset" in out
    assert serial.wait_boots(2)  # --reset: a hard reset, boot.py from the deploy ran
    assert serial.log.wait_for("Wi-Fi 'acupdate-lab' joined")
    text = serial.log.text()
    assert text.rfind("boot: slot=ota_0") < text.find("Wi-Fi 'acupdate-lab' joined")

    assert tree(board.fs / "lib" / "acupdate") == compiled(".mpy")  # stale files gone, no .py
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
        "try:\n    acupdate.config.Config(url=5)\n"
        "except ValueError as e:\n    sys.print_exception(e, s)\n"
        "print(s.getvalue())\n"
    )
    out = mpremote(serial, "exec", code)
    assert "/lib/acupdate/config.mpy" in out
    assert "Config(url='http://127.0.0.1:8123/fw', timeout=5, led=2, led_on=0, reboot=False)" in out
    assert 'File "acupdate/config.py"' in out


def test_redeploy_as_source_replaces_the_mpy_and_keeps_the_settings(
    serial, board, tmp_path, capsys
):
    assert deploy(serial, tmp_path, *WIFI, "--server", "http://127.0.0.1:8000/") == 0
    # Without --reset the board runs the new boot.py only from its next reset: said so.
    assert (
        "board: the new boot.py (Wi-Fi, health check) runs from the board's next reset: "
        "--reset, or Ctrl-D at its REPL" in capsys.readouterr().out
    )
    cfg = (board.fs / "acupdate.json").read_text()
    assert deploy(serial, tmp_path, "--source") == 0
    assert tree(board.fs / "lib" / "acupdate") == compiled(".py")
    assert (board.fs / "acupdate.json").read_text() == cfg  # no options: file kept
    out = mpremote(serial, "exec", "import acupdate.config; print(acupdate.config.__file__)")
    assert out.strip() == "/lib/acupdate/config.py"


def test_config_only_writes_just_the_settings(serial, board, tmp_path):
    assert deploy(serial, tmp_path, "--config-only", "--server", "http://10.0.0.5/") == 0
    assert json.loads((board.fs / "acupdate.json").read_text())["server"]["url"] == (
        "http://10.0.0.5/"
    )
    assert not (board.fs / "lib").exists()
    # The board keeps the boot.py MicroPython made at its first boot: not the agent's.
    assert (board.fs / "boot.py").read_text() != (ROOT / "boot.py").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--server", "https://h:8000/"], "'https://h:8000/' is https: give --ca FILE"),
        (["--server", "192.168.1.10:8000"], "http:// and https:// only"),
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
    assert "--server 'ftp://h/': the board speaks http:// and https:// only, got ftp://" in (
        res.stderr
    )


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
    assert tree(tmp_path / "lib" / "acupdate") == compiled(".mpy")


def test_a_missing_serial_port_is_a_misuse_said_before_the_build(capsys, tmp_path):
    rc = main(["--device", str(tmp_path / "ttyNONE"), "--build-dir", str(tmp_path / "b")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m tools.deploy: error: --device ") and err.count("\n") == 1
    assert "No such file or directory (is the board plugged in?" in err
    assert not (tmp_path / "b" / "lib").exists()


def test_a_board_mpremote_does_not_find_is_a_failure_with_mpremote_s_words(capsys, tmp_path):
    rc = main(["--device", "id:NOPE", "--build-dir", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "mpremote failed" in err and "no device with serial number NOPE" in err


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


def test_the_ca_file_goes_before_the_settings_and_is_checked_on_the_board(tmp_path):
    ca, cfg = tmp_path / "ca.der", tmp_path / "acupdate.json"
    ca.write_bytes(b"0" * 300)
    cfg.write_text("{}")
    plan = Plan([], cfg, startup=False, reset=False, files=[(ca, "/ca.der")])
    copies = [c[1:] for c in plan.commands() if c[0] == "cp"]
    assert copies == [[str(ca), ":/ca.der"], [str(cfg), ":/acupdate.json"]]
    assert check_board({"files": {"/ca.der": 300}}, plan, None) == []
    assert check_board({"files": {"/ca.der": 299}}, plan, None) == [
        "/ca.der: 299 bytes on the board, 300 here"
    ]
    assert check_board({"files": {}}, plan, None) == [
        "/ca.der: missing bytes on the board, 300 here"
    ]


# --- the transport: https with a CA file, basic auth, timing ------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("pki"))


TRANSPORT = ["--user", "fleet", "--password", "pw: s3cret", "--connect-timeout", "4"]
TRANSPORT += ["--deadline", "120", "--retries", "5", "--backoff", "0.25"]

# On the board: the settings as acupdate.repl reads them, then the catalog through them.
CONFIG_AND_LS = """
import json
from acupdate import repl
c = repl.config()
print(repr(c))
print(json.dumps([c.tls, c.connect_timeout, c.deadline, c.retries, c.backoff, c.auth.decode()]))
repl.ls()
"""


def test_https_ca_and_basic_auth_deployed_are_used_by_the_board(
    serial, board, tmp_path, certs, image_v1, capsys
):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "app.bin").write_bytes(image_v1)
    tls = {"cert": certs["server.pem"], "key": certs["server.key"]}
    with UpdateServer(folder, **tls, user="fleet", password="pw: s3cret") as srv:
        url = srv.url + "/"
        # With the Wi-Fi: a board reaches no server without a network.
        args = [*WIFI, "--server", url, "--ca", str(certs["ca.pem"]), *TRANSPORT]
        assert deploy(serial, tmp_path, *args) == 0
        out = capsys.readouterr().out
        size = certs["ca.pem"].stat().st_size
        assert f"board: /ca.pem, {size} bytes, CA certificate from {certs['ca.pem']}" in out
        assert '"password": "***"' in out and "s3cret" not in out

        assert (board.fs / "ca.pem").read_bytes() == certs["ca.pem"].read_bytes()
        server = json.loads((board.fs / "acupdate.json").read_text())["server"]
        assert server == {
            "url": url,
            "timeout": 8,
            "reboot": True,
            "ca": "/ca.pem",
            "user": "fleet",
            "password": "pw: s3cret",
            "connect_timeout": 4,
            "deadline": 120,
            "retries": 5,
            "backoff": 0.25,
        }
        # The agent's own Config takes them (real MicroPython, the deployed .mpy), checks
        # the server with the CA file and sends the credentials.
        got = mpremote(serial, "exec", CONFIG_AND_LS).splitlines()
        assert got[0] == (
            f"Config(url='{url}', timeout=8, led=None, led_on=1, reboot=True, "
            "ca='/ca.pem', user='fleet')"
        )
        auth = base64.b64encode(b"fleet:pw: s3cret").decode()
        assert json.loads(got[1]) == [True, 4, 120, 5, 0.25, f"Authorization: Basic {auth}\r\n"]
        assert got[2] == f"Update server {url}"
        assert got[4].split()[0] == "app.bin", got
        assert srv.wait_requests(1)
        first = srv.requests[0]
        assert first.path.startswith("/_catalog?") and first.status == 200
        assert first.headers["Authorization"] == f"Basic {auth}"

        # Settings only, now with the CA in DER: /ca.der, and the board reads that one.
        args = ["--config-only", *WIFI, "--server", url, "--ca", str(certs["ca.der"])]
        args += TRANSPORT
        assert deploy(serial, tmp_path, *args) == 0
        assert (board.fs / "ca.der").read_bytes() == certs["ca.der"].read_bytes()
        server = json.loads((board.fs / "acupdate.json").read_text())["server"]
        assert server["ca"] == "/ca.der"
        got = mpremote(serial, "exec", CONFIG_AND_LS).splitlines()
        assert "ca='/ca.der'" in got[0] and got[4].split()[0] == "app.bin", got
        assert srv.wait_requests(2) and srv.requests[1].status == 200


def test_transport_options_in_the_settings_file(capsys, tmp_path, certs):
    crt = tmp_path / "lab-ca.CRT"
    crt.write_bytes(certs["bundle.pem"].read_bytes())  # two CAs, a comment line before
    plain = tmp_path / "ca"
    plain.write_bytes(certs["ca.der"].read_bytes())
    for ca, dest in ((crt, "/ca.crt"), (plain, "/ca.der"), (certs["ca.pem"], "/ca.pem")):
        args = ["config", "--server", "https://h/fw", "--ca", str(ca), *TRANSPORT, "--retries", "0"]
        assert main(args) == 0
        cap = capsys.readouterr()
        server = json.loads(cap.out)["server"]
        assert server["ca"] == dest and server["retries"] == 0 and server["connect_timeout"] == 4
        assert f"the board needs {dest} too: mpremote cp {ca} :{dest}" in cap.err
    # http with a CA file: for a redirect to https; fractions stay fractions.
    opts = Options(server="http://h/", ca=str(certs["ca.pem"]), deadline=0.5, backoff=0)
    assert build(opts)["server"] == {
        "url": "http://h/",
        "timeout": 8,
        "reboot": True,
        "ca": "/ca.pem",
        "deadline": 0.5,
        "backoff": 0,
    }
    assert board_files(opts) == [(certs["ca.pem"], "/ca.pem")]


def _bad_ca_files(folder: Path, certs) -> None:
    pem = certs["ca.pem"].read_text()
    der = certs["ca.der"].read_bytes()
    lines = pem.splitlines(keepends=True)
    files = {
        "empty.pem": b"",
        "words.pem": b"hello, I am a certificate\n",
        "cut.pem": "".join(lines[:-1]).encode(),
        "mangled.pem": "".join([lines[0], "!" + lines[1][1:], *lines[2:]]).encode(),
        "csr.pem": pem.replace("CERTIFICATE", "CERTIFICATE REQUEST").encode(),
        "notder.pem": f"{lines[0]}aGVsbG8gd29ybGQ=\n{lines[-1]}".encode(),
        "padded.pem": f"{lines[0]}{base64.encodebytes(der + b'xyz').decode()}{lines[-1]}".encode(),
        "cut.der": der[:-10],
        "two.der": der + der,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--ca", "{pki}/ca.pem"], "--ca need(s) --server"),
        (["--server", "https://h/"], "give --ca FILE, the CA certificate that signed"),
        (["--ca", "{tmp}/none.pem"], "--ca {tmp}/none.pem: no such file"),
        (["--ca", "{tmp}"], "--ca {tmp} is a folder"),
        (["--ca", "{tmp}/empty.pem"], "--ca {tmp}/empty.pem is empty (0 bytes)"),
        (["--ca", "{tmp}/words.pem"], "is neither PEM nor DER (first bytes b'hello, I am a ce')"),
        (["--ca", "{pki}/server.key"], "server.key holds no certificate, only PEM PRIVATE KEY"),
        (["--ca", "{tmp}/cut.pem"], "the last certificate has no -----END CERTIFICATE----- line"),
        (["--ca", "{tmp}/mangled.pem"], "the certificate that ends on line {end} is not valid"),
        (
            ["--ca", "{tmp}/notder.pem"],
            "ends on line 3 is not DER inside (it decodes to b'hello wo'",
        ),
        (["--ca", "{tmp}/padded.pem"], "decodes to {pad} bytes, its DER header says {der}"),
        (["--ca", "{tmp}/csr.pem"], "line 1 is '-----BEGIN CERTIFICATE REQUEST-----'"),
        (["--ca", "{tmp}/cut.der"], "header says {der} bytes, but the file has {cut}"),
        (["--ca", "{tmp}/two.der"], "header says {der} bytes, but the file has {two}"),
        (["--user", "fleet"], "--user needs --password"),
        (["--password", "pw"], "--password needs --user"),
        (["--user", "", "--password", "pw"], "--user must not be empty"),
        (["--user", "a:b", "--password", "pw"], "--user 'a:b': a user name cannot hold ':'"),
        (["--connect-timeout", "0"], "--connect-timeout must be more than 0 and at most 300"),
        (["--connect-timeout", "4000"], "at most 300 seconds, got 4000"),
        (["--deadline", "0"], "--deadline must be more than 0 seconds, got 0"),
        (["--deadline", "-60"], "--deadline must be more than 0 seconds, got -60"),
        (["--deadline", "nan"], "--deadline must be more than 0 seconds, got nan"),
        (["--deadline", "inf"], "--deadline must be more than 0 seconds, got inf"),
        (
            ["--retries", "-1"],
            "--retries must be 0 or more (resumes of a dropped download), got -1",
        ),
        (["--retries", "1.5"], "invalid int value: '1.5'"),
        (["--backoff", "-0.5"], "--backoff must be 0 or more seconds, got -0.5"),
        (["--backoff", "inf"], "--backoff must be 0 or more seconds, got inf"),
    ],
)
def test_bad_transport_options_exit_2_with_a_message(args, words, capsys, tmp_path, certs):
    _bad_ca_files(tmp_path, certs)
    der = len(certs["ca.der"].read_bytes())
    names = {"tmp": tmp_path, "pki": certs["ca.pem"].parent, "der": der}
    names.update(cut=der - 10, two=2 * der, pad=der + 3)
    names["end"] = len(certs["ca.pem"].read_text().splitlines())
    args = [a.format(**names) for a in args]
    server = [] if args[0] == "--server" or "need(s)" in words else ["--server", "http://h/"]
    rc = main(["--device", "/dev/null-no-board", "--build-dir", str(tmp_path), *server, *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert words.format(**names) in err
    assert not (tmp_path / "lib").exists()


# --- signed updates: the keys the board trusts ---------------------------------------------


def test_signing_options_in_the_settings_file(capsys, sign_keys, ec_keys):
    A, B, C = (sign_keys[k] for k in "ABC")
    spaced = " ".join(f"{x:02x}" for x in C.digest)  # as espsecure signature-info-v2 prints it
    args = ["config", "--trust-key", str(A.pem), "--trust-key", str(B.public)]
    args += ["--trust-digest", A.hex.upper(), "--trust-digest", spaced]
    assert main([*args, "--require-signature"]) == 0
    signing = json.loads(capsys.readouterr().out)["signing"]
    # private or public PEM: the digest espsecure digest-sbv2-public-key writes; each once
    assert signing == {"trusted": [A.hex, B.hex, C.hex], "required": True}
    assert main(["config", "--trust-key", str(ec_keys["P256"].pem)]) == 0
    ec = json.loads(capsys.readouterr().out)["signing"]
    assert ec == {"trusted": [ec_keys["P256"].hex], "required": False}
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["signing"]["required"] is False
    assert "signing" not in build(Options(server="http://h/"))


def test_signing_settings_deployed_to_the_board(serial, board, tmp_path, sign_keys):
    args = ["--config-only", "--trust-key", str(sign_keys["A"].public), "--require-signature"]
    assert deploy(serial, tmp_path, *args) == 0  # the board reads them back: checked there
    cfg = json.loads((board.fs / "acupdate.json").read_text())
    assert cfg["signing"] == {"trusted": [sign_keys["A"].hex], "required": True}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--require-signature"], "--require-signature needs the key(s) the board trusts"),
        (["--trust-key", "{tmp}/none.pem"], "--trust-key {tmp}/none.pem: no such file"),
        (["--trust-key", "{tmp}"], "--trust-key {tmp} is a folder"),
        (["--trust-key", "{tmp}/ec.pem"], "is an ECDSA key on secp192r1: the board checks"),
        (["--trust-key", "{tmp}/rsa2048.pem"], "is an RSA-2048 key: Secure Boot V2 uses RSA-3072"),
        (["--trust-key", "{tmp}/words.pem"], "--trust-key {tmp}/words.pem is not a PEM key"),
        (["--trust-digest", "ab" * 31], "give the key digest as 64 hex digits"),
        (["--trust-digest", "xy" * 32], "--trust-digest 'xyxy"),
    ],
)
def test_bad_signing_options_exit_2_with_a_message(args, words, capsys, tmp_path):
    espsecure("generate-signing-key", "--version", "2", "--scheme", "ecdsa192", tmp_path / "ec.pem")
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa2048.pem").write_bytes(
        small.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "words.pem").write_text("not a key\n")
    args = [a.format(tmp=tmp_path) for a in args]
    rc = main(["--device", "/dev/null-no-board", "--build-dir", str(tmp_path), *args])
    assert rc == 2
    assert words.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "lib").exists()


# --- package.json for `mpremote mip install` ----------------------------------------------


def test_package_json_lists_every_module_and_the_project_version():
    pkg = json.loads((ROOT / "package.json").read_text())
    urls = dict(pkg["urls"])
    assert sorted(urls) == MODULES, "run: python -m tools.devicepkg"
    for dest, src in urls.items():
        assert src == f"device/{dest}" and (ROOT / src).is_file()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pkg["version"] == version


def test_manifest_freezes_the_same_modules_as_package_json():
    """device/manifest.py, in micropython-lib's convention, read as the firmware build's
    manifest tool reads it: metadata() and package() called with the file's own words."""
    calls: dict[str, tuple] = {}

    def metadata(**kw):
        calls["metadata"] = ((), kw)

    def package(name, files=None, base_path=".", opt=None):
        calls["package"] = ((name, files), {"base_path": base_path, "opt": opt})

    manifest = ROOT / "device" / "manifest.py"
    exec(
        compile(manifest.read_text(), str(manifest), "exec"),
        {"metadata": metadata, "package": package},
    )
    (name, files), kw = calls["package"]
    base = manifest.parent / kw["base_path"]
    assert name == "acupdate" and (base / name).is_dir()
    assert sorted(f"{name}/{f}" for f in files) == sorted(
        dict(json.loads((ROOT / "package.json").read_text())["urls"])
    )
    assert all((base / name / f).is_file() for f in files)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert calls["metadata"][1]["version"] == version


def test_mip_install_from_the_local_repository(serial, board):
    out = mpremote(serial, "mip", "install", str(ROOT / "package.json"), timeout=120)
    assert "Done" in out
    installed = board.fs / "lib" / "acupdate"
    assert tree(installed) == MODULES
    for m in MODULES:
        assert (installed.parent / m).read_bytes() == (devicepkg.DEVICE / m).read_bytes()
    out = mpremote(
        serial,
        "exec",
        "import acupdate.config as c; print(c.__file__, c.Config(url='http://h:81/x').url())",
    )
    assert out.strip() == "/lib/acupdate/config.py http://h:81/x"


def test_deploy_gets_past_a_stuck_boot_py(serial, board, tmp_path, capsys):
    # A boot.py that never ends (or waits long, as one for a Wi-Fi that is not there):
    # mpremote's soft reset runs it again, so mpremote cannot get in. The deploy interrupts
    # it with Ctrl-C, copies without a soft reset (mpremote resume), and says so.
    stuck = "import time\nprint('boot.py: waiting for ever')\nwhile True:\n    time.sleep_ms(50)\n"
    (board.fs / "boot.py").write_text(stuck)
    assert deploy(serial, tmp_path, *WIFI, "--server", "http://127.0.0.1:8123/fw") == 0
    out = capsys.readouterr().out
    assert "interrupted what the board ran (Ctrl-C); copying without a soft reset" in out
    assert " resume exec " in out  # no soft reset: boot.py does not run again
    assert (board.fs / "boot.py").read_text() == (ROOT / "boot.py").read_text()
    assert json.loads((board.fs / "acupdate.json").read_text())["wifi"]["ssid"] == WIFI[1]

"""The nginx configuration of an export: tools.server's protocol written as nginx directives.

``server_block()`` is the file to include in nginx's ``http {}``: maps (the device check,
the catalog query's folder, the 304 test) and one ``server``. ``main_conf()`` is a whole
nginx.conf around it that any user can run (pid, logs and temporary files in one folder).

How a request is answered (the order is tools.server's: authentication first):

- ``/_catalog?op=list&path=<folder>``: the folder's listing (a JSON file written by the
  export), found by a map from the raw ``path`` argument. Each folder's regex accepts every
  spelling that tools.server decodes (once, ``+`` a space) and normalises (``./``, repeated
  and trailing slashes) to that folder; ``..`` segments, absolute paths, NUL, backslashes
  and double encodings are refused (403) as tools.server refuses them; other folders are
  not found (404). A bad or missing ``op`` is 403.
- every exported file has an exact location that sets its digests for the ``x-MD5``,
  ``x-SHA256`` and ``ETag`` headers; nginx serves it (``HEAD`` and ``Range`` its own) to
  ESP32/ESP8266 HTTPUpdate clients only (AutoConnect's User-Agent and identity headers),
  and answers 304 when ``x-ESP32-sketch-md5`` is the file's MD5;
- anything else is 403 (not a device) or 404.

Refusals and 304s are decided in a named location that ``try_files`` falls back to, so that
they come after nginx's access phase (basic authentication), never before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

HEAD_TIMEOUT = 10  # seconds for a request head, as tools.server's --head-timeout default
IDLE_TIMEOUT = 10  # seconds a kept-alive connection may wait for its next request

IDENTITY = ("sta_mac", "ap_mac", "free_space", "sketch_size", "sketch_md5", "chip_size")
IDENTITY += ("sdk_version",)
NOT_A_DEVICE = "The request is available only from the ESP8266 or ESP32 HTTP updater"
NO_FILE = "/_catalog/none"  # www/_catalog is a file: nothing can exist below it

SEP = "(?:/|%2[Ff])"
DOT = r"(?:\.|%2[Ee])"
LEAD = f"(?:{DOT}{SEP}+)*"  # ./ before the first name
MID = f"{SEP}+(?:{DOT}{SEP}+)*"  # between two names: slashes and ./
TAIL = f"(?:{SEP}+{DOT}?)*"  # trailing slashes and /.
# Refused as tools.server refuses them (paths.resolve): a '..' segment, an absolute path,
# NUL, a backslash, a percent escape left after one decoding.
REFUSED = (
    f"(?:^|{SEP}){DOT}{DOT}(?:{SEP}|$)",
    f"^{SEP}",
    r"%00|%5[Cc]|\\|%25[0-9A-Fa-f]{2}",
)
ROOT = f"^{LEAD}{DOT}?{TAIL}$"
# "User-Agent|7 ESP32 headers|7 ESP8266 headers": the arch's seven must not be empty.
DEVICE_ESP32 = r"~^ESP32-http-Update[^|]*(?:\|[^|]+){7}(?:\|[^|]*){7}$"
DEVICE_ESP8266 = r"~^ESP8266-http-Update[^|]*(?:\|[^|]*){7}(?:\|[^|]+){7}$"
SAME_MD5 = r"~*^([0-9a-f]{32}):\1$"  # "<sketch md5>:<file md5>", hex in any case


def _char(c: str) -> str:
    """A regex for one decoded character as a raw query value may spell it: its UTF-8
    bytes percent-encoded (hex digits in either case), itself (but a raw '+' is a space),
    '+' for a space."""
    encoded = "".join(
        "%" + "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in f"{b:02X}")
        for b in c.encode()
    )
    options = [encoded]
    if c == " ":
        options.append(r"\+")
    elif c != "+":
        options.append(re.escape(c))
    return "(?:" + "|".join(options) + ")"


def folder_regex(rel: str) -> str:
    """The regex of every raw ``path`` value that names folder ``rel`` ('.' is the root)."""
    if rel == ".":
        return ROOT
    names = rel.split("/")
    return "^" + LEAD + MID.join("".join(_char(c) for c in n) for n in names) + TAIL + "$"


def folder_map(folders: dict[str, str]) -> list[tuple[str | None, str, str]]:
    """The catalog query's map, in nginx's order: (regex, or None for the empty value, what
    it maps to: "refused" or "/<listing file>", the folder). nginx looks an empty value up
    as a string and tries no regex on it; otherwise the first regex that matches wins."""
    entries: list[tuple[str | None, str, str]] = [(p, "refused", "") for p in REFUSED]
    for rel, name in sorted(folders.items()):
        if rel == ".":  # no path (or path=) is the root
            entries.insert(0, (None, f"/{name}", "."))
        entries.append((folder_regex(rel), f"/{name}", rel))
    return entries


def quoted(text: str) -> str:
    """``text`` as one double-quoted nginx token. Where a directive expands variables, a
    '$' in it would name one: the export refuses paths with a '$' (see ``value()`` for
    header values)."""
    if any(ord(c) < 32 or c == "\x7f" for c in text) or "\\" in text:
        raise ValueError(f"{text!r} has a control character or a backslash")
    return '"' + text.replace('"', '\\"') + '"'


def regex(text: str) -> str:
    """A regex as one double-quoted nginx token. nginx's parser turns \\\\, \\" and \\t,
    \\n, \\r into one character in every token: each backslash is doubled."""
    if any(ord(c) < 32 for c in text):
        raise ValueError(f"regex {text!r} has a control character")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def value(text: str) -> str:
    """A header value for ``set``: quoted, with '$' (a variable in nginx) replaced by '_'."""
    return quoted(text.replace("$", "_"))


@dataclass
class Served:
    """One exported file: its URI path (decoded, from /), digests and Content-Disposition."""

    uri: str
    md5: str
    sha256: str
    disposition: str


@dataclass
class Site:
    www: str  # absolute: the document root
    catalogs: str  # absolute: the folders' listings
    listen: str  # nginx listen address: 8000, 127.0.0.1:8080, [::1]:8443
    files: Sequence[Served] = ()
    folders: dict[str, str] = field(default_factory=dict)  # rel folder -> listing file name
    server_name: str = "_"
    cert: str | None = None
    key: str | None = None
    htpasswd: str | None = None


def server_block(site: Site) -> str:
    heads = "|".join(
        ["$http_user_agent"]
        + [f"$http_x_{arch}_{name}" for arch in ("esp32", "esp8266") for name in IDENTITY]
    )
    out = [
        "# acupdate's update-server protocol (tools.server) for nginx, written by",
        "# `acupdate-server export`: re-run the export rather than edit this file.",
        "# Include it in nginx's http {} block (one export per http block: its names start",
        "# with acupdate_). A whole nginx.conf around it is nginx.conf beside it.",
        "",
        "# An HTTPUpdate client: its User-Agent and the seven x-<arch>-* identity headers.",
        f'map "{heads}" $acupdate_device {{',
        f"    {regex(DEVICE_ESP32)} ESP32;",
        f"    {regex(DEVICE_ESP8266)} ESP8266;",
        '    default "";',
        "}",
        "",
        "# The device already runs this image (its sketch MD5 is the file's): 304.",
        'map "$http_x_esp32_sketch_md5$http_x_esp8266_sketch_md5:$acupdate_md5" $acupdate_same {',
        f"    {regex(SAME_MD5)} 1;",
        "    default 0;",
        "}",
        "",
        "# What try_files serves: the file itself, or nothing (then @acupdate_refused decides).",
        'map "$acupdate_device:$acupdate_same" $acupdate_try {',
        '    "~^ESP(?:32|8266):0$" $uri;',
        f"    default {NO_FILE};",
        "}",
        "",
        "# The folder a catalog query names (raw path argument) -> its listing file.",
        "map $arg_path $acupdate_folder {",
    ]
    for key, found, rel in folder_map(site.folders):
        token = '""' if key is None else regex("~" + key)
        out.append(f"    {token} {found};" + (f"  # {rel}" if rel else ""))
    out += [
        "    default missing;",
        "}",
        'map "$arg_op:$acupdate_folder" $acupdate_listing {',
        '    "~^list:(?<acupdate_listed>/.+)$" $acupdate_listed;',
        f"    default {NO_FILE};",
        "}",
        "",
        "map $http_x_esp32_sta_mac $acupdate_mac {",
        '    "" $http_x_esp8266_sta_mac;',
        "    default $http_x_esp32_sta_mac;",
        "}",
        "log_format acupdate '$remote_addr $acupdate_mac \"$request\" $status $body_bytes_sent '",
        "                    '${request_time}s \"$http_range\"';",
        "",
        "server {",
        f"    listen {site.listen}{' ssl' if site.cert else ''};",
        f"    server_name {site.server_name};",
        "    server_tokens off;",
        f"    root {quoted(site.www)};",
        "    types { }",
        "    default_type application/octet-stream;",
        "    etag off;  # the ETag is the MD5, as tools.server's",
        f"    client_header_timeout {HEAD_TIMEOUT}s;",
        f"    keepalive_timeout {IDLE_TIMEOUT}s;",
        "    sendfile on;",
        "    tcp_nopush on;",
    ]
    if site.cert and site.key:
        out += [
            f"    ssl_certificate {quoted(site.cert)};",
            f"    ssl_certificate_key {quoted(site.key)};",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    if site.htpasswd:
        out += [
            '    auth_basic "acupdate";',
            f"    auth_basic_user_file {quoted(site.htpasswd)};",
        ]
    out += [
        "",
        "    # Set by each file's location; empty headers are not sent.",
        '    set $acupdate_md5 "";',
        '    set $acupdate_sha256 "";',
        '    set $acupdate_etag "";',
        '    set $acupdate_disposition "";',
        "    add_header Content-Disposition $acupdate_disposition;",
        "    add_header x-MD5 $acupdate_md5;",
        "    add_header x-SHA256 $acupdate_sha256;",
        "    add_header ETag $acupdate_etag;",
        "",
        "    location = /_catalog {",
        f"        root {quoted(site.catalogs)};",
        "        default_type application/json;",
        "        try_files $acupdate_listing @acupdate_catalog_refused;",
        "    }",
        "    location @acupdate_catalog_refused {",
        '        default_type "text/plain; charset=utf-8";',
        '        if ($arg_op = "") {',
        "            return 403 \"Invalid catalog request: no 'op' parameter\\n\";",
        "        }",
        '        if ($arg_op != "list") {',
        '            return 403 "Unknown catalog operation\\n";',
        "        }",
        "        if ($acupdate_folder = refused) {",
        '            return 403 "Path traversal detected\\n";',
        "        }",
        '        return 404 "No such folder in the catalog\\n";',
        "    }",
        "",
        "    # Anything that is not an exported file: 403 for a client that is not a device,",
        "    # else 404.",
        "    location / {",
        f"        try_files {NO_FILE} @acupdate_refused;",
        "    }",
        "    location @acupdate_refused {",
        '        default_type "text/plain; charset=utf-8";',
        '        if ($acupdate_device = "") {',
        f'            return 403 "{NOT_A_DEVICE}\\n";',
        "        }",
        "        if ($acupdate_same) {",
        "            return 304;",
        "        }",
        '        return 404 "No such file in the catalog\\n";',
        "    }",
        "",
        "    # The exported files.",
    ]
    for served in sorted(site.files, key=lambda s: s.uri):
        out += [
            f"    location = {quoted(served.uri)} {{",
            f'        set $acupdate_md5 "{served.md5}";',
            f'        set $acupdate_sha256 "{served.sha256}";',
            f'        set $acupdate_etag "\\"{served.md5}\\"";',
            f"        set $acupdate_disposition {value(served.disposition)};",
            "        try_files $acupdate_try @acupdate_refused;",
            "    }",
        ]
    out += ["}", ""]
    return "\n".join(out)


def main_conf(run: str, include: str) -> str:
    """A whole nginx.conf that includes ``include``; pid, logs and temporary files in
    ``run`` (absolute), so that any user can run it: ``nginx -c <this file>``."""
    temp = "\n".join(
        f"    {kind}_temp_path {quoted(run + '/' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# nginx around acupdate.conf, written by `acupdate-server export`. Any user runs it:
#   nginx -c {include.rsplit("/", 1)[0]}/nginx.conf
# in the foreground (Ctrl-C stops it; `-s reload` with the same -c after a new export).
# Its pid, logs and temporary files are in {run}.
daemon off;
worker_processes auto;
worker_rlimit_nofile 16384;
pid {quoted(run + "/nginx.pid")};
error_log {quoted(run + "/error.log")} warn;

events {{
    worker_connections 8192;
}}

http {{
{temp}
    include {quoted(include)};
    access_log {quoted(run + "/access.log")} acupdate;  # its log_format is in the include
}}
"""

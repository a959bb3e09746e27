"""``acupdate-server export``: a catalog folder as a static tree and an nginx configuration.

    <out>/www/                the document root: the catalog's files (copies, mtimes kept)
                              and _catalog, the root folder's listing
    <out>/catalogs/<id>.json  one listing per folder (tools.server's JSON, md5 and sha256
                              in each bin entry), for nginx's /_catalog?op=list&path=...
    <out>/nginx/acupdate.conf maps and a server block: include it in nginx's http {}
    <out>/nginx/nginx.conf    a whole nginx.conf around it, for any user (see nginxconf)
    <out>/nginx/htpasswd      with --user
    <out>/run/                (--run-dir) nginx.conf's pid, logs and temporary files
    <out>/export.json         what the export wrote, so that the next one rewrites only what
                              changed and removes what is gone

A static host that ignores query strings (``python -m http.server``, an object store) serves
``www/``: its ``/_catalog`` is the root folder's listing whatever the query, and the images
without x-MD5 (the agent then takes the md5 of the catalog entry).

Files are replaced by a rename, never rewritten in place; an unchanged file is not touched.
The export only deletes what an earlier export of the same <out> wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.cli import CLIError

from . import htpasswd, nginxconf
from .catalog import IMAGE_MAGIC, bin_entry
from .handler import content_disposition
from .md5cache import HASH_CHUNK, RACY_NS, signature

MANIFEST = "export.json"
FORMAT = 1
CATALOG = "_catalog"

# Names tools.server cannot serve (paths.resolve refuses them) or nginx cannot be told.
_UNSERVABLE = re.compile(r"%[0-9A-Fa-f]{2}|[\x00-\x1f\x7f\\]")


class ExportError(CLIError):
    """Options or folders the export cannot work with; the message says which and why."""


@dataclass
class Options:
    catalog: str
    out: str
    listen: str = "8000"
    server_name: str = "_"
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None
    run_dir: str | None = None


@dataclass
class Report:
    """What an export did, as paths relative to <out>."""

    out: str
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<rel>: why"

    @property
    def config_changed(self) -> bool:
        return any(p.startswith("nginx/") for p in self.written + self.removed)

    def lines(self) -> list[str]:
        out = [f"wrote {p}" for p in self.written]
        out += [f"removed {p}" for p in self.removed]
        out += [f"skipped {p}" for p in self.skipped]
        out.append(
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.skipped)} skipped"
        )
        return out


@dataclass
class _Item:
    rel: str  # relative to the catalog root, '/'-separated
    kind: str  # "file" or "directory"
    source: str = ""  # real path of a file


# --- checks -------------------------------------------------------------------------------


def _inside(parent: str, child: str) -> bool:
    return os.path.commonpath([parent, child]) == parent


def _check(options: Options) -> tuple[str, str]:
    root = os.path.realpath(options.catalog)
    if not os.path.isdir(root):
        raise ExportError(f"catalog folder {options.catalog!r} is not a folder")
    out = os.path.realpath(options.out)
    if _inside(root, out) or _inside(out, root):
        raise ExportError(f"--out {options.out!r} and --catalog {options.catalog!r} overlap")
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise ExportError(f"--out {options.out!r} is not a folder")
        if os.listdir(out) and not os.path.isfile(os.path.join(out, MANIFEST)):
            raise ExportError(
                f"--out {options.out!r} has files but no {MANIFEST}: not an earlier export "
                "(choose an empty or new folder)"
            )
    paths = (("--out", out), ("--cert", options.cert), ("--key", options.key))
    for what, path in (*paths, ("--run-dir", options.run_dir)):
        if path is not None and "$" in os.path.realpath(path):
            raise ExportError(f"{what} {path!r}: nginx would read its '$' as a variable")
    if (options.cert is None) != (options.key is None):
        raise ExportError("HTTPS needs both a certificate (--cert) and its private key (--key)")
    if options.cert and options.key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(options.cert, options.key)
        except (ssl.SSLError, OSError) as err:
            raise ExportError(
                f"cannot use certificate {options.cert!r} with key {options.key!r}: {err}"
            ) from None
    if (options.user is None) != (options.password is None):
        raise ExportError("basic authentication needs both --user and --password")
    if options.user is not None and options.password is not None:
        try:
            htpasswd.line(options.user, options.password, salt="check")
        except ValueError as err:
            raise ExportError(f"basic authentication: {err}") from None
    _check_listen(options.listen)
    if not re.fullmatch(r"[A-Za-z0-9_.*~^$:\[\]-]+", options.server_name):
        raise ExportError(f"--server-name {options.server_name!r} is not one nginx name")
    return root, out


def _check_listen(listen: str) -> None:
    match = re.fullmatch(r"(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?([0-9]{1,5})", listen)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ExportError(f"--listen {listen!r}: expected PORT, ADDRESS:PORT or [IPv6]:PORT")


# --- the source ---------------------------------------------------------------------------


def _scan(root: str, report: Report) -> Iterator[_Item]:
    """The folders and regular files below ``root`` as tools.server would serve them."""
    todo = [""]
    while todo:
        folder = todo.pop()
        with os.scandir(os.path.join(root, folder) if folder else root) as scan:
            found = sorted(scan, key=lambda e: e.name)
        for entry in found:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                report.skipped.append(f"{rel!r}: the name is not valid UTF-8")
                continue
            if _UNSERVABLE.search(entry.name):
                report.skipped.append(
                    f"{rel}: a control character, a backslash or a %XX escape in the name "
                    "(tools.server cannot serve it either)"
                )
                continue
            if not folder and entry.name == CATALOG:
                report.skipped.append(f"{rel}: /{CATALOG} is the catalog query's path")
                continue
            real = os.path.realpath(entry.path)
            if entry.is_symlink() and (not _inside(root, real) or not os.path.exists(real)):
                report.skipped.append(f"{rel}: a link outside the catalog or to nothing")
                continue
            try:
                st = os.stat(real)
            except OSError as err:
                report.skipped.append(f"{rel}: {err.strerror}")
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.is_symlink():
                    report.skipped.append(f"{rel}: a link to a folder (not followed)")
                    continue
                yield _Item(rel, "directory")
                todo.append(rel)
            elif stat.S_ISREG(st.st_mode):
                yield _Item(rel, "file", real)
            else:
                report.skipped.append(f"{rel}: not a regular file")


# --- writing ------------------------------------------------------------------------------


def _write(out: str, rel: str, data: bytes, report: Report, mode: int = 0o644) -> None:
    """Write ``data`` to <out>/<rel> by a rename, unless the file already holds it."""
    path = os.path.join(out, rel)
    try:
        with open(path, "rb") as old:
            if old.read(len(data) + 1) == data:
                report.unchanged.append(rel)
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.export-tmp")
    with open(tmp, "wb") as new:
        new.write(data)
        os.fchmod(new.fileno(), mode)
    os.replace(tmp, path)
    report.written.append(rel)


def _copy(source: str, dest: str) -> tuple[str, str, int]:
    """Copy ``source`` to ``dest`` by a rename, mtime kept; (MD5, SHA-256, size) of what was
    copied."""
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.export-tmp")
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        st = os.fstat(src.fileno())
        while chunk := src.read(HASH_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        os.fchmod(dst.fileno(), 0o644)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, dest)
    return md5.hexdigest(), sha.hexdigest(), size


def _hash(path: str) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _load_manifest(out: str) -> tuple[dict[str, object], set[str]]:
    """(the files' records, the paths written) of the previous export of ``out``."""
    try:
        with open(os.path.join(out, MANIFEST), encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        return {}, set()
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot read {os.path.join(out, MANIFEST)}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExportError(f"{os.path.join(out, MANIFEST)} is not an export manifest")
    files, wrote = data.get("files"), data.get("wrote")
    if not isinstance(files, dict) or not isinstance(wrote, list):
        raise ExportError(f"{os.path.join(out, MANIFEST)} is not an export manifest")
    return files, {str(p) for p in wrote}


def _file(
    item: _Item, out: str, before: dict[str, object] | None, report: Report, started: int
) -> dict[str, object]:
    """Export one file; its manifest record (digests, size, the source's signature)."""
    rel = f"www/{item.rel}"
    dest = os.path.join(out, rel)
    src_st = os.stat(item.source)
    src_sig = list(signature(src_st))
    try:
        dest_st: os.stat_result | None = os.stat(dest)
    except FileNotFoundError:
        dest_st = None
    intact = (
        before is not None
        and dest_st is not None
        and before.get("dest") == [dest_st.st_size, dest_st.st_mtime_ns]
    )
    if intact and before is not None and before.get("source") == src_sig:
        report.unchanged.append(rel)
        return before
    if intact and before is not None and _hash(item.source) == (before["md5"], before["sha256"]):
        report.unchanged.append(rel)
        return {**before, "source": src_sig if started - src_st.st_mtime_ns > RACY_NS else None}
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    md5, sha, size = _copy(item.source, dest)
    report.written.append(rel)
    dest_st = os.stat(dest)
    still = signature(os.stat(item.source)) == tuple(src_sig)
    settled = started - src_st.st_mtime_ns > RACY_NS and still
    return {
        "md5": md5,
        "sha256": sha,
        "size": size,
        "dest": [dest_st.st_size, dest_st.st_mtime_ns],
        # A source written within the last moments may change again within the same mtime
        # tick: it is hashed again next time (git's "racily clean" rule).
        "source": src_sig if settled else None,
    }


def _listing(items: list[_Item], records: dict[str, dict[str, object]], out: str) -> bytes:
    """The folder's catalog, as tools.server --sha256 lists it, from the exported copies."""
    entries: list[dict[str, object]] = []
    for item in items:
        name = item.rel.rsplit("/", 1)[-1]
        if item.kind == "directory":
            entries.append({"name": name, "type": "directory"})
            continue
        dest = os.path.join(out, "www", item.rel)
        with open(dest, "rb") as file:
            magic = file.read(1)
        record = records[item.rel]
        if name.endswith(".bin") and magic == IMAGE_MAGIC:
            found = (str(record["md5"]), str(record["sha256"]))
            entries.append(bin_entry(name, os.stat(dest), found))
        else:
            entries.append({"name": name, "type": "file"})
    entries.sort(key=lambda e: str(e["name"]))
    return json.dumps(entries).encode()


def _folder_file(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:32] + ".json"


def _password_file(path: str, user: str, password: str) -> bytes:
    """The htpasswd content: the existing line when it already holds this user and password
    (a new salt would rewrite it every time), else a new one."""
    try:
        with open(path, encoding="utf-8") as file:
            old = file.read().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        old = ""
    name, _, hashed = old.partition(":")
    if name == user and "\n" not in old and htpasswd.check(password, hashed):
        return (old + "\n").encode()
    return (htpasswd.line(user, password) + "\n").encode()


def export(options: Options) -> Report:
    """Export ``options.catalog`` to ``options.out``; what was written, kept and removed."""
    root, out = _check(options)
    started = time.time_ns()
    report = Report(out)
    before, previous = _load_manifest(out)
    os.makedirs(os.path.join(out, "www"), exist_ok=True)
    items = list(_scan(root, report))
    records: dict[str, dict[str, object]] = {}
    served: list[nginxconf.Served] = []
    for item in items:
        if item.kind == "directory":
            os.makedirs(os.path.join(out, "www", item.rel), exist_ok=True)
            continue
        prior = before.get(item.rel)
        record = _file(item, out, prior if isinstance(prior, dict) else None, report, started)
        records[item.rel] = record
        name = item.rel.rsplit("/", 1)[-1]
        served.append(
            nginxconf.Served(
                "/" + item.rel, str(record["md5"]), str(record["sha256"]), content_disposition(name)
            )
        )
    folders = {".": _folder_file(".")}
    folders.update({i.rel: _folder_file(i.rel) for i in items if i.kind == "directory"})
    wanted = {"export.json"} | {f"www/{rel}" for rel in records} | {f"www/{CATALOG}"}
    for rel, listing in folders.items():
        inside = [i for i in items if os.path.dirname(i.rel) == ("" if rel == "." else rel)]
        body = _listing(inside, records, out)
        _write(out, f"catalogs/{listing}", body, report)
        wanted.add(f"catalogs/{listing}")
        if rel == ".":
            _write(out, f"www/{CATALOG}", body, report)
    run = os.path.realpath(options.run_dir) if options.run_dir else os.path.join(out, "run")
    os.makedirs(run, exist_ok=True)
    site = nginxconf.Site(
        www=os.path.join(out, "www"),
        catalogs=os.path.join(out, "catalogs"),
        listen=options.listen,
        files=served,
        folders=folders,
        server_name=options.server_name,
        cert=os.path.realpath(options.cert) if options.cert else None,
        key=os.path.realpath(options.key) if options.key else None,
    )
    if options.user is not None and options.password is not None:
        site.htpasswd = os.path.join(out, "nginx", "htpasswd")
        body = _password_file(site.htpasswd, options.user, options.password)
        _write(out, "nginx/htpasswd", body, report)
        wanted.add("nginx/htpasswd")
    include = os.path.join(out, "nginx", "acupdate.conf")
    _write(out, "nginx/acupdate.conf", nginxconf.server_block(site).encode(), report)
    _write(out, "nginx/nginx.conf", nginxconf.main_conf(run, include).encode(), report)
    wanted |= {"nginx/acupdate.conf", "nginx/nginx.conf"}
    _remove_stale(out, previous, wanted, {i.rel for i in items if i.kind == "directory"}, report)
    manifest = {"format": FORMAT, "files": records, "wrote": sorted(wanted)}
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _write(out, MANIFEST, text, Report(out))  # the export's own notes: not in the report
    return report


def _remove_stale(
    out: str, previous: set[str], wanted: set[str], folders: set[str], report: Report
) -> None:
    """Remove what the previous export wrote and this one did not (never anything else)."""
    for rel in sorted(previous - wanted):
        path = os.path.realpath(os.path.join(out, rel))
        if rel.split("/", 1)[0] not in ("www", "catalogs", "nginx") or not _inside(out, path):
            continue  # not a path an export writes: leave it
        try:
            os.remove(os.path.join(out, rel))
            report.removed.append(rel)
        except FileNotFoundError:
            pass
    # Folders below www/ that no longer hold anything exported, deepest first.
    www = Path(out, "www")
    for path in sorted(www.rglob("*"), key=lambda p: -len(p.parts)):
        rel = path.relative_to(www).as_posix()
        if path.is_dir() and not path.is_symlink() and rel not in folders:
            try:
                path.rmdir()
                report.removed.append(f"www/{rel}/")
            except OSError:
                pass  # something not ours is in it: keep it

"""acupdate-server export (issue 14): the static tree, the folders' listings and the nginx
configuration it writes, checked against tools.server itself: the same catalog JSON for
every folder, the catalog query's folder map agreeing with tools.server's path rules on
every spelling tried, a second export that rewrites only what changed, the htpasswd hash,
and the command line. nginx itself runs in test_fleet_nginx.py."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tools.server import UpdateServer
from tools.server.__main__ import main
from tools.server.export import MANIFEST, Options, export
from tools.server.htpasswd import check, line, sha512_crypt
from tools.server.nginxconf import folder_map
from tools.server.paths import PathRefused, decode, resolve

DAY_AGO = time.time() - 86400


def image(size: int, seed: int) -> bytes:
    return b"\xe9" + random.Random(seed).randbytes(size - 1)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """Images at the root and in folders (one with a space, one non-ASCII), other files, a
    link to an image, a link out of the catalog, a file named like the catalog query."""
    root = tmp_path / "firmware"
    for folder in ("sub/deep", "my fw", "été"):
        (root / folder).mkdir(parents=True)
    content = {
        "app.bin": image(300_000, 1),
        "fake.bin": b"\x00not an image",
        "notes.txt": b"release notes\n",
        "sub/inner.bin": image(5_000, 2),
        "sub/deep/v3 beta.bin": image(7_000, 3),
        "my fw/a+b.bin": image(6_000, 4),
        "été/é.bin": image(4_000, 5),
    }
    for name, data in content.items():
        (root / name).write_bytes(data)
        os.utime(root / name, (DAY_AGO, DAY_AGO))
    os.symlink("app.bin", root / "link_in.bin")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    os.symlink("../secret.txt", root / "evil.bin")
    (root / "_catalog").write_bytes(b"a file the catalog query hides")
    (root / "50%41.bin").write_bytes(image(100, 6))
    return root


def listing(server: UpdateServer, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/_catalog?op=list&path=" + path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


def mtimes(site: Path) -> dict[str, int]:
    return {
        p.relative_to(site).as_posix(): p.stat().st_mtime_ns
        for p in site.rglob("*")
        if p.is_file() and "run" not in p.relative_to(site).parts
    }


def folder_file(site: Path, rel: str) -> Path:
    """The listing file nginx answers the catalog query for folder ``rel`` with."""
    conf = (site / "nginx" / "acupdate.conf").read_text()
    names = re.findall(r" /([0-9a-f]{32}\.json);  # (.+)$", conf, re.M)
    return site / "catalogs" / dict((folder, name) for name, folder in names)[rel]


def test_export_lists_every_folder_as_tools_server_does(catalog: Path, tmp_path: Path):
    site = tmp_path / "site"
    report = export(Options(str(catalog), str(site)))
    folders = (".", "sub", "sub/deep", "my fw", "été")
    with UpdateServer(catalog, sha256=True) as server:
        served = {rel: listing(server, quote(rel)) for rel in folders}
    # tools.server also lists two names it cannot serve (the query's own path, and a name
    # that is still percent-encoded once decoded): the export leaves them out.
    unservable = ("_catalog", "50%41.bin")
    at_root = [e for e in json.loads(served["."]) if e["name"] not in unservable]
    assert len(at_root) == len(json.loads(served["."])) - 2
    served["."] = json.dumps(at_root).encode()
    for rel in folders:
        assert folder_file(site, rel).read_bytes() == served[rel], rel
    assert (site / "www" / "_catalog").read_bytes() == served["."]
    root = {e["name"]: e for e in at_root}
    # A bin entry lists both digests; the same JSON is what the static host serves.
    app = (catalog / "app.bin").read_bytes()
    assert root["app.bin"]["md5"] == hashlib.md5(app).hexdigest()
    assert root["app.bin"]["sha256"] == hashlib.sha256(app).hexdigest()
    assert root["fake.bin"] == {"name": "fake.bin", "type": "file"}
    # The tree holds the same bytes with the same mtimes (nginx's Last-Modified, the dates).
    for rel in ("app.bin", "link_in.bin", "sub/deep/v3 beta.bin", "été/é.bin", "notes.txt"):
        copy, source = site / "www" / rel, catalog / rel
        assert copy.read_bytes() == source.read_bytes() and not copy.is_symlink()
        assert copy.stat().st_mtime_ns == source.stat().st_mtime_ns
    # What tools.server cannot serve either is left out, and said so.
    assert not (site / "www" / "evil.bin").exists() and "evil.bin" not in root
    assert not (site / "www" / "50%41.bin").exists()
    assert (site / "www" / "_catalog").read_bytes() != (catalog / "_catalog").read_bytes()
    skipped = " ".join(report.skipped)
    assert "evil.bin: a link outside" in skipped and "50%41.bin" in skipped
    assert "_catalog: /_catalog is the catalog query's path" in skipped
    conf = (site / "nginx" / "acupdate.conf").read_text()
    assert 'location = "/sub/deep/v3 beta.bin" {' in conf
    assert f'set $acupdate_md5 "{hashlib.md5(app).hexdigest()}";' in conf
    assert "auth_basic" not in conf and "ssl" not in conf
    nginx = (site / "nginx" / "nginx.conf").read_text()
    run = str(site.resolve() / "run")
    for directive in ("pid", "error_log", "client_body_temp_path", "access_log"):
        assert re.search(rf'^\s*{directive} "{re.escape(run)}/', nginx, re.M), directive


def test_a_second_export_rewrites_only_what_changed(catalog: Path, tmp_path: Path):
    site = tmp_path / "site"
    first = export(Options(str(catalog), str(site)))
    assert "www/app.bin" in first.written and not first.removed
    before = mtimes(site)
    again = export(Options(str(catalog), str(site)))
    assert again.written == [] and again.removed == []
    assert mtimes(site) == before
    # A new image: itself, its folder's listing (and the root's copy) and the server block.
    (catalog / "sub" / "v2.bin").write_bytes(image(9_000, 7))
    added = export(Options(str(catalog), str(site)))
    listing_sub = folder_file(site, "sub").relative_to(site).as_posix()
    assert sorted(added.written) == sorted(["www/sub/v2.bin", listing_sub, "nginx/acupdate.conf"])
    after = mtimes(site)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {"www/sub/v2.bin", listing_sub, "nginx/acupdate.conf", MANIFEST}
    assert added.config_changed and added.lines()[-1].startswith("3 written, ")
    # An image replaced in place under the same name and size: found by its digest.
    data = bytearray((catalog / "app.bin").read_bytes())
    data[1000] ^= 0xFF
    (catalog / "app.bin").write_bytes(bytes(data))
    os.utime(catalog / "app.bin", (DAY_AGO, DAY_AGO))  # even with the old mtime
    replaced = export(Options(str(catalog), str(site)))
    assert "www/app.bin" in replaced.written
    assert (site / "www" / "app.bin").read_bytes() == bytes(data)
    # A removed image and folder go; a file that is not the export's stays.
    (site / "www" / "sub" / "deep" / "mine.txt").write_bytes(b"not the export's")
    (catalog / "sub" / "deep" / "v3 beta.bin").unlink()
    (catalog / "sub" / "deep").rmdir()
    removed = export(Options(str(catalog), str(site)))
    assert "www/sub/deep/v3 beta.bin" in removed.removed
    assert (site / "www" / "sub" / "deep" / "mine.txt").exists()
    assert "sub/deep" not in (site / "nginx" / "acupdate.conf").read_text()


def test_the_password_file_is_kept_while_the_password_is_the_same(catalog, tmp_path):
    site = tmp_path / "site"
    export(Options(str(catalog), str(site), user="board", password="s3cret"))
    first = (site / "nginx" / "htpasswd").read_text()
    user, _, hashed = first.strip().partition(":")
    assert user == "board" and hashed.startswith("$6$") and check("s3cret", hashed)
    assert "s3cret" not in first
    again = export(Options(str(catalog), str(site), user="board", password="s3cret"))
    assert "nginx/htpasswd" not in again.written
    changed = export(Options(str(catalog), str(site), user="board", password="other"))
    assert "nginx/htpasswd" in changed.written
    assert check("other", (site / "nginx" / "htpasswd").read_text().strip().split(":", 1)[1])
    off = export(Options(str(catalog), str(site)))
    assert (
        "nginx/htpasswd" in off.removed
        and "auth_basic" not in (site / "nginx" / "acupdate.conf").read_text()
    )


def test_sha512_crypt_matches_the_specification():
    # The test vectors of "Unix crypt using SHA-256 and SHA-512" (U. Drepper).
    assert sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcb"
        "YEdFCoEOfaS35inz1"
    )
    assert sha512_crypt("Hello world!", "saltstringsaltstring", 10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0"
        "Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
    )
    assert sha512_crypt("This is just a test", "toolongsaltstring") == (
        "$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1"
        "JSbq3y6JMxxl8audkUEm0"
    )
    entry = line("board", "pässword")
    assert entry.startswith("board:$6$") and check("pässword", entry.split(":", 1)[1])
    for bad in (("", "x"), ("a:b", "x"), ("a", "x\ny")):
        with pytest.raises(ValueError):
            line(*bad)


def catalog_map_says(entries, raw: str) -> str:
    """What nginx's map answers for the raw ``path`` argument ``raw``."""
    if raw == "":
        return next(found for key, found, _ in entries if key is None)
    for key, found, _ in entries:
        if key is not None and re.search(key, raw):
            return found
    return "missing"


def server_says(root: str, folders: dict[str, str], raw: str) -> str:
    """What tools.server answers (the same values as the map: a listing, refused, missing)."""
    try:
        real = resolve(root, decode(raw.encode(), plus_is_space=True) or b".")
    except PathRefused:
        return "refused"
    rel = os.path.relpath(real, root).replace(os.sep, "/")
    return f"/{folders[rel]}" if rel in folders and os.path.isdir(real) else "missing"


def spellings(rel: str, rng: random.Random) -> list[str]:
    """Ways a client may write folder ``rel`` in the query: encoded or not, with ./ and
    extra slashes, and some that climb out of it."""
    out = []
    for _ in range(12):
        names = [] if rel == "." else rel.split("/")
        parts = []
        for name in names:
            chars = []
            for c in name:
                b = c.encode()
                if c == " ":
                    chars.append(rng.choice(["%20", "+"]))
                elif c == "+" or not c.isascii() or rng.random() < 0.2:
                    enc = "".join(f"%{x:02X}" for x in b)
                    chars.append(enc.lower() if rng.random() < 0.3 else enc)
                else:
                    chars.append(c)
            parts.append("".join(chars))
        sep = rng.choice(["/", "//", "/./", "%2F", "%2f"])
        text = sep.join(parts)
        text = rng.choice(["", "./", "././", ".//", "%2E/"]) + text
        text += rng.choice(["", "/", "//", "/.", "/./"]) if text else rng.choice(["", "."])
        out.append(text)
    out += [
        f"{rel}/..",
        f"../{rel}",
        f"{rel}/%2e%2e/",
        f"/{rel}",
        f"%2F{rel}",
        f"{rel}%5Cx",
        f"{rel}%00",
        f"{rel}/%252e%252e",
        f"{rel}x",
        f"{rel}/nothere",
        f"{rel}/.x",
    ]
    return out


def test_the_catalog_query_map_agrees_with_tools_server(catalog: Path, tmp_path: Path):
    site = tmp_path / "site"
    export(Options(str(catalog), str(site)))
    conf = (site / "nginx" / "acupdate.conf").read_text()
    found = re.findall(r" /([0-9a-f]{32}\.json);  # (.+)$", conf, re.M)
    folders = {rel: name for name, rel in found}
    assert set(folders) == {".", "sub", "sub/deep", "my fw", "été"}
    entries = folder_map(folders)
    root = os.path.realpath(catalog)
    rng = random.Random(14)
    tried = 0
    for rel in [*folders, "nothere", "sub/nothere", "app.bin"]:
        for raw in spellings(rel, rng):
            assert catalog_map_says(entries, raw) == server_says(root, folders, raw), raw
            tried += 1
    for raw in ("", ".", "./", "..", "/", "%2e", "%2e%2e", "+", "my+fw", "my%2Bfw", "sub%2f"):
        assert catalog_map_says(entries, raw) == server_says(root, folders, raw), raw
    assert tried > 100


def test_export_command_line(catalog: Path, tmp_path: Path, capsys):
    site = tmp_path / "site"
    assert main(["export", "--catalog", str(catalog), "--out", str(site)]) == 0
    out = capsys.readouterr().out
    assert "export: wrote www/app.bin" in out
    assert f"export: run nginx with: nginx -c {site.resolve()}/nginx/nginx.conf" in out
    assert main(["export", "-d", str(catalog), "--out", str(site)]) == 0
    again = capsys.readouterr().out
    assert "wrote" not in again and "0 written" in again and "reload" not in again
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    password = tmp_path / "pw"
    password.write_text("from-a-file\n")
    bad = [
        (["--out", str(site)], "the following arguments are required: -d/--catalog"),
        (["-d", str(catalog), "--out", str(catalog / "site")], "overlap"),
        (["-d", str(catalog), "--out", str(tmp_path / "other")], "not an earlier export"),
        (["-d", str(catalog), "--out", str(site), "--cert", "c.pem"], "needs both"),
        (["-d", str(catalog), "--out", str(site), "--user", "u"], "needs both --user"),
        (["-d", str(catalog), "--out", str(site), "--listen", "host:99999"], "--listen"),
        (["-d", str(tmp_path / "nope"), "--out", str(site)], "is not a folder"),
        (["-d", str(catalog), "--out", str(tmp_path / "a$b")], "read its '$' as a variable"),
    ]
    for args, words in bad:
        assert main(["export", *args]) == 2, args
        assert words in capsys.readouterr().err, args
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    args = ["-d", str(catalog), "--out", str(site), "--user", "u", "--password-file", str(password)]
    assert main(["export", *args]) == 0
    hashed = (site / "nginx" / "htpasswd").read_text().strip().split(":", 1)[1]
    assert check("from-a-file", hashed)

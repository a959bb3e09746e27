"""device/acupdate/download/catalog.py, through the agent's Updater (catalog(), scan(),
find()), under the real MicroPython (compiled with mpy-cross, 48K heap: the agent's promised
heap for http), against real servers on 127.0.0.1: bin entries kept in any case, others
skipped, every error named, entries split anywhere, any number of bin entries handed over,
and a heap peak that does not grow with the number of catalog entries."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from host_tests.mpy_helpers import (
    DEVICE,
    Canned,
    CannedServer,
    call_mpy,
    closed_port,
    compile_device,
    run_mpy,
)

CATALOG = "/_catalog?op=list&path=."
HEAP = "48K"  # the agent's promised heap for http (README)

# The device code below gives an Entry as [name, date, time, size, sha256, md5].

FETCH = """
from acupdate.agent import Updater
from acupdate.config import Config
got = Updater(Config("127.0.0.1", {port}, {path!r}, 5)).catalog()
result = [[e.name, e.date, e.time, e.size, e.sha256, e.md5] for e in got]
"""


@pytest.fixture(scope="module")
def mpy_path(tmp_path_factory):
    return compile_device(tmp_path_factory.mktemp("mpy"))


def fetch(mpy_path, body=None, reply=None, path=".", heap=HEAP):
    target = "/_catalog?op=list&path=" + path
    with CannedServer({target: reply or Canned(body=body)}) as s:
        r = call_mpy(FETCH.format(port=s.port, path=path), heap=heap, path=mpy_path)
        assert [q.target for q in s.requests] == [target]
    return r


def bin_(name, size=1000, date="11/26/26", time="10:00:01", type_="bin", **extra):
    return {"name": name, "type": type_, "date": date, "time": time, "size": size, **extra}


ENTRIES = [
    bin_("app-1.2.bin", 1523712),
    {"name": "notes.txt", "type": "file"},
    bin_("APP-2.BIN", 7, type_="BIN"),
    {"name": "old", "type": "directory"},
    bin_("mixed.bin", 42, type_="Bin", extra={"nested": [1, {"a": "}]"}], "n": None}),
    {"name": "weird", "type": "symlink"},
    {"name": "no-type"},
]
KEPT = [
    ["app-1.2.bin", "11/26/26", "10:00:01", 1523712, None, None],
    ["APP-2.BIN", "11/26/26", "10:00:01", 7, None, None],
    ["mixed.bin", "11/26/26", "10:00:01", 42, None, None],
]


@pytest.mark.parametrize("form", ["mpy", "py"])
def test_bin_entries_kept_others_skipped(mpy_path, form):
    body = json.dumps(ENTRIES).encode()
    if form == "mpy":
        r = fetch(mpy_path, body)
    else:  # from source: the compiler needs more heap than the compiled package
        r = fetch(DEVICE, body, heap="120K")
    assert r == ["ok", KEPT]


def test_subfolder_path_and_chunked_reply(mpy_path):
    body = json.dumps(ENTRIES, indent=2).encode()
    r = fetch(mpy_path, reply=Canned(body=body, chunks=[1, 2, 3, 50, 7]), path="fw/v2")
    assert r == ["ok", KEPT]


def test_empty_catalog(mpy_path):
    assert fetch(mpy_path, b" [ ] \n") == ["ok", []]


@pytest.mark.parametrize("code", [404, 403, 500])
def test_non_200_names_the_code(mpy_path, code):
    with CannedServer({CATALOG: Canned(code, body=b"[]", reason="X")}) as s:
        r = call_mpy(FETCH.format(port=s.port, path="."), heap=HEAP, path=mpy_path)
    assert r == [
        "err",
        "OSError",
        f"Update server responds ({code}) to the catalog query for http://127.0.0.1:{s.port}/",
    ]


def test_cannot_connect_names_host_and_port(mpy_path):
    port = closed_port()
    r = call_mpy(FETCH.format(port=port, path="."), heap=HEAP, path=mpy_path)
    assert r[:2] == ["err", "OSError"] and f"127.0.0.1:{port}" in r[2]


def test_silent_server_ends_at_the_catalog_deadline(mpy_path):
    """A read may wait 30 s (Config timeout), but the query ends at catalog_deadline."""
    code = """
from acupdate.agent import Updater
from acupdate.config import Config
result = Updater(Config("127.0.0.1", {port}, timeout=30, catalog_deadline=2)).catalog()
"""
    with CannedServer({CATALOG: Canned(hang=True)}) as s:
        r = call_mpy(code.format(port=s.port), heap=HEAP, path=mpy_path)
        assert [q.target for q in s.requests] == [CATALOG]
    assert r == [
        "err",
        "OSError",
        "reading the reply failed (the catalog query's deadline of 2 s passed)",
    ]


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", "empty body"),
        (b"  \r\n", "empty body"),
        (b"<html>Not here</html>", "not a JSON array"),
        (b'{"name": "a.bin", "type": "bin"}', "not a JSON array"),
        (b"[1, 2]", "element 0 is not an object"),
        (b'[{"name": "a", "type": "file"}, "x"]', "element 1 is not an object"),
        (b'[{"name": "a", "type": "file"}, ]', "element 1 is not an object"),
        (b'[{"name": "a.bin", "type": "bin"', "body ends inside entry 0"),
        (b'[{"name": "a.bin", "type": "bin"}', "body ends inside the array after 1 entries"),
        (b'[{"name": "a.bin", "type": tru}]', "entry 0 is not valid JSON"),
        (b"[{'name': 'a.bin', 'type': 'bin'}]", 'entry 0: unexpected "\'" at byte 2'),
        (b'[{"name": "a.bin", "size": 1.2.3e}]', "entry 0 is not valid JSON"),
        (b'[{"name": "x", "type": "file"}, {"name": "a.bin": 5}]', "entry 1: unexpected ':'"),
        (b'[{"name": "a.bin", "type": "bin",}]', "entry 0: unexpected '}' at byte 33"),
        (b'[{"name": "a.bin" "type": "bin"}]', "entry 0: unexpected '\"' at byte 18"),
        (b'[{"name" "a"}]', "entry 0: unexpected '\"'"),
        (b'[{"name": "a", "size": 1 2}]', "entry 0: unexpected '2'"),
        (b'[{"name": "a", "x": [1,,2]}]', "entry 0: unexpected ','"),
        (b'[{"name": "a", "x": [1}]', "entry 0: unexpected '}'"),
        (b'[{"name": "a", "x": {"y": 1]}]', "entry 0: unexpected ']'"),
        (b"[{,}]", "entry 0: unexpected ','"),
        (b'[{"a": ' + b"[" * 30 + b"]" * 30 + b"}]", "entry 0 nests deeper than 20 levels"),
        (b'[{"name": "a"} {"name": "b"}]', "expected ',' or ']' after entry 1"),
        (b'[{"name": "a", "type": "file"}] trailing', "data after the array"),
        (b'[{"type": "bin", "size": 5}]', "entry 0 has no name"),
        (b'[{"name": "x", "type": "file"}, {"name": "", "type": "bin"}]', "entry 1 has no name"),
        (b'[{"name": 5, "type": "bin"}]', "entry 0 has no name"),
        (b'[{"name": "a.bin", "type": "bin", "size": "12"}]', "entry 0 (a.bin) has size '12'"),
    ],
)
def test_invalid_catalog(mpy_path, body, words):
    r = fetch(mpy_path, body)
    assert r[:2] == ["err", "ValueError"], r
    assert r[2].startswith("Invalid catalog list: "), r
    assert words in r[2], r


def test_entry_larger_than_buffer_is_refused(mpy_path):
    body = json.dumps([{"name": "big.bin", "type": "bin", "pad": "x" * 2000}]).encode()
    r = fetch(mpy_path, body)
    assert r == ["err", "ValueError", "Invalid catalog list: entry 0 is longer than 1024 bytes"]


SHA = hashlib.sha256(b"image").hexdigest()
MD5 = hashlib.md5(b"image").hexdigest()


def test_sha256_and_md5_are_kept(mpy_path):
    """A bin entry's sha256 (64 hex digits) and md5 (32), either case, come back in lower
    case as the Entry's .sha256 and .md5; None where the entry has none; other entries are
    skipped whatever they hold."""
    entries = [
        bin_("a.bin", 10, sha256=SHA),
        bin_("b.bin", 20),
        {"name": "notes.txt", "type": "file", "sha256": 5, "md5": "x"},
        bin_("C.BIN", 30, type_="BIN", sha256=SHA.upper(), md5=MD5.upper()),
        {"name": "old", "type": "directory", "sha256": "no", "md5": None},
        bin_("d.bin", 40, md5=MD5),
    ]
    r = fetch(mpy_path, json.dumps(entries).encode())
    assert r == [
        "ok",
        [
            ["a.bin", "11/26/26", "10:00:01", 10, SHA, None],
            ["b.bin", "11/26/26", "10:00:01", 20, None, None],
            ["C.BIN", "11/26/26", "10:00:01", 30, SHA, MD5],
            ["d.bin", "11/26/26", "10:00:01", 40, None, MD5],
        ],
    ]


@pytest.mark.parametrize(
    "value, shown",
    [
        (SHA[:63], repr(SHA[:63])),
        (SHA + "0", repr(SHA + "0")),
        ("", "''"),
        ("g" * 64, repr("g" * 64)),
        (SHA[:31] + "-" + SHA[32:], repr(SHA[:31] + "-" + SHA[32:])),
        (" " + SHA[1:], repr(" " + SHA[1:])),
        (5, "5"),
        (True, "True"),
        ([SHA], repr([SHA])),
        ({"hex": SHA}, repr({"hex": SHA})),
    ],
)
def test_bad_sha256_is_refused(mpy_path, value, shown):
    body = json.dumps([bin_("ok.bin", sha256=SHA), bin_("bad.bin", sha256=value)]).encode()
    r = fetch(mpy_path, body)
    assert r == [
        "err",
        "ValueError",
        f"Invalid catalog list: entry 1 (bad.bin) has sha256 {shown}, not 64 hex digits",
    ]


@pytest.mark.parametrize(
    "value, shown",
    [
        (MD5[:31], repr(MD5[:31])),
        (MD5 + "0", repr(MD5 + "0")),
        (SHA, repr(SHA)),
        ("", "''"),
        ("g" * 32, repr("g" * 32)),
        (MD5[:15] + "-" + MD5[16:], repr(MD5[:15] + "-" + MD5[16:])),
        (" " + MD5[1:], repr(" " + MD5[1:])),
        (5, "5"),
        (False, "False"),
        ([MD5], repr([MD5])),
    ],
)
def test_bad_md5_is_refused(mpy_path, value, shown):
    body = json.dumps([bin_("ok.bin", md5=MD5), bin_("bad.bin", md5=value)]).encode()
    r = fetch(mpy_path, body)
    assert r == [
        "err",
        "ValueError",
        f"Invalid catalog list: entry 1 (bad.bin) has md5 {shown}, not 32 hex digits",
    ]


# Parses one catalog from a file through buffers of every size from the longest entry's to
# 120 bytes more, so that entries, strings, escapes, nested values and whitespace are split
# at every possible position.
SPLIT = """
from acupdate.download import catalog
f = open({file!r}, "rb")
first = None
for size in range({low}, {low} + 121):
    f.seek(0)
    got = []
    def each(e):
        got.append([e.name, e.date, e.time, e.size, e.sha256, e.md5])
    n = catalog.scan(f.readinto, each, bytearray(size))
    if n != len(got):
        raise ValueError("buffer %d: %d entries counted, %d handed over" % (size, n, len(got)))
    if first is None:
        first = got
    elif got != first:
        raise ValueError("buffer %d: %r" % (size, got))
result = first
"""


def test_entries_split_at_every_position(mpy_path, tmp_path):
    entries = [
        {"name": 'quo"te\\.bin', "type": "bin", "size": 1, "date": "d", "time": "t", "sha256": SHA},
        {
            "name": "br{ace}s[].bin",
            "type": "BIN",
            "size": 2,
            "meta": {"a": [1, [2, {"b": "]"}]]},
            "md5": MD5,
        },
        {"name": "unicode-é€.bin", "type": "bin", "size": 3, "date": "\u00e9\n\t"},
        {"name": "f", "type": "file", "n": [True, False, None, -1.5e3, {}]},
        {"name": "d", "type": "directory"},
        {"name": 'esc\\\\"', "type": "Bin", "size": 0, "x": "\\"},
    ]
    # odd but valid whitespace inside and between entries
    parts = [json.dumps(e, ensure_ascii=False).replace(", ", " ,\r\n\t ") for e in entries]
    # \u escapes, and a sha256 and an md5 that the buffer sizes split at every position
    parts.append(
        '{"name":"\\u00e9t\\u00e9.bin","type":"bin","size":9,"sha256":"'
        + SHA.upper()
        + '","md5":"'
        + MD5
        + '"}'
    )
    body = ("\n[ " + " ,  ".join(parts) + "\t]\r\n").encode()
    expected = [
        [e["name"], e.get("date", ""), e.get("time", ""), e["size"]]
        + [e[k].lower() if k in e else None for k in ("sha256", "md5")]
        for e in json.loads(body)
        if e["type"].lower() == "bin"
    ]
    assert len(expected) == 5 and expected[-1] == ["été.bin", "", "", 9, SHA, MD5]
    assert expected[0][4:] == [SHA, None] and expected[1][4:] == [None, MD5]
    f = tmp_path / "catalog.json"
    f.write_bytes(body)
    low = max(len(p.encode()) for p in parts)
    r = call_mpy(SPLIT.format(file=str(f), low=low), heap=HEAP, path=mpy_path)
    assert r == ["ok", expected]


def big_catalog(n, every=None):
    """n entries; every `every`-th is a bin (index i), the rest alternate file/directory."""
    out = []
    for i in range(n):
        if every and i % every == 0:
            out.append(bin_(f"fw-{i:04d}.bin", 100_000 + i))
        else:
            out.append({"name": f"entry-{i:04d}.txt", "type": "file" if i % 2 else "directory"})
    return json.dumps(out).encode()


def test_2000_entry_catalog_keeps_the_right_entries(mpy_path):
    body = big_catalog(2000, every=97)
    r = fetch(mpy_path, body)
    assert r[0] == "ok"
    assert [e[0] for e in r[1]] == [f"fw-{i:04d}.bin" for i in range(0, 2000, 97)]
    assert [e[3] for e in r[1]] == [100_000 + i for i in range(0, 2000, 97)]


# Hands every bin entry of the catalog to each() as it is read and keeps none: the count,
# the sum of the sizes and an MD5 of the names (each followed by a newline) come back.
SCAN = """
import hashlib, binascii
from acupdate.agent import Updater
from acupdate.config import Config
h = hashlib.md5()
seen = [0, 0]
def each(e):
    seen[0] += 1
    seen[1] += e.size
    h.update(e.name)
    h.update(b"\\n")
n = Updater(Config("127.0.0.1", {port})).scan(each)
result = [n, seen[0], seen[1], binascii.hexlify(h.digest()).decode()]
"""


@pytest.mark.parametrize("n", [49, 1000, 5000])
def test_scan_hands_over_every_bin_entry(mpy_path, n):
    """No cap on the number of bin entries: 49, 1,000 or 5,000 are all handed over, in
    order, at the 48K heap (the 5,000-entry body is ~350 KB)."""
    entries = [bin_(f"fw-{i:05d}.bin", 100_000 + i) for i in range(n)]
    body = json.dumps(entries).encode()
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        r = call_mpy(SCAN.format(port=s.port), heap=HEAP, path=mpy_path)
    names = "".join(e["name"] + "\n" for e in entries).encode()
    total = sum(e["size"] for e in entries)
    assert r == ["ok", [n, n, total, hashlib.md5(names).hexdigest()]]


def test_catalog_lists_a_fleet_s_catalog(mpy_path):
    """catalog() keeps its entries in a list (for update(name)'s size, sha256 and md5): 24
    bin entries fit at the 48K heap, with room to spare (about 32 do; a longer catalog is
    the clear OSError below, and scan() and find() read any)."""
    entries = [bin_(f"fw-{i:02d}.bin", 100_000 + i) for i in range(24)]
    r = fetch(mpy_path, json.dumps(entries).encode())
    assert r == ["ok", [[e["name"], e["date"], e["time"], e["size"], None, None] for e in entries]]


def test_48_entries_with_900_byte_names_are_read_at_the_promised_heap(mpy_path):
    """48 bin entries with ~900-byte names (one entry nearly fills the 1 KiB entry buffer):
    scan() hands each over, and find() finds the last one, at 48K."""
    names = [f"{i:02d}-" + "n" * 897 + ".bin" for i in range(48)]
    entries = [bin_(n, 100_000 + i) for i, n in enumerate(names)]
    body = json.dumps(entries).encode()
    code = """
from acupdate.agent import Updater
from acupdate.config import Config
u = Updater(Config("127.0.0.1", {port}))
seen = []
n = u.scan(lambda e: seen.append(len(e.name)))
e = u.find({last!r})
result = [n, seen, e.name == {last!r}, e.size]
"""
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        r = call_mpy(code.format(port=s.port, last=names[-1]), heap=HEAP, path=mpy_path)
    assert r == ["ok", [48, [len(n) for n in names], True, 100_047]]


def test_catalog_too_long_for_the_heap_names_scan(mpy_path):
    """A catalog whose bin entries do not fit in the heap as a list is an OSError that
    says how many were read and what to use instead (scan() reads 5,000: see above)."""
    entries = [bin_(f"fw-{i:05d}.bin", i) for i in range(5000)]
    with CannedServer({CATALOG: Canned(body=json.dumps(entries).encode())}) as s:
        r = call_mpy(FETCH.format(port=s.port, path="."), heap=HEAP, path=mpy_path)
    assert r[:2] == ["err", "OSError"], r
    m = re.fullmatch(
        r"the catalog's bin entries do not fit in the heap \((\d+) read\): use "
        r"Updater\.scan\(\) or find\(\), which keep none",
        r[2],
    )
    assert m and 0 < int(m[1]) < 5000, r


FIND = """
from acupdate.agent import Updater
from acupdate.config import Config
u = Updater(Config("127.0.0.1", {port}))
out = []
for name in {names!r}:
    e = u.find(name)
    out.append(None if e is None else [e.name, e.date, e.time, e.size, e.sha256, e.md5])
result = out
"""


def test_find_reads_the_catalog_up_to_the_entry(mpy_path):
    """find() stops reading at the entry it looks for: what follows (here a body that ends
    inside the next entry) is not parsed; a name it does not reach reads on, to the cut;
    in a whole catalog, a name it lacks is None."""
    entries = [
        {"name": "a.bin", "type": "file"},
        bin_("a.bin", 5),
        bin_("b.bin", 7, sha256=SHA),
        bin_("c.bin", 9),
    ]
    body = json.dumps(entries).encode()
    cut = body[: body.index(b'"c.bin"') + 3]  # ends inside entry 3
    with CannedServer({CATALOG: Canned(body=cut)}) as s:
        found = call_mpy(
            FIND.format(port=s.port, names=["b.bin", "a.bin"]), heap=HEAP, path=mpy_path
        )
        beyond = call_mpy(FIND.format(port=s.port, names=["c.bin"]), heap=HEAP, path=mpy_path)
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        whole = call_mpy(
            FIND.format(port=s.port, names=["c.bin", "y.bin"]), heap=HEAP, path=mpy_path
        )
        assert len(s.requests) == 2
    assert found == [
        "ok",
        [
            ["b.bin", "11/26/26", "10:00:01", 7, SHA, None],
            ["a.bin", "11/26/26", "10:00:01", 5, None, None],
        ],
    ]
    assert beyond == ["err", "ValueError", "Invalid catalog list: body ends inside entry 3"]
    assert whole == ["ok", [["c.bin", "11/26/26", "10:00:01", 9, None, None], None]]


# Live heap (after a collection) sampled after every body read of the catalog reply, after
# every entry scanned, and once after catalog() returned (its result still held); the peak
# is the largest sample, relative to the heap in use before the request. A first catalog()
# warms up one-time costs (the qstr pool that json.loads' keys go to), which do not depend
# on the number of entries.
# (The test imports acupdate.download.catalog itself, so that the agent's Phase keeps the
# module with its sampling patch between the two queries.)
HEAP_PEAK = """
import gc
from acupdate.agent import Updater
from acupdate.config import Config
from acupdate.download import catalog
from acupdate.http import response as http
u = Updater(Config("127.0.0.1", {port}))
u.catalog()
u.listed = None
peak = [0]
def sample():
    gc.collect()
    a = gc.mem_alloc()
    if a > peak[0]:
        peak[0] = a
read = http.Response.readinto
def sampled_read(self, buf):
    n = read(self, buf)
    sample()
    return n
element = catalog._Scan.element
def sampled_element(self, index):
    span = element(self, index)
    sample()
    return span
http.Response.readinto = sampled_read
catalog._Scan.element = sampled_element
gc.collect()
base = gc.mem_alloc()
got = u.catalog()
sample()
result = [peak[0] - base, [e.name for e in got]]
"""


def heap_peak(mpy_path, body):
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        r = call_mpy(HEAP_PEAK.format(port=s.port), heap=HEAP, path=mpy_path)
        assert len(s.requests) == 2
    assert r[0] == "ok", r
    return r[1]


def min_heap(mpy_path, body):
    """Smallest -X heapsize (64-byte resolution) at which import + catalog() succeeds."""
    code = FETCH.format(port="{port}", path=".")
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        code = code.format(port=s.port)
        lo, hi = 8192, 48 * 1024
        assert run_mpy(code, heap=str(hi), path=mpy_path).returncode == 0
        while hi - lo > 64:
            mid = (lo + hi) // 2
            if run_mpy(code, heap=str(mid), path=mpy_path).returncode == 0:
                hi = mid
            else:
                lo = mid
    return hi


def test_heap_does_not_grow_with_catalog_size(mpy_path):
    """Same three bin entries after 2 or after 1,997 other entries: neither the sampled
    live-heap peak nor the smallest heap the whole fetch runs in may grow by more than
    1 KiB. (A whole-body parser could not pass: the 2,000-entry body is ~93 KB, almost
    twice the 48K heap.)"""
    bins = [bin_(f"fw-{i}.bin", 1000 + i) for i in range(3)]
    small = bins + [{"name": f"n{i}.txt", "type": "file"} for i in range(2)]
    large = bins + [
        {"name": f"entry-{i:04d}.txt", "type": "file" if i % 2 else "directory"}
        for i in range(1997)
    ]
    body_small, body_large = json.dumps(small).encode(), json.dumps(large).encode()
    assert len(body_large) > 80_000
    peak_small, names_small = heap_peak(mpy_path, body_small)
    peak_large, names_large = heap_peak(mpy_path, body_large)
    need_small, need_large = min_heap(mpy_path, body_small), min_heap(mpy_path, body_large)
    print(
        f"\ncatalog, live heap peak over the pre-fetch baseline: 5 entries {peak_small} B, "
        f"2000 entries {peak_large} B (body {len(body_large)} B)"
        f"\ncatalog, smallest heap for import + catalog() (.mpy): 5 entries {need_small} B, "
        f"2000 entries {need_large} B"
    )
    assert names_small == names_large == ["fw-0.bin", "fw-1.bin", "fw-2.bin"]
    assert peak_small > 0
    assert peak_large <= peak_small + 1024, (peak_small, peak_large)
    assert need_large <= need_small + 1024, (need_small, need_large)


def test_against_the_update_server(mpy_path, tmp_path):
    """The project's update server (tools/server) lists a real folder: only the .bin files
    that start with 0xE9 come back, with the server's date, time and size."""
    from tools.server.core import UpdateServer

    (tmp_path / "app-1.0.bin").write_bytes(b"\xe9" + b"\x01" * 4999)
    (tmp_path / "fake.bin").write_bytes(b"MZ" + b"\x00" * 100)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "app-0.9.bin").write_bytes(b"\xe9" + b"\x02" * 2999)
    with UpdateServer(tmp_path, port=0) as srv:
        top = call_mpy(FETCH.format(port=srv.port, path="."), heap=HEAP, path=mpy_path)
        sub = call_mpy(FETCH.format(port=srv.port, path="old"), heap=HEAP, path=mpy_path)
        missing = call_mpy(FETCH.format(port=srv.port, path="nope"), heap=HEAP, path=mpy_path)
    assert top[0] == "ok" and [(e[0], e[3]) for e in top[1]] == [("app-1.0.bin", 5000)]
    assert top[1][0][1] and top[1][0][2]  # the server's date and time strings
    assert top[1][0][4:] == [None, None]  # no sha256 asked for; the server lists no md5
    assert sub[0] == "ok" and [(e[0], e[3]) for e in sub[1]] == [("app-0.9.bin", 3000)]
    assert missing == [
        "err",
        "OSError",
        f"Update server responds (404) to the catalog query for http://127.0.0.1:{srv.port}/nope",
    ]


def test_sha256_from_the_update_server(mpy_path, tmp_path):
    """UpdateServer(sha256=True) lists each image's SHA-256: the board keeps it as the
    Entry's sha256, in the top folder and in a sub folder."""
    from tools.server.core import UpdateServer

    top_image, sub_image = b"\xe9" + b"\x01" * 4999, b"\xe9" + b"\x02" * 2999
    (tmp_path / "app-1.0.bin").write_bytes(top_image)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "app-0.9.bin").write_bytes(sub_image)
    with UpdateServer(tmp_path, port=0, sha256=True) as srv:
        top = call_mpy(FETCH.format(port=srv.port, path="."), heap=HEAP, path=mpy_path)
        sub = call_mpy(FETCH.format(port=srv.port, path="old"), heap=HEAP, path=mpy_path)
    assert top[0] == "ok" and [(e[0], e[3], e[4]) for e in top[1]] == [
        ("app-1.0.bin", 5000, hashlib.sha256(top_image).hexdigest())
    ]
    assert sub[0] == "ok" and [(e[0], e[3], e[4]) for e in sub[1]] == [
        ("app-0.9.bin", 3000, hashlib.sha256(sub_image).hexdigest())
    ]

"""device/acupdate/download/catalog.py under the real MicroPython (compiled with mpy-cross, 40K
heap), against real servers on 127.0.0.1: bin entries kept in any case, others skipped, every
error named, entries split anywhere, and a heap peak that does not grow with the number of
catalog entries."""

from __future__ import annotations

import hashlib
import json

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

FETCH = """
from acupdate.config import Config
result = Config("127.0.0.1", {port}, {path!r}, 5).listing(bytearray(4096))
"""


@pytest.fixture(scope="module")
def mpy_path(tmp_path_factory):
    return compile_device(tmp_path_factory.mktemp("mpy"))


def fetch(mpy_path, body=None, reply=None, path=".", heap="40K"):
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
    ["app-1.2.bin", "11/26/26", "10:00:01", 1523712],
    ["APP-2.BIN", "11/26/26", "10:00:01", 7],
    ["mixed.bin", "11/26/26", "10:00:01", 42],
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
    r = fetch(mpy_path, reply=Canned(code, body=b"[]", reason="X"))
    assert r == ["err", "OSError", f"Update server responds ({code})"]


def test_cannot_connect_names_host_and_port(mpy_path):
    port = closed_port()
    r = call_mpy(FETCH.format(port=port, path="."), path=mpy_path)
    assert r[:2] == ["err", "OSError"] and f"127.0.0.1:{port}" in r[2]


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


def test_sha256_is_kept_as_a_fifth_item(mpy_path):
    """A bin entry's sha256 (64 hex digits, either case) comes back as the fifth item;
    entries without one stay 4 items; other entries are skipped whatever they hold."""
    entries = [
        bin_("a.bin", 10, sha256=SHA),
        bin_("b.bin", 20),
        {"name": "notes.txt", "type": "file", "sha256": 5},
        bin_("C.BIN", 30, type_="BIN", sha256=SHA.upper()),
        {"name": "old", "type": "directory", "sha256": "no"},
    ]
    r = fetch(mpy_path, json.dumps(entries).encode())
    assert r == [
        "ok",
        [
            ["a.bin", "11/26/26", "10:00:01", 10, SHA],
            ["b.bin", "11/26/26", "10:00:01", 20],
            ["C.BIN", "11/26/26", "10:00:01", 30, SHA.upper()],
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


# Parses one catalog from a file through buffers of every size from the longest entry's to
# 120 bytes more, so that entries, strings, escapes, nested values and whitespace are split
# at every possible position.
SPLIT = """
from acupdate.download import catalog
f = open({file!r}, "rb")
first = None
for size in range({low}, {low} + 121):
    f.seek(0)
    got = catalog.parse(f.readinto, bytearray(size))
    if first is None:
        first = got
    elif got != first:
        raise ValueError("buffer %d: %r" % (size, got))
result = first
"""


def test_entries_split_at_every_position(mpy_path, tmp_path):
    entries = [
        {"name": 'quo"te\\.bin', "type": "bin", "size": 1, "date": "d", "time": "t", "sha256": SHA},
        {"name": "br{ace}s[].bin", "type": "BIN", "size": 2, "meta": {"a": [1, [2, {"b": "]"}]]}},
        {"name": "unicode-é€.bin", "type": "bin", "size": 3, "date": "\u00e9\n\t"},
        {"name": "f", "type": "file", "n": [True, False, None, -1.5e3, {}]},
        {"name": "d", "type": "directory"},
        {"name": 'esc\\\\"', "type": "Bin", "size": 0, "x": "\\"},
    ]
    # odd but valid whitespace inside and between entries
    parts = [json.dumps(e, ensure_ascii=False).replace(", ", " ,\r\n\t ") for e in entries]
    # \u escapes, and a sha256 that the buffer sizes split at every position
    parts.append('{"name":"\\u00e9t\\u00e9.bin","type":"bin","size":9,"sha256":"' + SHA + '"}')
    body = ("\n[ " + " ,  ".join(parts) + "\t]\r\n").encode()
    expected = [
        [e["name"], e.get("date", ""), e.get("time", ""), e["size"]]
        + ([e["sha256"]] if "sha256" in e else [])
        for e in json.loads(body)
        if e["type"].lower() == "bin"
    ]
    assert len(expected) == 5 and expected[-1] == ["été.bin", "", "", 9, SHA]
    assert len(expected[0]) == 5 and len(expected[1]) == 4
    f = tmp_path / "catalog.json"
    f.write_bytes(body)
    low = max(len(p.encode()) for p in parts)
    r = call_mpy(SPLIT.format(file=str(f), low=low), path=mpy_path)
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


# Live heap (after a collection) sampled after every body read of the catalog reply, after
# every entry scanned, and once after fetch() returned (its result still held); the peak is
# the largest sample, relative to the heap in use before the request. A first fetch() warms
# up one-time costs (the qstr pool that json.loads' keys go to), which do not depend on the
# number of entries.
HEAP = """
import gc
from acupdate.config import Config
from acupdate.download import catalog
from acupdate.http import response as http
cfg = Config("127.0.0.1", {port})
buf = bytearray(4096)  # the agent's block buffer
cfg.listing(buf)
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
got = cfg.listing(buf)
sample()
result = [peak[0] - base, [e[0] for e in got]]
"""


def heap_peak(mpy_path, body):
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        r = call_mpy(HEAP.format(port=s.port), path=mpy_path)
        assert len(s.requests) == 2
    assert r[0] == "ok", r
    return r[1]


def min_heap(mpy_path, body):
    """Smallest -X heapsize (64-byte resolution) at which import + fetch() succeeds."""
    code = FETCH.format(port="{port}", path=".")
    with CannedServer({CATALOG: Canned(body=body)}) as s:
        code = code.format(port=s.port)
        lo, hi = 8192, 40960
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
    1 KiB. (A whole-body parser could not pass: the 2,000-entry body is ~93 KB, more than
    twice the 40K heap.)"""
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
        f"\ncatalog, smallest heap for import + fetch (.mpy): 5 entries {need_small} B, "
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
        top = call_mpy(FETCH.format(port=srv.port, path="."), path=mpy_path)
        sub = call_mpy(FETCH.format(port=srv.port, path="old"), path=mpy_path)
        missing = call_mpy(FETCH.format(port=srv.port, path="nope"), path=mpy_path)
    assert top[0] == "ok" and [(e[0], e[3]) for e in top[1]] == [("app-1.0.bin", 5000)]
    assert top[1][0][1] and top[1][0][2]  # the server's date and time strings
    assert sub[0] == "ok" and [(e[0], e[3]) for e in sub[1]] == [("app-0.9.bin", 3000)]
    assert missing == ["err", "OSError", "Update server responds (404)"]


def test_sha256_from_the_update_server(mpy_path, tmp_path):
    """UpdateServer(sha256=True) lists each image's SHA-256: the board keeps it as the
    fifth item, in the top folder and in a sub folder."""
    from tools.server.core import UpdateServer

    top_image, sub_image = b"\xe9" + b"\x01" * 4999, b"\xe9" + b"\x02" * 2999
    (tmp_path / "app-1.0.bin").write_bytes(top_image)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "app-0.9.bin").write_bytes(sub_image)
    with UpdateServer(tmp_path, port=0, sha256=True) as srv:
        top = call_mpy(FETCH.format(port=srv.port, path="."), path=mpy_path)
        sub = call_mpy(FETCH.format(port=srv.port, path="old"), path=mpy_path)
    assert top[0] == "ok" and [(e[0], e[3], e[4]) for e in top[1]] == [
        ("app-1.0.bin", 5000, hashlib.sha256(top_image).hexdigest())
    ]
    assert sub[0] == "ok" and [(e[0], e[3], e[4]) for e in sub[1]] == [
        ("app-0.9.bin", 3000, hashlib.sha256(sub_image).hexdigest())
    ]

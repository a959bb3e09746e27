"""acupdate.web.multipart and acupdate.web.source.Source under the real MicroPython: forms
fed through a stream in every chunking (delimiters split across reads), CRLF and boundary
look-alikes inside the data, preamble, epilogue, transport padding, and the errors for broken
or cut-off forms."""

from __future__ import annotations

import json
import random

import pytest
from mpy_helpers import run_mpy

# Runs the cases of a JSON-lines file: each {"body": hex, "length": n, "chunks": [sizes],
# "buf": n, "ctype": str}; prints one JSON line per case: ["ok", [[name, filename, hex]]]
# or ["err", type, message].
DRIVER = """
import asyncio, binascii, json, sys
from acupdate.web import multipart
from acupdate.web.source import Source

class Feed:
    def __init__(self, data, sizes):
        self.d = data
        self.i = 0
        self.sizes = sizes
        self.k = 0
    async def readinto(self, mv):
        n = min(self.sizes[self.k % len(self.sizes)], len(mv), len(self.d) - self.i)
        self.k += 1
        mv[:n] = self.d[self.i : self.i + n]
        self.i += n
        return n

async def parse(c):
    data = binascii.unhexlify(c["body"])
    src = Source(Feed(data, c["chunks"]), bytearray(c["buf"]))
    src.length = src.left = c["length"]
    mp = multipart.Multipart(src, multipart.boundary(c["ctype"]))
    out = []
    while True:
        part = await mp.next()
        if part is None:
            break
        got = bytearray()
        while True:
            piece = await mp.data()
            if not len(piece):
                break
            got.extend(piece)
        out.append([part[0], part[1], binascii.hexlify(got).decode()])
    return out

async def main():
    f = open(sys.argv[1])
    for line in f:
        c = json.loads(line)
        try:
            print(json.dumps(["ok", await parse(c)]))
        except Exception as e:
            print(json.dumps(["err", type(e).__name__, str(e)]))

asyncio.run(main())
"""


def form(parts, boundary="XyZ", preamble=b"", epilogue=b"", close=True, pad=b""):
    """A multipart/form-data body: parts are (name, filename or None, data)."""
    b = boundary.encode()
    out = bytearray(preamble + (b"\r\n" if preamble else b""))
    for name, filename, data in parts:
        out += b"--" + b + pad + b"\r\n"
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += b"--" + b + b"--\r\n" + epilogue
    return bytes(out)


def case(body, chunks=(4096,), buf=256, length=None, boundary="XyZ", ctype=None):
    return {
        "body": body.hex(),
        "length": len(body) if length is None else length,
        "chunks": list(chunks),
        "buf": buf,
        "ctype": ctype or f"multipart/form-data; boundary={boundary}",
    }


def run_cases(tmp_path, cases):
    path = tmp_path / "cases.json"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    p = run_mpy(DRIVER, heap="1M", args=(str(path),), timeout=120)
    lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == len(cases), p.stdout[-2000:] + p.stderr[-2000:]
    return lines


def expect(parts):
    return ["ok", [[n, f, d.hex()] for n, f, d in parts]]


def test_delimiters_split_at_every_read_boundary(tmp_path):
    parts = [
        ("md5", None, b"0123456789abcdef0123456789abcdef"),
        ("firmware", "app.bin", bytes(range(256)) * 3),
    ]
    body = form(parts)
    cases = [case(body, chunks=(n,), buf=buf) for buf in (128, 512) for n in range(1, 80)]
    cases += [case(body, chunks=(3, 1, 7, 64, 2), buf=128)]
    for got in run_cases(tmp_path, cases):
        assert got == expect(parts)


def test_crlf_and_boundary_look_alikes_inside_the_data(tmp_path):
    tricky = [
        b"\r",
        b"\r\n",
        b"\r\n-",
        b"\r\n--",
        b"\r\n--Xy",
        b"--XyZ",  # the boundary without the CR LF before it is data
        b"\r\r\n\r\n--X\r\n--Xy\r",
        b"",
    ]
    cases, wanted = [], []
    for data in tricky:
        parts = [("firmware", "x.bin", data), ("md5", None, data)]
        for n in (1, 2, 5, 4096):
            cases.append(case(form(parts), chunks=(n,), buf=128))
            wanted.append(expect(parts))
    assert run_cases(tmp_path, cases) == wanted


def test_preamble_epilogue_padding_and_header_forms(tmp_path):
    parts = [("firmware", 'a;b "q".bin', b"DATA")]
    b = form(parts, preamble=b"ignored preamble\r\nline", epilogue=b"ignored epilogue\r\n")
    padded = form(parts, pad=b" \t ")
    lf_headers = (
        b'--XyZ\r\nContent-Disposition: form-data; name="firmware"; filename="lf.bin"\n\n'
        b"DATA\r\n--XyZ--"
    )
    quoted = form(parts, boundary="----WebKitFormBoundary7MA4YWxkTrZu0gW")
    esc_name = (
        b'--XyZ\r\ncontent-disposition: form-data; filename="a\\"b.bin"; name=firmware\r\n\r\n'
        b"DATA\r\n--XyZ--\r\n"
    )
    got = run_cases(
        tmp_path,
        [
            case(b, chunks=(3,)),
            case(padded, chunks=(1,)),
            case(lf_headers),
            case(
                quoted,
                ctype='multipart/form-data; boundary="----WebKitFormBoundary7MA4YWxkTrZu0gW"',
            ),
            case(esc_name, chunks=(2,)),
        ],
    )
    assert got[0] == expect(parts)
    assert got[1] == expect(parts)
    assert got[2] == expect([("firmware", "lf.bin", b"DATA")])
    assert got[3] == expect(parts)
    assert got[4] == expect([("firmware", 'a"b.bin', b"DATA")])


def test_body_is_not_read_past_its_content_length(tmp_path):
    parts = [("firmware", "x.bin", b"12345")]
    body = form(parts)
    got = run_cases(tmp_path, [case(body + b"NEXT REQUEST BYTES", length=len(body))])
    assert got == [expect(parts)]


def test_broken_and_cut_off_forms_are_clear_errors(tmp_path):
    ok = form([("firmware", "x.bin", b"x" * 300)])
    cases = [
        case(form([("firmware", "x.bin", b"x" * 300)], close=False)),  # no closing delimiter
        case(ok[:200], length=len(ok)),  # the browser went away after 200 bytes
        case(ok.replace(b"--XyZ--", b"--XyZjunk")),  # junk after a delimiter
        case(ok, ctype="multipart/form-data; boundary=" + "b" * 71),
        case(ok, ctype="application/x-www-form-urlencoded"),
        case(ok, ctype="multipart/form-data"),
        case(b"--XyZ\r\n", length=7),  # ends right after the first delimiter
    ]
    got = run_cases(tmp_path, cases)
    assert got[0] == [
        "err",
        "ValueError",
        f"upload ends without the form's closing boundary ({len(cases[0]['body']) // 2} bytes)",
    ]
    assert got[1] == ["err", "OSError", f"upload cut off: 200 of {len(ok)} bytes came"]
    assert got[2][:2] == ["err", "ValueError"] and "delimiter followed by" in got[2][2]
    assert got[3] == ["err", "ValueError", "multipart boundary of 71 characters: 1..70 allowed"]
    assert got[4][:2] == ["err", "ValueError"] and "multipart/form-data" in got[4][2]
    assert got[5] == ["err", "ValueError", "multipart/form-data Content-Type without a boundary"]
    assert got[6][:2] == ["err", "ValueError"]


def test_a_part_header_line_longer_than_the_buffer_is_cut(tmp_path):
    # (a 600-character file name: its line was "longer than the buffer", the upload a 400)
    data = b"\xe9" + b"x" * 300
    names = ["f" * 596 + ".bin", "\u00e9" * 300 + ".bin", "a\u20acb" * 150]
    cases = [
        case(form([("md5", None, b""), ("firmware", n, data)]), chunks=chunks, buf=buf)
        for n in names
        for buf in (128, 512)
        for chunks in ((4096,), (1, 7, 64))
    ]
    for c, got in zip(cases, run_cases(tmp_path, cases), strict=True):
        assert got[0] == "ok", got
        (_, _, md5), (name, filename, d) = got[1]
        assert md5 == "" and name == "firmware" and d == data.hex()
        full = next(n for n in names if n.encode().hex() in c["body"])
        cut = filename[:-3]
        assert filename.endswith("...") and full.startswith(cut), (filename, full)
        head = 'Content-Disposition: form-data; name="firmware"; filename="'
        assert len(head) + len(cut.encode()) > c["buf"] - 4  # all the buffer holds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_forms_in_random_chunks(tmp_path, seed):
    rnd = random.Random(seed)
    cases, wanted = [], []
    alphabet = b"\r\n-XyZab"
    for _ in range(60):
        boundary = "".join(
            rnd.choice("XyZ-_'()+,./:=?0123456789") for _ in range(rnd.randint(1, 70))
        )
        parts = []
        for i in range(rnd.randint(0, 4)):
            data = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 300)))
            # a delimiter inside the data would end the part: browsers choose boundaries
            # that do not occur in the file, so do we
            if b"\r\n--" + boundary.encode() in data + b"\r\n":
                continue
            parts.append((f"f{i}", rnd.choice([None, f"file{i}.bin"]), data))
        body = form(parts, boundary=boundary)
        chunks = [rnd.randint(1, 97) for _ in range(rnd.randint(1, 5))]
        cases.append(case(body, chunks=chunks, buf=rnd.choice([200, 256, 512]), boundary=boundary))
        wanted.append(expect(parts))
    assert run_cases(tmp_path, cases) == wanted


def test_find_fallback_matches_bytearray_find(tmp_path):
    p = run_mpy(
        """
        from acupdate.web.source import find
        b = bytearray(b"ab\\r\\n--XyZ\\r\\n--XyZ--")
        out = []
        for sub in (b"\\r\\n--XyZ", b"\\n", b"Q", b"--"):
            for s, e in ((0, len(b)), (3, len(b)), (0, 5), (9, 20)):
                out.append((find(b, sub, s, e), find(memoryview(b), sub, s, e)))
        print(out)
        """,
        heap="64K",
    )
    pairs = eval(p.stdout.strip())  # noqa: S307 - our own printed list of int pairs
    assert pairs and all(a == b for a, b in pairs), pairs
    assert pairs[0][0] == 2 and pairs[4][0] == 3

"""Catalog fuzzing: 300 seeded generated catalogs (wrong types, deep nesting, huge
strings, invalid UTF-8, truncated and mutated JSON, thousands of entries, dozens of bin
entries, good and bad sha256 and md5 fields) read by the device's Updater.scan() at the
agent's promised heap for http (README: 48 KiB), each bin entry printed as it is handed
over. Each ends in a clear `Invalid catalog list` error or in exactly the entries a strict
reading of the JSON gives, all of them (there is no cap on their number); never a crash,
never a MemoryError."""

from __future__ import annotations

import hashlib
import json
import random

from conftest import install_agent
from mpy_helpers import Canned, CannedServer

SEED = 4242
HEAP = "48K"  # the agent's promised heap for http (README)
CASES = 300
ENTRY_MAX = 1024  # the device's per-entry buffer

# Each case: every bin entry as a line [i, "entry", [name, date, time, size, sha256, md5]]
# when it is handed over, then [i, outcome]: ["ok", count] or ["err", type, text].
DEVICE = """
import json
from acupdate.agent import Updater
from acupdate.config import Config
buf = bytearray(4096)  # the agent's block buffer, one for all
for i in range({n}):
    def each(e):
        print(json.dumps([i, "entry", [e.name, e.date, e.time, e.size, e.sha256, e.md5]]))
    try:
        got = ["ok", Updater(Config(url="http://127.0.0.1:{port}/c%d" % i), buf).scan(each)]
    except ValueError as e:
        got = ["err", "ValueError", str(e)]
    except OSError as e:
        got = ["err", "OSError", str(e)]
    print(json.dumps([i, got]))
"""


def rand_text(rng: random.Random, n: int) -> str:
    alphabet = 'abcxyz0189-_. ÄéΩ中🙂"\\/\n\t'
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 6 else 4)
    if kind == 0:
        return rng.randrange(-(10**6), 10**6)
    if kind == 1:
        return rand_text(rng, rng.randrange(0, 20))
    if kind == 2:
        return rng.choice([None, True, False, 1.5, -0.0])
    if kind == 3:
        return rng.random()
    if kind == 4:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rand_text(rng, 3): rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def nested(depth: int):
    v: object = 1
    for _ in range(depth):
        v = {"k": v}
    return v


def entry(rng: random.Random) -> dict:
    t = rng.choice(["bin", "BIN", "Bin", "file", "directory", "other", None, 7])
    e: dict = {"name": rand_text(rng, rng.randrange(1, 30)) + ".bin"}
    if t is not None:
        e["type"] = t
    if rng.random() < 0.8:
        e.update(date="11/26/26", time="10:00:01", size=rng.randrange(0, 2_000_000))
    if rng.random() < 0.3:
        e["extra"] = rand_value(rng)
    for key, n in (("sha256", 64), ("md5", 32)):
        if rng.random() < 0.1:
            e[key] = rand_hex(rng, key, n)
    return e


def rand_hex(rng: random.Random, key: str, n: int):
    """A sha256 (n = 64) or md5 (32) field's value: mostly good hex, either case; or not."""
    h = getattr(hashlib, key)(rng.randbytes(8)).hexdigest()
    return rng.choice([h, h, h, h.upper(), None, h[:-1], h + "0", "g" + h[1:], "", 5, [h], " " * n])


def build(rng: random.Random) -> tuple[str, bytes]:
    """(what, body) for one generated case."""
    kind = rng.choice(
        [
            "valid",
            "valid",
            "many",
            "many-bins",
            "wrong-type",
            "deep",
            "huge",
            "utf8",
            "truncated",
            "mutated",
        ]
    )
    entries = [entry(rng) for _ in range(rng.randrange(0, 12))]
    if kind == "many-bins":
        entries = [
            {"name": f"fw-{i}.bin", "type": "bin", "size": i} for i in range(rng.randrange(40, 90))
        ]
    if kind == "many":
        # A big folder: thousands of other files around a few images.
        entries = [
            {"name": rand_text(rng, 12), "type": rng.choice(["file", "directory"])}
            for _ in range(rng.randrange(200, 2500))
        ]
        for _ in range(rng.randrange(0, 6)):
            entries.insert(rng.randrange(len(entries)), entry(rng))
    elif kind == "wrong-type":
        choice = rng.randrange(6)
        if choice == 0:
            return kind, json.dumps({"name": "a.bin", "type": "bin"}).encode()
        if choice == 1:
            return kind, json.dumps(rng.choice(["x", 5, None, True])).encode()
        if choice == 2:
            entries.insert(rng.randrange(len(entries) + 1), rng.choice([5, "s", [1], None]))
        elif choice == 3:
            entries.append({"name": rng.choice([5, None, "", ["a"]]), "type": "bin"})
        elif choice == 4:
            entries.append({"name": "s.bin", "type": "bin", "size": rng.choice(["9", -1, 1.5])})
        else:
            entries.append({"type": "bin", "size": 5})
    elif kind == "deep":
        e = entry(rng)
        e["extra"] = nested(rng.choice([5, 18, 25, 60]))
        entries.insert(0, e)
    elif kind == "huge":
        e = entry(rng)
        e["name"] = "n" * rng.choice([900, 1100, 5000, 100_000])
        entries.append(e)
    sep = rng.choice([",", ", ", ",\n  ", " ,\t"])
    body = "[" + sep.join(json.dumps(e, ensure_ascii=rng.random() < 0.5) for e in entries) + "]"
    raw = body.encode()
    if kind == "utf8" and b'"' in raw:
        i = raw.index(b'"') + 1
        raw = raw[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + raw[i:]
    elif kind == "truncated":
        raw = raw[: rng.randrange(0, max(1, len(raw)))]
    elif kind == "mutated" and raw:
        b = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] = rng.choice(b'[]{},:"\\ x0-')
        raw = bytes(b)
    return kind, raw


def expected(raw: bytes):
    """What a strict reading gives: ("ok", list), ("err", None), or ("either", list)
    when an entry is too large for the device's buffer (it may refuse it)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "err", None
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        return "err", None
    out = []
    for o in data:
        name = o.get("name")
        if not isinstance(name, str) or not name:
            return "err", None
        t = o.get("type")
        if isinstance(t, str) and t.lower() == "bin":
            size = o.get("size", 0)
            if type(size) is not int or size < 0:
                return "err", None
            text = [o.get(k) for k in ("date", "time")]
            hexes = []
            for key, n in (("sha256", 64), ("md5", 32)):
                h = o.get(key)
                if h is not None and not (
                    isinstance(h, str)
                    and len(h) == n
                    and all(c in "0123456789abcdefABCDEF" for c in h)
                ):
                    return "err", None
                hexes.append(None if h is None else h.lower())
            out.append([name, *("" if v is None else str(v) for v in text), size, *hexes])
    big = any(len(json.dumps(o, ensure_ascii=False).encode()) > ENTRY_MAX - 64 for o in data)
    deep = any(_depth(o) > 18 for o in data)
    return ("either" if big or deep else "ok"), out


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def test_generated_catalogs_give_a_clear_error_or_the_right_list(board):
    install_agent(board, mpy=True)
    rng = random.Random(SEED)
    cases = [build(rng) for _ in range(CASES)]
    routes = {
        f"/_catalog?op=list&path=c{i}": Canned(200, [("Content-Type", "application/json")], raw)
        for i, (_, raw) in enumerate(cases)
    }
    with CannedServer(routes) as srv:
        res = board.run(DEVICE.format(n=CASES, port=srv.port), heap=HEAP, timeout=300)
    assert res.returncode == 0, res.output[-2000:] + res.stderr
    got: dict[int, list] = {}
    handed: dict[int, list] = {}
    for ln in res.output.splitlines():
        if ln.startswith("["):
            line = json.loads(ln)
            if line[1] == "entry":
                assert line[0] not in got, ln  # handed over before the case's outcome
                handed.setdefault(line[0], []).append(line[2])
            else:
                assert line[0] not in got, ln
                got[line[0]] = line[1]
    assert sorted(got) == list(range(CASES))
    kinds: dict[str, int] = {}
    most = 0
    for i, (kind, raw) in enumerate(cases):
        want, entries = expected(raw)
        out = got[i]
        where = f"case {i} ({kind}): {raw[:120]!r} -> {out!r:.300}"
        if out[0] == "err":
            assert out[1] == "ValueError" and out[2].startswith("Invalid catalog list: "), where
            assert want in ("err", "either"), where
        else:
            assert want in ("ok", "either"), where
            assert handed.get(i, []) == entries and out[1] == len(entries), where
            most = max(most, len(entries))
        kinds[f"{kind}:{out[0]}"] = kinds.get(f"{kind}:{out[0]}", 0) + 1
    assert most > 48, most  # (the old cap: more bin entries than it let through)
    print(
        f"\ncatalog fuzz, seed {SEED}: {CASES} catalogs at {HEAP} heap, up to {most} bin "
        f"entries handed over: {kinds}"
    )

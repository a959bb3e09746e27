# acupdate.download.catalog: the update server's catalog (GET /_catalog?op=list&path=<path>
# answers a JSON array of objects) read as it arrives: the array is scanned from the reply
# through one fixed buffer, one element at a time; only that element goes to json.loads, and
# each "bin" entry (any case) is handed on as an Entry ("file" and "directory" entries are
# skipped). So memory does not grow with the catalog, however long it is.
from micropython import const

from . import Entry

BUF = const(1024)  # default buffer: also the largest catalog entry accepted
_HEXDIGITS = "0123456789abcdefABCDEF"

_WS = b" \t\r\n"
_DELIM = b' \t\r\n,:[]{}"'
_ESC = b'"\\/bfnrt'
_HEX = b"0123456789abcdefABCDEF"
_DEPTH = const(20)  # nesting limit inside one entry
# What the entry scanner expects next (values ordered: see the <= tests).
_VAL = const(0)  # a value (after ':', or ',' in an array)
_VAL_END = const(1)  # a value or ']' (after '[')
_KEY = const(2)  # a key (after ',' in an object)
_KEY_END = const(3)  # a key or '}' (after '{')
_COLON = const(4)
_AFTER = const(5)  # ',' or the closing bracket (after a value)


def _bad(msg):
    return ValueError("Invalid catalog list: " + msg)


class _Scan:
    # Reads a body through `buf`; `self.p` is the next byte to look at.
    def __init__(self, readinto, buf):
        self.readinto = readinto
        self.b = buf
        self.mv = memoryview(buf)
        self.n = 0
        self.p = 0
        self.eof = False
        self.seen = 0  # body bytes before self.b[0], for error offsets

    def more(self, keep):
        # Drop bytes before `keep`, read more after the rest. False at end of body.
        mv = self.mv
        if keep:
            mv[: self.n - keep] = mv[keep : self.n]
            self.n -= keep
            self.p -= keep
            self.seen += keep
        room = len(mv) - self.n
        if self.eof or not room:
            return False
        k = self.readinto(mv[self.n :])
        self.n += k
        if k < room:
            self.eof = True
        return k > 0

    def skip_ws(self):
        # Next non-space byte (not consumed), or -1 at end of body.
        while True:
            while self.p < self.n:
                c = self.b[self.p]
                if c not in _WS:
                    return c
                self.p += 1
            if not self.more(self.p):
                return -1

    def element(self, index):
        # Span (start, end) in self.b of the object starting at self.p, checked against
        # JSON's grammar (json.loads on the port is lenient about commas and colons).
        st = self.p
        b = self.b
        p = st + 1
        depth = 1
        stack = 1  # bit k set: level k (0 = innermost) is an object, else an array
        exp = _KEY_END
        instr = esc = key = scalar = False
        hexes = c = 0
        while True:
            if p == self.n:
                self.p = p
                if not self.more(st):
                    if self.n == len(b) and not self.eof:
                        raise _bad("entry %d is longer than %d bytes" % (index, len(b)))
                    raise _bad("body ends inside entry %d" % index)
                p = self.p
                st = 0
                continue
            c = b[p]
            p += 1
            if instr:  # the port's json.loads takes bad escapes and raw controls: check them
                if hexes:
                    if c not in _HEX:
                        break
                    hexes -= 1
                elif esc:
                    esc = False
                    if c == 117:  # \uXXXX
                        hexes = 4
                    elif c not in _ESC:
                        break
                elif c == 92:  # backslash
                    esc = True
                elif c == 34:
                    instr = False
                    exp = _COLON if key else _AFTER
                elif c < 32:
                    break
                continue
            if scalar:  # number, true, false, null: json.loads checks the spelling
                if c not in _DELIM:
                    continue
                scalar = False
                exp = _AFTER
            if c in _WS:
                continue
            if c == 34:  # quote
                if exp <= _VAL_END:
                    key = False
                elif exp <= _KEY_END:
                    key = True
                else:
                    break
                instr = True
            elif c == 58:  # :
                if exp != _COLON:
                    break
                exp = _VAL
            elif c == 44:  # ,
                if exp != _AFTER:
                    break
                exp = _KEY if stack & 1 else _VAL
            elif c == 123 or c == 91:  # { [
                if exp > _VAL_END:
                    break
                if depth == _DEPTH:
                    raise _bad("entry %d nests deeper than %d levels" % (index, _DEPTH))
                depth += 1
                if c == 123:
                    stack = stack << 1 | 1
                    exp = _KEY_END
                else:
                    stack = stack << 1
                    exp = _VAL_END
            elif c == 125 or c == 93:  # } ]
                if stack & 1:
                    if c != 125 or (exp != _AFTER and exp != _KEY_END):
                        break
                elif c != 93 or (exp != _AFTER and exp != _VAL_END):
                    break
                depth -= 1
                stack >>= 1
                exp = _AFTER
                if not depth:
                    self.p = p
                    return st, p
            elif exp <= _VAL_END:
                scalar = True
            else:
                break
        raise _bad("entry %d: unexpected %r at byte %d" % (index, chr(c), self.seen + p - 1))


def scan(readinto, each, buf=None):
    """Read a catalog body and call each(entry) for every bin Entry, in order, as it is
    read; each() may return True to stop there. Returns the number of bin entries read.

    `readinto(mv)` fills mv from the body (fewer bytes only at its end); `buf` bounds an
    entry's size. Anything but a JSON array of objects raises ValueError."""
    import json

    sc = _Scan(readinto, buf or bytearray(BUF))
    c = sc.skip_ws()
    if c == -1:
        raise _bad("empty body")
    if c != 91:  # [
        raise _bad("not a JSON array (starts with %r)" % chr(c))
    sc.p += 1
    bins = 0
    i = 0  # entries so far
    while True:
        c = sc.skip_ws()
        if c == 93 and not i:  # ] of an empty array
            sc.p += 1
            break
        if c == -1:
            raise _bad("body ends inside the array after %d entries" % i)
        if c != 123:  # {
            raise _bad("element %d is not an object (starts with %r)" % (i, chr(c)))
        s, e = sc.element(i)
        try:
            o = json.loads(sc.mv[s:e])
        except ValueError:
            raise _bad("entry %d is not valid JSON: %r" % (i, bytes(sc.mv[s : min(e, s + 60)])))
        entry = _entry(o, i)
        o = None
        if entry is not None:
            bins += 1
            if each(entry):
                return bins
            entry = None
        i += 1
        c = sc.skip_ws()
        sc.p += 1
        if c == 93:
            break
        if c != 44:  # ,
            if c == -1:
                raise _bad("body ends inside the array after %d entries" % i)
            raise _bad(
                "expected ',' or ']' after entry %d at byte %d, got %r"
                % (i, sc.seen + sc.p - 1, chr(c))
            )
    if sc.skip_ws() != -1:
        raise _bad("data after the array at byte %d" % (sc.seen + sc.p))
    return bins


def _entry(o, i):
    # The Entry of element `o` (the i-th), None when it is not a bin entry.
    name = o.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("entry %d has no name" % i)
    kind = o.get("type")
    if not isinstance(kind, str) or kind.lower() != "bin":
        return None
    size = o.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise _bad("entry %d (%s) has size %r, not a byte count" % (i, name, size))
    d, t = o.get("date"), o.get("time")
    return Entry(
        _pairs(name),
        "" if d is None else str(d),
        "" if t is None else str(t),
        size,
        _hex(o, "sha256", 64, i, name),
        _hex(o, "md5", 32, i, name),
    )


def _hex(o, key, n, i, name):
    # Entry field `key`: n hex digits (lower case), or None when absent.
    h = o.get(key)
    if h is None:
        return None
    if not isinstance(h, str) or len(h) != n or h.strip(_HEXDIGITS):
        raise _bad("entry %d (%s) has %s %r, not %d hex digits" % (i, name, key, h, n))
    return h.lower()


def _pairs(s):
    # The port's json.loads leaves a \\uD83D\\uDE42 escape as two lone surrogates (3-byte
    # sequences 0xED 0xA0-0xBF ..); join each high+low pair into its 4-byte UTF-8 form.
    b = s.encode()
    if b.find(b"\xed") < 0:
        return s
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        if b[i] == 0xED and i + 5 < n and 0xA0 <= b[i + 1] <= 0xAF and b[i + 3] == 0xED:
            if 0xB0 <= b[i + 4] <= 0xBF:
                hi = (b[i + 1] & 15) << 6 | b[i + 2] & 63
                cp = 0x10000 + (hi << 10) + ((b[i + 4] & 15) << 6 | b[i + 5] & 63)
                out += bytes(
                    (0xF0 | cp >> 18, 0x80 | cp >> 12 & 63, 0x80 | cp >> 6 & 63, 0x80 | cp & 63)
                )
                i += 6
                continue
        out.append(b[i])
        i += 1
    return out.decode()

# acupdate.web.multipart: a multipart/form-data body (RFC 7578) read part by part from a
# source.Source (a stream read through one fixed buffer, never past the Content-Length).
# A part's data comes out as memoryview slices of that buffer, never copied or gathered:
# only bytes that could still be the start of the next delimiter ("\r\n--" + boundary)
# are held back until more arrive.
from micropython import const

from .source import find as _find

MAX_BOUNDARY = const(70)  # RFC 2046
MAX_PART_HEADERS = const(16)


async def need(src, k):
    """At least k unread bytes in the Source's buffer."""
    while src.n - src.p < k:
        if not await src.fill():
            raise ValueError("the form ends early (%d more bytes expected)" % k)


def params(value):
    """'form-data; name="a"; filename="b;c"' -> ['form-data', ('name', 'a'), ...]: the first
    token, then (lower-case key, unquoted value) pairs; ';' inside quotes is kept."""
    out = []
    start = 0
    quoted = False
    esc = False
    n = len(value)
    for i in range(n + 1):
        if i < n:
            c = value[i]
            if esc:
                esc = False
                continue
            if quoted and c == "\\":
                esc = True
                continue
            if c == '"':
                quoted = not quoted
            if c != ";" or quoted:
                continue
        item = value[start:i].strip()
        start = i + 1
        if not out:
            out.append(item.lower())
            continue
        key, _, val = item.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif val[:1] == '"':  # a value cut short (Source.text)
            val = val[1:]
        if key:
            out.append((key.strip().lower(), val))
    return out


def boundary(ctype):
    """The boundary (bytes) of a 'multipart/form-data; boundary=...' Content-Type."""
    p = params(ctype or "")
    if not p or p[0] != "multipart/form-data":
        raise ValueError(
            "expected a multipart/form-data upload, got Content-Type %r" % (ctype or "")[:60]
        )
    for kv in p[1:]:
        if kv[0] == "boundary":
            b = kv[1]
            if not 0 < len(b) <= MAX_BOUNDARY:
                raise ValueError("multipart boundary of %d characters: 1..70 allowed" % len(b))
            return b.encode()
    raise ValueError("multipart/form-data Content-Type without a boundary")


class Multipart:
    """The parts of a multipart/form-data body read from a Source."""

    def __init__(self, src, boundary):
        self.src = src
        self.d = b"\r\n--" + boundary
        self.state = 0  # 0 before the first delimiter, 1 in a part, 2 at a part's headers, 3 done

    async def next(self):
        """Skip to the next part: (name, filename or None), or None after the last part."""
        src = self.src
        if self.state == 0:
            k = len(self.d) - 2  # the first delimiter may lack its leading CR LF
            await need(src, k)
            if src.b[src.p : src.p + k] == self.d[2:]:
                src.p += k
                await self._after()
            else:
                self.state = 1  # a preamble: skipped like part data
        while self.state == 1:
            await self.data()
        if self.state == 3:
            return None
        name = filename = None
        count = 0
        while True:
            h = await src.text()  # (a long file name is cut: it is only shown)
            if not h:
                break
            count += 1
            if count > MAX_PART_HEADERS:
                raise ValueError("a form part has more than %d header lines" % MAX_PART_HEADERS)
            if h[:20].lower() == b"content-disposition:":
                for kv in params(h[20:].decode())[1:]:
                    if kv[0] == "name":
                        name = kv[1]
                    elif kv[0] == "filename":
                        filename = kv[1]
        self.state = 1
        return name, filename

    async def data(self):
        """The next bytes of the current part (a memoryview into the buffer, valid until
        the next call); empty at the part's end."""
        src = self.src
        d = self.d
        while self.state == 1:
            i = _find(src.b, d, src.p, src.n)
            if i > src.p or i < 0:
                end = i
                if i < 0:  # keep what may be the start of a delimiter: from its last CR
                    end = src.n - len(d) + 1
                    if end < src.p:
                        end = src.p
                    j = _find(src.b, b"\r", end, src.n)
                    end = src.n if j < 0 else j
                if end > src.p:
                    out = src.mv[src.p : end]
                    src.p = end
                    return out
                if not await src.fill():
                    raise ValueError(
                        "upload ends without the form's closing boundary (%d bytes)" % src.length
                    )
                continue
            src.p = i + len(d)
            await self._after()
        return src.mv[0:0]

    async def _after(self):
        # After a delimiter: "--" closes the body; else optional blanks, then CR LF.
        src = self.src
        await need(src, 2)
        if src.b[src.p] == 45 and src.b[src.p + 1] == 45:
            src.p += 2
            self.state = 3
            return
        s, e = await src.line()
        if bytes(src.mv[s:e]).strip(b" \t"):
            raise ValueError("multipart delimiter followed by %r" % bytes(src.mv[s:e])[:20])
        self.state = 2

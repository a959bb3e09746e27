# acupdate.web.frame: what every update page shares: the frame (one inline style sheet and
# the menu; no external assets, the board may have no internet). Pages are tuples of bytes
# pieces; text from outside goes through esc(). Small on purpose: a page that needs no
# more (the catalog, the progress page, the home page, the form) loads only this.
OK = b"200 OK"

_HEAD = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8">'
    b'<meta name="viewport" content="width=device-width,initial-scale=1"><title>'
)
_STYLE = (
    b"</title><style>body{font-family:sans-serif;max-width:36em;margin:0 auto;padding:1em;"
    b"color:#222}nav{background:#2f4f4f;padding:.5em;border-radius:4px}nav a{color:#fff;"
    b"margin-right:1.2em;text-decoration:none}",
    b"h1{font-size:1.3em;color:#2f4f4f}table{width:100%;"
    b"border-collapse:collapse}td,th{text-align:left;padding:.35em;border-bottom:1px solid #ddd}"
    b"progress{width:100%;height:1.5em}",
    b"button{padding:.5em 1.6em;font-size:1em}.ok{color:#060}"
    b".err{color:#b00}.note{color:#666;font-size:.9em}input{margin:.3em 0}</style></head><body>"
    b'<nav><a href="/">acupdate</a><a href="/_ac/update">UPDATE</a><a href="/update">Upload'
    b"</a></nav><h1>",
)


def esc(s):
    """Text for HTML, as bytes."""
    if not isinstance(s, str):
        s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        if a in s:
            s = s.replace(a, b)
    return s.encode()


def page(title, *body):
    t = esc(title)
    return (_HEAD, t) + _STYLE + (t, b"</h1>") + body + (b"</body></html>",)

# acupdate.download: what the agent fetches from the update server: the catalog (catalog;
# an Entry is one of its images), and an image: its request (request, headers), its start
# (start), the transfer into the slot (transfer) and its resume (resume). A Download is
# where one stands. (Entry and Download live here, loaded with the agent: their objects
# outlive the Phases that make them.)


class Download:
    """One image download and where it stands, from its start to its end."""

    # Defaults: an instance stores only what differs (a small attribute table).
    part = None  # the Partition it goes to
    chip = None  # the running image's chip id: the image must be for it
    lines = b""  # the request's header lines
    tls = None  # the TLS context, kept for a resume
    reply = None  # the open Response
    have = 0  # image bytes in the block buffer, not yet written
    error = None  # the OSError that ended the last connection, if it ended early
    writer = None  # the slot's ota.writer.Writer, once the first block is checked
    tries = 0  # resumes so far

    def __init__(self, name, target, deadline, size, sha256, md5):
        self.name = name  # the image's name in the catalog
        self.target = target  # its request target
        self.deadline = deadline  # the Deadline of the whole update
        self.size = size  # the image's size: the catalog's until a reply says
        self.sha256 = sha256  # its expected SHA-256 (hex), or None
        self.md5 = md5  # its expected MD5: the catalog's until a reply's x-MD5 says


class Entry:
    """A "bin" entry of the catalog: name, date, time (free text, '' when absent), size
    (bytes), sha256 and md5 (hex, None when the entry gives none)."""

    # Defaults: an instance stores only what differs (a small attribute table: a listed
    # catalog holds many).
    date = time = ""
    sha256 = md5 = None

    def __init__(self, name, date, time, size, sha256=None, md5=None):
        self.name = name
        self.size = size
        if date:
            self.date = date
        if time:
            self.time = time
        if sha256:
            self.sha256 = sha256
        if md5:
            self.md5 = md5

    def __repr__(self):
        return "Entry(%r, %r, %r, %d)" % (self.name, self.date, self.time, self.size)

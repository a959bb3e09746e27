# acupdate.ota.writer: an image streamed into the inactive OTA slot, safely (Writer).
#
# Blocks are written as they complete, each erased first (writeblocks with 3 arguments),
# and hashed (MD5, and SHA-256 when one is expected) as they are written.
# The image's first 16 bytes (its header, magic 0xE9 first) are held back: block 0 goes
# to flash with them still erased (0xFF), so a partial or unchecked image never looks
# like an image. Only when the whole body's MD5 equals the server's x-MD5 (and its SHA-256
# the expected one, when there is one) are they written, last, into block 0 without an
# erase (4 arguments: 0xFF AND x = x). The partition is then read back and hashed again;
# only then set_boot(). The running partition is never written.
# When the board's settings have a "signing" section (trusted keys), the image's Secure
# Boot V2 signature is checked too (acupdate.ota.signed), from flash, after the MD5 and
# before the held header is written: a refused image never looks like an image.
import binascii
import hashlib

from micropython import const

from . import md5hex

_BLOCK = const(4096)
_HOLD = const(16)


class Writer:
    """Write `size` bytes into Partition `part`: fed in any chunk sizes by write(), or
    read straight into room() and then commit()ed.

    `buf` is the caller's one preallocated 4096-byte bytearray. `sha256`: the image's
    SHA-256 as 64 hex digits, checked too when given."""

    def __init__(self, part, size, buf, sha256=None):
        if len(buf) != _BLOCK:
            raise ValueError("block buffer is %d bytes, expected %d" % (len(buf), _BLOCK))
        space = part.ioctl(4, None) * _BLOCK
        if size > space:
            raise ValueError("Not Enough space: image %d bytes, partition %d" % (size, space))
        self.part = part
        self.size = size
        self.buf = buf
        self.mv = memoryview(buf)
        self.head = bytearray(_HOLD)
        self.md5 = hashlib.md5()
        self.sha = sha256 and hashlib.sha256()
        self.want = sha256
        self.done = 0  # bytes received
        self.fill = 0  # bytes in buf for the current block
        self.blk = 0

    def write(self, data):
        """Take the next bytes of the image (a bytes-like object, any length)."""
        n = len(data)
        if self.done + n > self.size:
            raise ValueError("server sent more than %d bytes" % self.size)
        src = memoryview(data)
        i = 0
        while i < n:
            k = min(n - i, _BLOCK - self.fill)
            self.mv[self.fill : self.fill + k] = src[i : i + k]
            self.commit(k)
            i += k

    def room(self):
        """Where the next bytes can be read straight into the block buffer (no copy);
        the whole buffer's view, not a new one, while whole blocks are due."""
        f = self.fill
        left = self.size - self.done
        if not f and left >= _BLOCK:
            return self.mv
        return self.mv[f : min(_BLOCK, f + left)]

    def commit(self, n):
        """Account for n bytes just put into room()."""
        if self.done + n > self.size:
            raise ValueError("server sent more than %d bytes" % self.size)
        self.fill += n
        self.done += n
        if self.fill == _BLOCK:
            self._flush()

    def rewind(self):
        """Drop the bytes of the block not yet written (a download that dropped goes on from
        the block's start: its buffer is then free for the next reply's head). Returns
        done, the first byte still wanted."""
        self.done -= self.fill
        self.fill = 0
        return self.done

    def _flush(self):
        # The hashes take a block as it is written (the header bytes as they came).
        buf = self.buf
        mv = self.mv if self.fill == _BLOCK else self.mv[: self.fill]
        self.md5.update(mv)
        if self.sha:
            self.sha.update(mv)
        for i in range(self.fill, _BLOCK):
            buf[i] = 0xFF
        if self.blk == 0:
            self.head[:] = self.mv[:_HOLD]
            for i in range(_HOLD):
                buf[i] = 0xFF
        self.part.writeblocks(self.blk, buf)
        self.blk += 1
        self.fill = 0

    def finish(self, want):
        """All bytes are in: check the MD5 (and SHA-256, and the signature when the settings
        ask for it: `key` is then the index of the trusted key that signed), write the held
        header, read back, set_boot."""
        if self.done != self.size:
            raise OSError("connection closed after %d of %d bytes" % (self.done, self.size))
        if self.fill:
            self._flush()
        got = binascii.hexlify(self.md5.digest()).decode()
        if got != want.lower():
            raise ValueError("MD5 Check Failed: image %s, server x-MD5 %s" % (got, want))
        if self.sha:
            sha = binascii.hexlify(self.sha.digest()).decode()
            if sha != self.want.lower():
                raise ValueError("SHA-256 Check Failed: image %s, expected %s" % (sha, self.want))
        from .. import Phase

        with Phase():  # the settings' "signing" section (tools.deploy --trust-key)
            import acupdate.boardconfig

            d = acupdate.boardconfig.load().get("signing")
        if d is not None:  # two phases: the blocks a trusted key made, then the arithmetic
            try:
                with Phase():
                    import acupdate.ota.signed

                    job = acupdate.ota.signed.find(d, self.part, self.size, self.head, self.buf)
                if job:
                    with Phase():
                        import acupdate.ota.sigverify

                        self.key = acupdate.ota.sigverify.first(job, self.buf)
            except ValueError as e:
                raise ValueError("Signature Check Failed: %s" % e.args[0])
        self.part.writeblocks(0, self.head, 0)
        back = md5hex(self.part, self.size, self.buf)
        if back != got:
            raise OSError("flash read-back MD5 %s != image %s: flash not written" % (back, got))
        try:
            self.part.set_boot()
        except OSError as e:
            from .errors import words

            raise OSError("ESP-IDF refused to boot the new image: %s" % words(e))
        return got

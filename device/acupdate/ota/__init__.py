# acupdate.ota: ESP32 app images and the OTA slots: image (an image's checks and facts),
# writer (an image streamed into the inactive slot), slots (the slots, their otadata states,
# confirm and rollback), errors (ESP-IDF's error codes in words).
import binascii
import hashlib


def md5hex(part, size, buf):
    """Hex MD5 of the first `size` bytes of Partition `part`, read through the 4096-byte
    `buf`."""
    h = hashlib.md5()
    mv = memoryview(buf)
    blk = 0
    while size > 0:
        part.readblocks(blk, buf)
        h.update(mv if size >= 4096 else mv[:size])
        size -= 4096
        blk += 1
    return binascii.hexlify(h.digest()).decode()

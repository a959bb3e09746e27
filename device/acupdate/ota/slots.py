# acupdate.ota.slots: the OTA slots as the board sees them: the running and the target slot,
# an image's facts (chip id, length, MD5, app version), the otadata entries and their
# states, a table of the slots, confirm and rollback.
import struct

STATES = ("NEW", "PENDING_VERIFY", "VALID", "INVALID", "ABORTED")


def running():
    import esp32

    return esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]


def target():
    """The partition an update goes to; OSError when there is none but the running one."""
    run = running()
    try:
        nxt = run.get_next_update()
    except OSError:
        nxt = None
    if nxt is None or nxt.info()[2] == run.info()[2]:
        raise OSError("No available OTA partition: the table has no slot besides the running one")
    return nxt


def image_facts(part, buf):
    """(chip id, image length, md5 hex, (version, project, time, date, idf_ver)) of the
    image in `part`, read through the 4096-byte `buf` (imagecheck.facts)."""
    from . import image

    return image.facts(part, buf)


def otadata():
    """[(sector, seq, state name, usable)] for both otadata sectors."""
    import binascii

    import esp32

    part = esp32.Partition("otadata")
    e = bytearray(32)
    out = []
    for sector in (0, 1):
        part.readblocks(sector, e)
        seq = struct.unpack_from("<I", e)[0]
        state, crc = struct.unpack_from("<II", e, 24)
        if seq == 0xFFFFFFFF:
            out.append((sector, None, "erased", False))
            continue
        ok = crc == binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF)
        name = (
            STATES[state] if state < len(STATES) else ("UNDEFINED" if state == 0xFFFFFFFF else "?")
        )
        out.append((sector, seq, name if ok else "bad crc", ok and state not in (3, 4)))
    return out


def running_state():
    """The otadata state of the running slot ('PENDING_VERIFY', 'VALID', ...; '-' if none)."""
    import esp32

    apps = esp32.Partition.find(esp32.Partition.TYPE_APP)
    ota = [p for p in apps if 0x10 <= p.info()[1] < 0x20]
    best = None
    for _sector, seq, name, usable in otadata():
        if usable and (best is None or seq > best[0]):
            best = (seq, name)
    if best is None or not ota:
        return "-"
    slot = ota[(best[0] - 1) % len(ota)]
    return best[1] if slot.info()[2] == running().info()[2] else "-"


def table():
    """[(label, version, otadata state, 'running next-boot' marks)] for each OTA slot."""
    import esp32

    from . import image as imagecheck

    P = esp32.Partition
    run = running().info()[2]
    boot = P(P.BOOT).info()[2]  # type: ignore[arg-type]
    states = otadata()
    buf = bytearray(4096)
    apps = []
    for p in P.find(P.TYPE_APP):
        if p.info()[1] >= 0x10:  # OTA slots (the factory app is 0x00)
            apps.append(p)
    rows = []
    for i, p in enumerate(apps):
        info = p.info()
        p.readblocks(0, buf)
        try:
            version = imagecheck.AppDesc(buf).version or "(blank)"
        except ValueError:
            version = "(no image)"
        state = "-"
        for _, seq, label, _ok in states:
            if seq is not None and (seq - 1) % len(apps) == i:
                state = label
        marks = ("running " if info[2] == run else "") + ("next-boot" if info[2] == boot else "")
        rows.append((info[4], version, state, marks))
    return rows


def rolled_back(rows=None):
    """Words for a rollback the bootloader made (the newest otadata entry ABORTED or
    INVALID, for a slot that is not running), or '' when there was none."""
    top = None
    for _sector, seq, name, _ok in otadata():
        if seq is not None and name != "bad crc" and (top is None or seq > top[0]):
            top = (seq, name)
    if top is None or top[1] not in ("ABORTED", "INVALID"):
        return ""
    rows = rows or table()
    bad = rows[(top[0] - 1) % len(rows)]
    for row in rows:
        if row[3].startswith("running") and row is not bad:
            return (
                "rollback: the image in %s (version %s) never confirmed itself; %s "
                % (
                    bad[0],
                    bad[1],
                    row[0],
                )
                + "(version %s) runs again" % row[1]
            )
    return ""


def confirm():
    """Mark the running image valid: the bootloader will not roll it back."""
    import esp32

    esp32.Partition.mark_app_valid_cancel_rollback()


def rollback():
    """Make the other slot's image boot at the next reset (ESP-IDF validates it first)."""
    other = target()
    other.set_boot()
    return other.info()[4]

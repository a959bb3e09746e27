# acupdate.ota.slots: the OTA slots as the board sees them: the running and the target slot,
# an image's facts (chip id, length, MD5, app version), the otadata entries and their
# states, a table of the slots, confirm and rollback.
#
# The invariant kept here, whatever the order of update, confirm, rollback, resets, soft
# resets, power cuts and failed health checks (host_tests/test_ota_model.py checks it
# against ESP-IDF's rules): the board boots a complete image; an image that failed its
# health check does not run again unless it is downloaded again; no image is VALID before
# it has booted and passed its health check. ESP-IDF's own calls do not keep it by
# themselves, so the agent never makes the calls that break it:
#  - set_boot(X) is never called while otadata already selects X: ESP-IDF would write the
#    same ota_seq into both otadata sectors, and an image that fails its health check is
#    then tried twice (and kept for good when it sits in ota_0). target() re-points
#    otadata at the running image before a slot that otadata selects is overwritten;
#    rollback() writes nothing when the other slot boots next already.
#  - mark_app_valid_cancel_rollback() marks the ACTIVE otadata entry, whatever slot it
#    names: confirm() calls it only when that entry names the running slot (else a
#    never-booted image would become VALID), and not at all on a freshly flashed board (no
#    entry: ESP-IDF fails with ESP_FAIL; ESP-IDF does not roll such an image back anyway).
#  - not enforced here: ESP-IDF's esp_ota_begin refuses an update while the running image
#    is PENDING_VERIFY. boot.py settles that state at every boot (confirm, or reset to roll
#    back), so the agent's own start-up never updates from it; code that updates without
#    boot.py's health check may, and then a new image in ota_0 that fails its check is
#    what the bootloader boots when no otadata entry is left usable.
#  - rollback() refuses the other slot's image when it failed its health check (its newest
#    otadata entry is ABORTED or INVALID) or is not a complete image.
import struct

STATES = ("NEW", "PENDING_VERIFY", "VALID", "INVALID", "ABORTED")


def running():
    import esp32

    return esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]


def _other(run):
    try:
        nxt = run.get_next_update()
    except OSError:
        nxt = None
    if nxt is None or nxt.info()[2] == run.info()[2]:
        raise OSError("No available OTA partition: the table has no slot besides the running one")
    return nxt


def _apps():
    import esp32

    out = []
    for p in esp32.Partition.find(esp32.Partition.TYPE_APP):
        if 0x10 <= p.info()[1] < 0x20:  # OTA slots (the factory app is 0x00)
            out.append(p)
    return out


def _active(entries):
    # ESP-IDF's active entry: the usable one with the highest ota_seq (sector 0 on a tie).
    best = None
    for e in entries:
        if e[3] and (best is None or e[1] > best[1]):
            best = e
    return best


def _names(e, apps, part):
    # The otadata entry e selects Partition part.
    return (e[1] - 1) % len(apps) == _index(apps, part)


def _index(apps, part):
    for i, p in enumerate(apps):
        if p.info()[2] == part.info()[2]:
            return i
    return -1


def _newest(entries, apps, part):
    # The newest entry with a good crc that names part (None if there is none).
    best = None
    for e in entries:
        if e[1] is not None and e[2] != "bad crc" and _names(e, apps, part):
            if best is None or e[1] > best[1]:
                best = e
    return best


def target():
    """The partition an update goes to, made safe to overwrite (see the top of this module);
    OSError when there is none but the running one."""
    import esp32

    run = running()
    nxt = _other(run)
    apps = _apps()
    entries = otadata()
    act = _active(entries)
    if act is None or not _names(act, apps, nxt):
        return nxt
    # otadata selects nxt (an update or rollback not reset into yet): point it back at the
    # running image before nxt is overwritten. Then a reset in between boots the running
    # image, and the set_boot(nxt) at the end of the update writes a higher ota_seq than
    # the one now in otadata, never the same one twice. The running image keeps its
    # standing: VALID again when it was VALID, or when otadata had no entry for it (ESP-IDF
    # rolls such an image back no more than a factory app).
    mine = _newest(entries, apps, run)
    keep = mine is None or (mine[2] == "VALID" and mine[3])
    run.set_boot()
    if keep:
        esp32.Partition.mark_app_valid_cancel_rollback()
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
    apps = _apps()
    act = _active(otadata())
    if act is None or not apps or not _names(act, apps, running()):
        return "-"
    return act[2]


def contents(part, buf):
    """The version in Partition part's image ('(blank)' when it has none), or 'empty' (its
    first block erased) or 'incomplete' (written without the image header the agent writes
    last, after the image checked out: a download that stopped, or garbage). `buf`: a
    4096-byte bytearray."""
    from .image import AppDesc

    part.readblocks(0, buf)
    if buf[0] == 0xE9:  # the agent writes these bytes last: the image is whole
        try:
            return AppDesc(buf).version or "(blank)"
        except ValueError:
            return "incomplete"  # not an app image: nothing the bootloader would run
    for b in buf:
        if b != 0xFF:
            return "incomplete"
    return "empty"


def table():
    """[(label, version, otadata state, 'running next-boot' marks)] for each OTA slot. A slot
    without a complete image shows 'incomplete' or 'empty' and no state; next-boot marks the
    slot the bootloader will boot (the other one when otadata selects a slot it would
    refuse)."""
    run = running().info()[2]
    apps = _apps()
    entries = otadata()
    act = _active(entries)
    buf = bytearray(4096)
    found = [contents(p, buf) for p in apps]
    n = len(apps)
    boot = ((act[1] - 1) % n) if act is not None and n else 0
    if n and found[boot] in ("incomplete", "empty"):
        for i in list(range(boot - 1, -1, -1)) + list(range(boot + 1, n)):
            if found[i] not in ("incomplete", "empty"):
                boot = i
                break
    rows = []
    for i, p in enumerate(apps):
        info = p.info()
        state = "-"
        e = _newest(entries, apps, p)
        if e is not None and found[i] not in ("incomplete", "empty"):
            state = e[2]
        marks = ("running " if info[2] == run else "") + ("next-boot" if i == boot else "")
        rows.append((info[4], found[i], state, marks))
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
    """Mark the running image valid, so that the bootloader keeps it. Returns 'confirmed',
    'valid' (it was already) or 'untracked' (otadata has no entry: a freshly flashed board,
    whose image ESP-IDF never rolls back). ValueError when otadata selects another slot: an
    update or rollback() waits for the reset, and ESP-IDF would mark that never-booted
    image VALID instead."""
    import esp32

    apps = _apps()
    act = _active(otadata())
    if act is None or not apps:
        return "untracked"
    run = running()
    if not _names(act, apps, run):
        raise ValueError(
            "not confirmed: %s boots next (an update or rollback() waits for the reset); "
            "confirm the image that runs then" % apps[(act[1] - 1) % len(apps)].info()[4]
        )
    if act[2] == "VALID":
        return "valid"
    esp32.Partition.mark_app_valid_cancel_rollback()
    return "confirmed"


def rollback():
    """Make the other slot's image boot at the next reset; returns its label. ValueError
    when it cannot run: it failed its health check, or it is not a complete image."""
    run = running()
    other = _other(run)
    apps = _apps()
    entries = otadata()
    label = other.info()[4]
    act = _active(entries)
    if act is not None and _names(act, apps, other):
        return label  # it boots next already: writing otadata again would duplicate its seq
    e = _newest(entries, apps, other)
    if e is not None and e[2] in ("ABORTED", "INVALID"):
        raise ValueError(
            "not rolled back: the image in %s failed its health check (%s); download it "
            "again to run it" % (label, e[2])
        )
    v = contents(other, bytearray(4096))
    if v in ("incomplete", "empty"):
        raise ValueError("not rolled back: %s holds no complete image (%s)" % (label, v))
    try:
        other.set_boot()
    except OSError as err:
        raise ValueError("not rolled back: ESP-IDF refused the image in %s (%s)" % (label, err))
    return label

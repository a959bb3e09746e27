# acupdate.console: what the REPL commands print, apart from an update's progress and the
# catalog (acupdate.browse): a failure in one line with a hint (acupdate.fail's, loaded for
# it), an update's outcome, the slot table (status), confirm, rollback. acupdate.repl loads
# it for a command only.

_ROW = "  %-6s %-14s %-16s %s"
_RESET_MS = 300  # from the command's return to the reset


def failed(what, text, url=None, name=None):
    """Print the one line of a failure (acupdate.fail.line, loaded for it); "FAIL"."""
    from . import Phase

    with Phase():
        import acupdate.fail

        return acupdate.fail.line(what, text, url, name)


def empty(url):
    """What ls() and update() say when the catalog of `url` lists no bin entry; "NOAVAIL"."""
    print(
        "No available firmwares: the catalog of %s lists no .bin image: copy an app image "
        "into the server's folder" % url
    )
    return "NOAVAIL"


def outcome(status, name, error, reboot, url, kept=None):
    """What ota.update() says when update(`name`) from the server at `url` ended with
    `status` ("SUCCESS", "NOAVAIL", "FAIL"; `error` its words; `kept`: the slot that held
    the image already). With `reboot`, after a success, a count-down that Ctrl-C cancels;
    True when the board is to reset."""
    if status == "NOAVAIL":
        print("No update: the board already runs %s" % name)
    elif status == "FAIL":
        failed("Update", error, url, name)
    elif kept:
        print(
            "%s is in %s already, complete (its MD5 read back from the slot): not downloaded "
            "again; %s boots at the next reset" % (name, kept, kept)
        )
        if reboot:
            return _count_down(3)
    else:
        print("Update successful: %s is written and boots at the next reset" % name)
        if reboot:
            return _count_down(3)
    return False


def _count_down(seconds):
    import time

    try:
        for i in range(seconds, 0, -1):
            print("\rRebooting in %d s (Ctrl-C to cancel) " % i, end="")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nReboot cancelled: machine.reset() boots the new image")
        return False
    print()
    return True


def status():
    """Print each OTA slot: image version, otadata state, running / next boot; and when
    the settings name trusted signing keys, which of them signed each slot's image."""
    from .ota import signers, slots

    rows = slots.table()
    rs = slots.running_state()
    rb = slots.rolled_back(rows)
    print(_ROW % ("slot", "version", "otadata", ""))
    for row in rows:
        print(_ROW % row)
    sigs = signers.table(rows)
    if sigs:
        print("Signatures (trusted keys from /acupdate.json):")
        for label, words in sigs:
            print("  %-6s %s" % (label, words))
    if rb:
        print(rb[0].upper() + rb[1:])
    if rs == "PENDING_VERIFY":
        print("The running image is not confirmed: confirm() it, or the next reset rolls back.")
    return rs


def confirm():
    """Mark the running image valid, so the bootloader keeps it. Returns True when it is
    (or was already) confirmed; a refusal is printed, with why (see ota.slots.confirm)."""
    from .ota import slots

    try:
        how = slots.confirm()
    except ValueError as e:
        print("Running image %s" % e)
        return False
    if how == "untracked":
        print("Running image needs no confirmation: otadata is blank (a freshly flashed board)")
    elif how == "valid":
        print("Running image confirmed already")
    else:
        print("Running image confirmed")
    return True


def rollback(reset=False):
    """Boot the other slot's image at the next reset (a complete image that has not failed
    its health check); returns its label, or None (the refusal is printed, with why).
    With `reset`, the board resets a moment after the command has returned (reset_soon)."""
    from .ota import slots

    try:
        label = slots.rollback()
    except ValueError as e:
        print("Rollback %s" % e)
        return None
    print("Next boot: %s" % label)
    if reset:
        reset_soon()
    return label


def reset_soon():
    """Reset the board a moment from now, from a timer: a command that runs update() or
    rollback() (mpremote exec) then ends before the board resets, instead of waiting for
    its end for ever; at the REPL the prompt comes back, then the reset. The timer keeps
    its callback, and so this module's globals, after the command's Phase unloads it."""
    import machine

    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=_RESET_MS, callback=_reset)


def _reset(_timer):
    import machine

    machine.reset()

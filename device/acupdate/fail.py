# acupdate.fail: the one line a REPL command prints when it fails (acupdate.console loads
# it for that line only): what happened, naming the URL or the image, and what to try.


def line(what, text, url=None, name=None):
    """Print one line for a failure of `what` (of image `name`, from the update server at
    `url`, when known): what happened and what to try; "FAIL"."""
    where = url or "the update server"
    if name is not None and "(404)" in text and "catalog" not in text:
        print(
            "%s failed: %s is not on the update server %s (File Not Found (404)): ota.ls() "
            "lists what is" % (what, name, where)
        )
        return "FAIL"
    if "ECONNREFUSED" in text or "EHOSTUNREACH" in text or "ENETUNREACH" in text:
        text += _no_wifi() or ": is the update server at %s running, and its URL right?" % where
    elif "name lookup" in text:
        text += _no_wifi() or ": is the host name in %s right?" % where
    elif "ETIMEDOUT" in text or "deadline" in text:
        text += _no_wifi() or ": the server at %s or the network is slow or gone; try again" % where
    elif "(404)" in text:
        text += ": the server has no such folder: check the URL's path"
    elif "heap is too small" in text:
        text += ": machine.reset() gives a fresh heap, then try again"
    elif name is not None:
        text += ": the board keeps the image it has"
    if name is not None:
        what = "%s of %s" % (what, name)
    print("%s failed: %s" % (what, text))
    return "FAIL"


def _no_wifi():
    # The hint when the board's Wi-Fi is down ("" when it is up, or cannot be asked).
    try:
        import network

        if network.WLAN(network.STA_IF).isconnected():
            return ""
    except Exception:
        return ""
    return (
        ": the board's Wi-Fi is not connected (network.WLAN(network.STA_IF).isconnected() is "
        'False): check /acupdate.json\'s "wifi" (tools.deploy --wifi-ssid, --wifi-key), then '
        "reset the board"
    )

# boot.py: joins Wi-Fi from /acupdate.json and confirms a freshly updated image only
# after its health check passes (else the board resets and rolls back). The agent's
# modules are unloaded afterwards: the application gets the heap.
try:
    import acupdate

    _before = acupdate.loaded()
    import acupdate.startup

    acupdate.startup.boot()
    acupdate.unload(_before)
    del _before
except ImportError as e:
    print("acupdate is not installed:", e)

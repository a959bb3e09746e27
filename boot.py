# boot.py: joins Wi-Fi from /acupdate.json and confirms a freshly updated image only
# after its health check passes (else the board resets and rolls back).
try:
    import acupdate.startup

    acupdate.startup.boot()
except ImportError as e:
    print("acupdate is not installed:", e)

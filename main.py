# main.py: the optional start-up update check (see /acupdate.json "startup"),
# then the application, if there is one (app.py).
try:
    import acupdate

    _before = acupdate.loaded()
    import acupdate.startup

    acupdate.startup.check()
    acupdate.unload(_before)
    del _before
except ImportError as e:
    print("acupdate is not installed:", e)

try:
    import app  # type: ignore[import-not-found]  # noqa: F401  (it starts on import)
except ImportError as e:
    if "app" not in str(e):
        raise

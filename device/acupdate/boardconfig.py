# acupdate.boardconfig: the board's settings file, /acupdate.json (tools.deploy writes it:
# "wifi", "server", "health", "startup", ...), and the Config of its update server.

PATH = "/acupdate.json"


def load(path=PATH):
    """The board's settings file as a dict ({} when there is none)."""
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return {}


def server(url=None, **kw):
    """The Config of the update server at `url`, or of the settings file's "server" (with
    `kw` over it; a None there is a setting not given). ValueError when there is none or
    a setting is wrong."""
    from .config import Config

    kw = {k: v for k, v in kw.items() if v is not None}
    if url is not None:
        return Config(url=url, **kw)
    d = load().get("server")
    if not d:
        raise ValueError(
            "no update server: pass url='http://host:8000/path', or deploy one (tools.deploy "
            "--server URL)"
        )
    d = dict(d)
    d.update(kw)
    return Config.from_dict(d)

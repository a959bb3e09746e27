"""An htpasswd line that nginx's auth_basic_user_file reads: ``user:$6$salt$hash``.

The hash is SHA-512-crypt (the ``$6$`` scheme of glibc's crypt(3), which nginx calls for
any hash it does not know itself; ``openssl passwd -6`` makes the same), written here with
hashlib after Ulrich Drepper's specification "Unix crypt using SHA-256 and SHA-512", so
that the export needs neither a crypt module (gone from Python 3.13) nor an extra package.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ROUNDS = 5000  # the scheme's default: written without a rounds= field
SALT_LEN = 16  # the scheme's longest salt


def _b64(value: int, chars: int) -> str:
    out = []
    for _ in range(chars):
        out.append(ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    """``length`` bytes: ``digest`` as many whole times as fit, then its first bytes."""
    return digest * (length // len(digest)) + digest[: length % len(digest)]


def sha512_crypt(password: str, salt: str, rounds: int = ROUNDS) -> str:
    """``$6$<salt>$<86 characters>`` (``$6$rounds=N$...`` when ``rounds`` is not 5000)."""
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError(f"rounds must be 1000..999999999, got {rounds}")
    salt = salt[:SALT_LEN]
    if not salt or any(c not in ALPHABET for c in salt):
        raise ValueError(f"salt {salt!r}: 1 to 16 characters of [./0-9A-Za-z]")
    key, s = password.encode(), salt.encode()
    b = hashlib.sha512(key + s + key).digest()
    a = hashlib.sha512(key + s + _repeat(b, len(key)))
    n = len(key)
    while n:
        a.update(b if n & 1 else key)
        n >>= 1
    digest = a.digest()
    p = _repeat(hashlib.sha512(key * len(key)).digest(), len(key))
    ds = _repeat(hashlib.sha512(s * (16 + digest[0])).digest(), len(s))
    for i in range(rounds):
        c = hashlib.sha512(p if i & 1 else digest)
        if i % 3:
            c.update(ds)
        if i % 7:
            c.update(p)
        c.update(digest if i & 1 else p)
        digest = c.digest()
    out = []
    for k in range(21):
        trio = (k, k + 21, k + 42)
        first, second, third = trio[k % 3 :] + trio[: k % 3]
        out.append(_b64(digest[first] << 16 | digest[second] << 8 | digest[third], 4))
    out.append(_b64(digest[63], 2))
    head = "$6$" if rounds == ROUNDS else f"$6$rounds={rounds}$"
    return f"{head}{salt}${''.join(out)}"


def check(password: str, hashed: str) -> bool:
    """True when ``hashed`` (a ``$6$`` string) is the hash of ``password``."""
    parts = hashed.split("$")
    if len(parts) < 4 or parts[1] != "6":
        return False
    rounds = ROUNDS
    if parts[2].startswith("rounds=") and len(parts) == 5:
        try:
            rounds = int(parts[2][7:])
        except ValueError:
            return False
        salt = parts[3]
    elif len(parts) == 4:
        salt = parts[2]
    else:
        return False
    try:
        return secrets.compare_digest(sha512_crypt(password, salt, rounds), hashed)
    except ValueError:
        return False


def line(user: str, password: str, salt: str | None = None) -> str:
    """One htpasswd line (no newline) for ``user``."""
    if not user or ":" in user or any(c in user for c in "\r\n"):
        raise ValueError(f"user name {user!r}: not empty, without ':' or a line break")
    if any(c in password for c in "\r\n"):
        raise ValueError("the password contains a line break")
    if salt is None:
        salt = "".join(secrets.choice(ALPHABET) for _ in range(SALT_LEN))
    return f"{user}:{sha512_crypt(password, salt)}"

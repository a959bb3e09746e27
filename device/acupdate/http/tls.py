# acupdate.http.tls: the TLS context for an https:// update server, from a CA file on the
# board: mbedTLS checks during the handshake that the server's certificate chains to one of
# its certificates and names the host. The file holds one DER certificate, or PEM ones (a
# bundle is read one certificate at a time).
import binascii

import tls


def context(ca):
    """A tls.SSLContext that accepts only servers whose certificate a CA in file `ca`
    signed. OSError if the file cannot be read, ValueError if it holds no certificate."""
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    try:
        f = open(ca, "rb")
    except OSError as e:
        import errno

        n = e.args[0] if e.args else 0
        raise OSError("CA file %s cannot be opened (%s)" % (ca, errno.errorcode.get(n, n)))
    n = 0
    with f:
        if f.read(1) == b"\x30":  # DER: an ASN.1 SEQUENCE
            f.seek(0)
            _load(ctx, f.read(), ca)
            n = 1
        else:
            f.seek(0)
            b64 = None
            for line in f:
                if line.startswith(b"-----BEGIN CERTIFICATE"):
                    b64 = bytearray()
                elif b64 is None:
                    continue
                elif line.startswith(b"-----END"):
                    _load(ctx, b64, ca, True)
                    n += 1
                    b64 = None
                else:
                    b64 += line.strip()
    if not n:
        raise ValueError(
            "CA file %s holds no certificate (DER, or PEM: -----BEGIN CERTIFICATE-----)" % ca
        )
    return ctx


def _load(ctx, data, ca, pem=False):
    try:
        ctx.load_verify_locations(binascii.a2b_base64(data) if pem else data)
    except (OSError, ValueError) as e:
        raise ValueError("CA file %s: not a usable certificate (%s)" % (ca, e.args[0]))

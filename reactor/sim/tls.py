"""Self-signed TLS for the simulator: a throw-away CA and a server certificate for loopback.

OKX is only reachable over https/wss, and some clients cannot be pointed at plain ws://
(python-okx 0.4.4's ``WebSocketFactory`` always passes an SSL context to
``websockets.connect``). With TLS on, such a client trusts the simulator through the CA file
alone: ``SSL_CERT_FILE=<ca_file>`` is honoured by ``ssl.create_default_context()`` and by httpx.

The certificates come from the ``openssl`` command line (present wherever Python's ssl module
is built against OpenSSL), so the simulator needs no extra Python dependency. The CA's private
key is deleted once the server certificate is signed: nothing else can be issued under it.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
# Names the server certificate is valid for: every loopback spelling a client may use.
SERVER_NAMES = "DNS:localhost,IP:127.0.0.1,IP:::1"
VALID_DAYS = "2"


class TlsError(RuntimeError):
    """The certificates could not be made (no openssl, or it failed); one line, why."""


@dataclass(frozen=True)
class TlsMaterial:
    """Where the CA and the server's certificate and key live (all PEM)."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (tests, the fidelity benchmark)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls(directory: Path | None = None) -> TlsMaterial:
    """A fresh CA and a server certificate for localhost/127.0.0.1/::1 in ``directory`` (a new
    temporary directory when None; the caller removes it, see :func:`remove_tls`)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError("TLS needs the openssl command, which is not on PATH")
    where = Path(tempfile.mkdtemp(prefix="reactor-sim-tls-")) if directory is None else directory
    where.mkdir(parents=True, exist_ok=True)
    ca, ca_key = where / CA_FILE, where / "ca.key"
    cert, key, csr = where / CERT_FILE, where / KEY_FILE, where / "server.csr"
    ext = where / "server.ext"
    ext.write_text(
        f"subjectAltName={SERVER_NAMES}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n",
        encoding="ascii",
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_cmd = [openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca)]
    ca_cmd += ["-days", VALID_DAYS, "-subj", "/CN=reactor sim test CA"]
    ca_cmd += ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_cmd += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    csr_cmd = [openssl, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"]
    sign_cmd = [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)]
    sign_cmd += ["-CAcreateserial", "-out", str(cert), "-days", VALID_DAYS, "-extfile", str(ext)]
    steps = [ca_cmd, csr_cmd, sign_cmd]
    try:
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise TlsError(f"openssl {cmd[1]} failed: {last}")
    finally:
        for leftover in (ca_key, csr, ext, where / "ca.srl"):
            leftover.unlink(missing_ok=True)
    key.chmod(0o600)
    return TlsMaterial(where, ca, cert, key)


def remove_tls(material: TlsMaterial) -> None:
    """Delete the certificate files (the simulator made the directory, so it goes too)."""
    for path in (material.ca_file, material.cert_file, material.key_file):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty or already gone: leave what else is there
        material.directory.rmdir()

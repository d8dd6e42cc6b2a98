"""The public URL's certificate, read from a real TLS server on loopback with certificates made here."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from memex.doctor import tls
from memex.doctor.models import Severity
from tests.doctor.conftest import MakeContext, by_check, only


def _self_signed(folder: Path, *, not_before: datetime, not_after: datetime) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    """A TLS server on a free loopback port that completes handshakes and hangs up; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as wrapped:
                wrapped.settimeout(2)
                with contextlib.suppress(OSError):
                    wrapped.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


async def test_expired_certificate_is_critical(tmp_path: Path, offline_context: MakeContext) -> None:
    now = datetime.now(UTC)
    cert, key = _self_signed(tmp_path, not_before=now - timedelta(days=90), not_after=now - timedelta(days=2))
    with tls_server(cert, key) as port:
        found = await tls.public_url(offline_context(public_url=f"https://127.0.0.1:{port}"))
    finding = only(found, "tls.certificate_expiry")
    assert finding.severity is Severity.critical and "expired" in finding.found
    assert finding.data["days_left"] < 0 and "renewal" in finding.fix


async def test_certificate_expiring_soon_and_untrusted(tmp_path: Path, offline_context: MakeContext) -> None:
    now = datetime.now(UTC)
    cert, key = _self_signed(tmp_path, not_before=now - timedelta(days=1), not_after=now + timedelta(days=3))
    with tls_server(cert, key) as port:
        found = await tls.public_url(offline_context(public_url=f"https://127.0.0.1:{port}"))
    assert only(found, "tls.certificate_expiry").severity is Severity.high
    trust = only(found, "tls.certificate_trust")
    assert trust.severity is Severity.high and "self" in trust.found.lower()


async def test_no_tls_server_at_the_public_url(offline_context: MakeContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    found = await tls.public_url(offline_context(public_url=f"https://127.0.0.1:{port}"))
    assert only(found, "tls.certificate").severity is Severity.medium


async def test_plain_http_public_url_on_a_network_address_is_high(offline_context: MakeContext) -> None:
    found = await tls.public_url(offline_context(host="0.0.0.0", public_url="http://memex.example.com"))
    assert only(found, "tls.public_url").severity is Severity.high
    assert not by_check(await tls.public_url(offline_context()), "tls.certificate")

"""The public URL and its TLS certificate: read from the server itself, as a browser would reach it."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509

from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity


async def _peer_certificate(host: str, port: int, *, timeout: float) -> bytes:
    """The certificate the server presents, read without trusting it (so an expired one can still be dated)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj else None
        if not der:
            raise ssl.SSLError("the server sent no certificate")
        return bytes(der)
    finally:
        writer.close()


async def _verify(host: str, port: int, *, timeout: float) -> str | None:
    """Why a browser would refuse the certificate (untrusted issuer, wrong name), or None when it would not."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context(), server_hostname=host
            )
        writer.close()
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, TimeoutError):
        return None  # unreachable was already reported by reading the certificate
    return None


async def public_url(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    url = settings.public_url
    if not url:
        if ctx.exposed:
            return [
                Finding(
                    Severity.medium,
                    "tls.public_url",
                    f"MEMEX_PUBLIC_URL is unset on a server listening on {settings.host}: cookies are not marked "
                    "Secure, no HSTS header is sent, and login links point at the listen address.",
                    "Put Memex behind a TLS-terminating proxy and set MEMEX_PUBLIC_URL=https://memex.example.com.",
                )
            ]
        return [Finding(Severity.info, "tls.public_url", "MEMEX_PUBLIC_URL is unset (a loopback-only server)")]
    parts = urlsplit(url)
    if parts.scheme != "https":
        if ctx.exposed:
            return [
                Finding(
                    Severity.high,
                    "tls.public_url",
                    f"MEMEX_PUBLIC_URL is {url}, plain http: passwords, session cookies and documents cross the "
                    "network unencrypted.",
                    "Terminate TLS in front of Memex (nginx, a load balancer) and set MEMEX_PUBLIC_URL to the https:// URL.",
                )
            ]
        return [Finding(Severity.info, "tls.public_url", f"MEMEX_PUBLIC_URL is {url} (loopback, plain http)")]
    return await certificate(ctx, parts.hostname or "", parts.port or 443)


async def certificate(ctx: Context, host: str, port: int) -> list[Finding]:
    limits = ctx.thresholds
    where = f"{host}:{port}"
    try:
        der = await _peer_certificate(host, port, timeout=limits.probe_timeout_seconds)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        reason = str(exc) or type(exc).__name__
        return [
            Finding(
                Severity.medium,
                "tls.certificate",
                f"could not read the TLS certificate of {where} from this machine: {reason}.",
                "Check that MEMEX_PUBLIC_URL is right and that the proxy answers TLS there; if this machine cannot "
                "reach its own public address, check the certificate from outside.",
            )
        ]
    cert = x509.load_der_x509_certificate(der)
    expires = cert.not_valid_after_utc
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    data = {"host": host, "port": port, "expires_at": expires.isoformat(), "days_left": round(days, 1)}
    renew = "Renew the certificate now, and automate renewal (certbot, cert-manager) so this cannot recur."
    findings = []
    if days < 0:
        findings.append(
            Finding(
                Severity.critical,
                "tls.certificate_expiry",
                f"the TLS certificate of {where} expired on {expires:%Y-%m-%d}: browsers and API clients refuse it.",
                renew,
                data,
            )
        )
    elif days < limits.certificate_critical_days:
        findings.append(
            Finding(
                Severity.high,
                "tls.certificate_expiry",
                f"the TLS certificate of {where} expires in {days:.0f} days ({expires:%Y-%m-%d}).",
                renew,
                data,
            )
        )
    elif days < limits.certificate_warn_days:
        findings.append(
            Finding(
                Severity.medium,
                "tls.certificate_expiry",
                f"the TLS certificate of {where} expires in {days:.0f} days ({expires:%Y-%m-%d}).",
                "Check that automatic renewal is working: most renew 30 days before expiry.",
                data,
            )
        )
    else:
        findings.append(
            Finding(
                Severity.info,
                "tls.certificate_expiry",
                f"the TLS certificate of {where} is valid until {expires:%Y-%m-%d}",
                data=data,
            )
        )
    refused = await _verify(host, port, timeout=limits.probe_timeout_seconds)
    if refused and days >= 0:
        findings.append(
            Finding(
                Severity.high,
                "tls.certificate_trust",
                f"clients would refuse the TLS certificate of {where}: {refused}.",
                "Use a certificate from a public authority (Let's Encrypt) that names this host, with its full chain.",
                {"host": host, "port": port},
            )
        )
    return findings

"""Security checks: authentication, the first admin's password, secrets, CORS and hosts, rate limits, metrics."""

from __future__ import annotations

import asyncio
import stat
from urllib.parse import urlsplit

from memex.accounts import passwords
from memex.accounts import store as accounts
from memex.accounts.service import DEFAULT_ADMIN_EMAIL, is_loopback
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity
from memex.ratelimit import parse_limits
from memex.secret_files import secret_file_paths
from memex.settings import Settings

# Passwords people leave on a first admin; checked against the stored hash (argon2, so a short list).
DEFAULT_PASSWORDS = (
    "admin",
    "password",
    "changeme",
    "memex",
    "admin123",
    "password123",
    "Password123!",
    "secret",
    "letmein",
    "12345678",
    "123456789",
    "administrator",
)
_GENERATE = "`openssl rand -base64 18` makes a strong one"


async def authentication(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    if settings.auth:
        return [Finding(Severity.info, "security.auth", "authentication is on")]
    if ctx.exposed:
        return [
            Finding(
                Severity.critical,
                "security.auth",
                f"authentication is off (MEMEX_AUTH=false) on a server other machines can reach ({settings.host}"
                f"{', ' + settings.public_url if settings.public_url else ''}): anyone who reaches it acts as the "
                "first admin and can read, change and delete everything.",
                "Remove MEMEX_AUTH=false (authentication is on by default), or listen on 127.0.0.1 only. "
                "`memex serve` refuses to start this way; another launcher must be bypassing it.",
            )
        ]
    return [
        Finding(
            Severity.low,
            "security.auth",
            "authentication is off (MEMEX_AUTH=false): every program and person on this machine acts as the first admin.",
            "Fine on a single-user laptop; turn it back on if other people use this machine.",
        )
    ]


async def admin_password(ctx: Context) -> list[Finding]:
    """Whether the first admin still logs in with a default, common or weak MEMEX_ADMIN_PASSWORD."""
    settings = ctx.settings
    async with ctx.engine_or_fail().connect() as conn:
        first = await accounts.first_admin(conn)
        email = settings.admin_email or DEFAULT_ADMIN_EMAIL
        found = await accounts.credentials(conn, email)
        if found is None or not found.user.is_admin:
            found = await accounts.credentials(conn, first.email) if first else None
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    if found is None:
        weak = passwords.weakness(given) if given else None
        if weak:
            return [
                Finding(
                    Severity.high if ctx.exposed else Severity.low,
                    "security.admin_password",
                    f"no admin exists yet, and the first start will give it MEMEX_ADMIN_PASSWORD, which is weak ({weak})"
                    + (": `memex serve` refuses to start with it on this address." if ctx.exposed else "."),
                    f"Unset MEMEX_ADMIN_PASSWORD (a random password is then printed once), or use a strong one; {_GENERATE}.",
                )
            ]
        return [Finding(Severity.info, "security.admin_password", "no admin exists yet: the first start creates one")]
    user = found.user
    candidates = [*DEFAULT_PASSWORDS, *([given] if given else [])]
    matches = await asyncio.to_thread(
        lambda: [c for c in candidates if found.password_hash and passwords.verify(found.password_hash, c)]
    )
    login = "anyone who reaches the login page" if ctx.exposed else "anyone on this machine"
    severe = Severity.critical if ctx.exposed and settings.password_login else Severity.medium
    replace = (
        f"Create a personal admin with a generated password (`memex users create --email you@example.com --admin`), "
        f"log in with it, disable this account (`memex users disable {user.email}`), and remove MEMEX_ADMIN_PASSWORD "
        f"from the configuration; {_GENERATE}."
    )
    common = [c for c in matches if c != given or passwords.weakness(c)]
    if common:
        why = "a common password" if common[0] in DEFAULT_PASSWORDS else passwords.weakness(common[0])
        return [
            Finding(
                severe,
                "security.admin_password",
                f"the admin {user.email} still logs in with a weak password ({why}): {login} can guess it.",
                replace,
                {"email": user.email},
            )
        ]
    if given and matches:
        return [
            Finding(
                Severity.low,
                "security.admin_password",
                f"the admin {user.email} still uses the password from MEMEX_ADMIN_PASSWORD, which stays in the "
                "server's configuration where whoever reads it can log in as admin.",
                replace,
                {"email": user.email},
            )
        ]
    findings = [
        Finding(
            Severity.info,
            "security.admin_password",
            f"the admin {user.email} uses neither MEMEX_ADMIN_PASSWORD nor a common password",
        )
    ]
    if given:
        findings.append(
            Finding(
                Severity.low,
                "security.admin_password",
                "MEMEX_ADMIN_PASSWORD is still set, though it is only read when the first admin is created.",
                "Remove it from the configuration: a password left lying around tends to be reused.",
            )
        )
    return findings


async def secrets(ctx: Context) -> list[Finding]:
    """Secrets given inline in the environment, and secret files others can read."""
    settings = ctx.settings
    files = secret_file_paths(Settings)
    inline = sorted(name for name in _secret_values(settings) if name not in files)
    findings = []
    if inline:
        names = ", ".join(f"MEMEX_{n.upper()}" for n in inline)
        findings.append(
            Finding(
                Severity.medium if ctx.exposed else Severity.low,
                "security.secrets_inline",
                f"secrets given inline (in the environment or arguments): {names}. Environment variables show up in "
                "`docker inspect`, /proc/<pid>/environ, crash reports and shell history.",
                "Put each in a file readable only by Memex's user and name it with MEMEX_<NAME>_FILE instead, "
                "e.g. MEMEX_DATABASE_URL_FILE=/run/secrets/db_url.",
                {"settings": [f"MEMEX_{n.upper()}" for n in inline]},
            )
        )
    for name, path in sorted(files.items()):
        try:
            mode = path.stat().st_mode
        except OSError:
            continue  # Settings already refused an unreadable file; it changed since
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            severity, who = Severity.medium, "every user of this machine"
        elif mode & (stat.S_IRGRP | stat.S_IWGRP):
            severity, who = Severity.low, "its group"
        else:
            continue
        findings.append(
            Finding(
                severity,
                "security.secret_file_mode",
                f"{path} (MEMEX_{name.upper()}_FILE) has mode {stat.filemode(mode)}: {who} can read it.",
                f"`chmod 600 {path}` (in Kubernetes, `defaultMode: 0400` on the secret volume).",
                {"path": str(path), "mode": oct(stat.S_IMODE(mode))},
            )
        )
    if not findings:
        findings.append(Finding(Severity.info, "security.secrets", "no secret is given inline or readable by others"))
    return findings


def _secret_values(settings: Settings) -> list[str]:
    from memex.secret_files import secret_fields

    return [name for name in secret_fields(Settings) if getattr(settings, name) is not None]


async def cors_and_hosts(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    findings = []
    hosts = settings.allowed_hosts
    if "*" in hosts:
        findings.append(
            Finding(
                Severity.medium,
                "security.allowed_hosts",
                'MEMEX_ALLOWED_HOSTS contains "*": the server answers any Host header, which helps DNS rebinding.',
                "List the names the server is reached by, e.g. MEMEX_ALLOWED_HOSTS=memex.example.com.",
            )
        )
    elif not hosts and ctx.exposed:
        findings.append(
            Finding(
                Severity.low,
                "security.allowed_hosts",
                "MEMEX_ALLOWED_HOSTS is empty on a server other machines can reach: any Host header is answered.",
                "Set it to the names the proxy forwards, e.g. MEMEX_ALLOWED_HOSTS=memex.example.com.",
            )
        )
    wide = [h for h in hosts if h.startswith("*.")]
    if wide:
        findings.append(
            Finding(
                Severity.info,
                "security.allowed_hosts",
                f"MEMEX_ALLOWED_HOSTS accepts every subdomain of {', '.join(h[2:] for h in wide)}.",
            )
        )
    plain = [
        o for o in settings.cors_origins if o.startswith("http://") and not is_loopback(urlsplit(o).hostname or "")
    ]
    if plain:
        findings.append(
            Finding(
                Severity.medium,
                "security.cors",
                f"MEMEX_CORS_ORIGINS lets plain-http origins call the API with credentials: {', '.join(plain)}; "
                "anyone on their network path can inject script there that acts as the user.",
                "List only https:// origins.",
            )
        )
    if not findings:
        origins = ", ".join(settings.cors_origins) or "none (same origin only)"
        findings.append(Finding(Severity.info, "security.cors", f"cross-origin callers allowed: {origins}"))
    return findings


async def rate_limits(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    limits = {
        "login": settings.rate_limit_login,
        "search": settings.rate_limit_search,
        "chat": settings.rate_limit_chat,
        "upload": settings.rate_limit_upload,
    }
    off = [name for name, text in limits.items() if not parse_limits(text)]
    if not off:
        return [Finding(Severity.info, "security.rate_limits", "every rate limit is on")]
    findings = []
    for name in off:
        severity = Severity.low
        if ctx.exposed:
            severity = Severity.high if name == "login" else Severity.medium
        risk = {
            "login": "passwords can be guessed as fast as the server answers (only the per-account lockout slows it)",
            "search": "one client can keep the database and the embedding model busy for everyone",
            "chat": "one client can spend the language model's budget",
            "upload": "one client can fill the disk and the job queue",
        }[name]
        findings.append(
            Finding(
                severity,
                f"security.rate_limit_{name}",
                f"MEMEX_RATE_LIMIT_{name.upper()} is off: {risk}.",
                f"Unset MEMEX_RATE_LIMIT_{name.upper()} for the default, or give a rate such as "
                f"{Settings.model_fields[f'rate_limit_{name}'].default}.",
            )
        )
    return findings


async def metrics(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    if not settings.metrics:
        return [Finding(Severity.info, "security.metrics", "metrics are off (MEMEX_METRICS=false)")]
    if settings.metrics_token is not None:
        return [Finding(Severity.info, "security.metrics", "/metrics requires MEMEX_METRICS_TOKEN")]
    if ctx.exposed:
        return [
            Finding(
                Severity.medium,
                "security.metrics",
                "/metrics has no token on a server other machines can reach: it relies on telling loopback callers "
                "apart, which a reverse proxy on the same host that does not send X-Forwarded-For defeats.",
                "Set MEMEX_METRICS_TOKEN_FILE to a file holding a long random token, and give Prometheus the same "
                "token (authorization: {credentials_file: …}).",
            )
        ]
    return [Finding(Severity.info, "security.metrics", "/metrics answers loopback callers only")]

"""The go-live items no software can check from inside: a person confirms each one."""

from __future__ import annotations

from memex.doctor.models import ManualItem

MANUAL = (
    ManualItem(
        "manual.offsite_backups",
        "Backups are copied off this machine (another host, region or provider), automatically.",
        "A backup on the same disk dies with it: sync MEMEX_BACKUP_DIR to object storage or another host.",
    ),
    ManualItem(
        "manual.restore_drill",
        "A person has restored a backup onto a fresh machine, and timed it.",
        "`memex backup verify` proves an archive is sound; a drill proves the people and the runbook work.",
    ),
    ManualItem(
        "manual.alerts_routed",
        "Alerts (deploy/ Prometheus rules) reach someone who will act: pager, chat channel, email.",
        "Send a test alert through Alertmanager and see who receives it.",
    ),
    ManualItem(
        "manual.tls_renewal",
        "TLS certificate renewal is automated (certbot timer, cert-manager) and its failures alert.",
        "`memex doctor` reads the expiry date; only the renewal setup keeps it from arriving.",
    ),
    ManualItem(
        "manual.firewall",
        "Only the proxy's port is reachable from outside: PostgreSQL, Redis, the worker metrics port and "
        "Memex's own port are not.",
        "Probe them from another network (`nc -vz host 5432`).",
    ),
    ManualItem(
        "manual.admin_accounts",
        "Every admin is a named person with a strong password (or single sign-on); nobody shares an account.",
        "Review `memex users list`, and disable accounts of people who left.",
    ),
    ManualItem(
        "manual.llm_data",
        "The chat model's provider may receive the documents' text under your data rules (or the model runs locally).",
        "Passages from the documents are sent with every question.",
    ),
)

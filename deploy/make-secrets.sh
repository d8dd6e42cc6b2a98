#!/bin/sh
# Writes deploy/secrets/ for docker compose: random database and admin passwords, the database URL that goes with
# them, a metrics token, an empty LLM API key (put yours in), and a self-signed certificate for the host name
# given (replace tls_certificate.pem and tls_key.pem with your real ones). Never overwrites a file that exists.
# Usage: ./make-secrets.sh [HOST]    (default: localhost)
set -eu
host="${1:-localhost}"
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

random() { openssl rand -base64 24 | tr -d '/+=\n'; }
write() { [ -e "$dir/$1" ] || printf '%s' "$2" > "$dir/$1"; }

write postgres_password "$(random)"
write memex_database_url "postgresql://memex:$(cat "$dir/postgres_password")@postgres:5432/memex"
write memex_admin_password "$(random)"
write memex_metrics_token "$(random)"
write memex_llm_api_key ""
if [ ! -e "$dir/tls_certificate.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" -keyout "$dir/tls_key.pem" -out "$dir/tls_certificate.pem" 2>/dev/null
fi
echo "Secrets are in $dir (the admin's password: $dir/memex_admin_password)."

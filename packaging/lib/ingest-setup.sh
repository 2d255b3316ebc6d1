#!/bin/sh
# logops-ingest's installation step, run by the .deb's postinst and the .rpm's %post:
# makes the logops-ingest system user and its state directory and, at the first
# installation, /etc/logops/ingest.toml with a tenant "default" and a new API key, which goes
# to /etc/logops/api_key (for an agent on this machine) unless that file exists. Idempotent:
# an existing configuration is never touched.
set -e
getent group logops-ingest >/dev/null || groupadd --system logops-ingest
getent passwd logops-ingest >/dev/null || useradd --system --gid logops-ingest \
    --home-dir /var/lib/logops-ingest --no-create-home --shell /usr/sbin/nologin \
    --comment "LogOps ingest" logops-ingest
install -d -m 0750 -o logops-ingest -g logops-ingest /var/lib/logops-ingest
install -d -m 0755 /etc/logops
if [ ! -e /etc/logops/ingest.toml ]; then
    out=$(/usr/bin/logops-ingest keygen --tenant default)
    key=$(printf '%s\n' "$out" | sed -n 's/^ *\(lo_[a-z2-7]*\)$/\1/p')
    sha=$(printf '%s\n' "$out" | sed -n 's/^api_key_sha256 = \["\([0-9a-f]*\)"\]$/\1/p')
    if [ -z "$key" ] || [ -z "$sha" ]; then
        echo "logops-ingest: 'logops-ingest keygen' printed no key:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    umask 077
    sed "s/@SHA256@/$sha/" /usr/share/logops-ingest/ingest.toml.in > /etc/logops/ingest.toml.new
    chgrp logops-ingest /etc/logops/ingest.toml.new
    chmod 0640 /etc/logops/ingest.toml.new
    mv /etc/logops/ingest.toml.new /etc/logops/ingest.toml
    if [ ! -e /etc/logops/api_key ]; then
        printf '%s\n' "$key" > /etc/logops/api_key
        echo "logops-ingest: made /etc/logops/ingest.toml (tenant \"default\"); its API key is in /etc/logops/api_key"
    else
        echo "logops-ingest: made /etc/logops/ingest.toml (tenant \"default\"); /etc/logops/api_key already existed, so the new key is:"
        echo "    $key"
    fi
fi

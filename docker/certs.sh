#!/bin/sh
# The loupe-certs service: a CA, a certificate per node and the runner's and NiFi's tokens in
# /tls (the loupe-tls volume), made once; delete the volume to make new ones (SECURITY.md).
set -eu
if [ -f /tls/ca.crt ]; then
    echo "certificates already made (/tls)"
    exit 0
fi
loupe certs ca --out /tls
for n in camera preprocess classify route records; do
    loupe certs issue "loupe-$n" --ca /tls --out /tls
done
loupe certs token --out /tls/runner.token
loupe certs token --out /tls/nifi.token
loupe certs token --out /tls/dashboard.token
# NiFi's container reads its token as its own user (`nifi`); every other file stays 0600.
chmod 0644 /tls/nifi.token

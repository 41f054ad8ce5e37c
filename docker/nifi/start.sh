#!/bin/sh -e
# Entry point of the `nifi` service in docker/compose.yaml: turns on NiFi's Python processors,
# adds the mounted Loupe extensions directory as a Python extensions source, then starts
# NiFi exactly as the image does (/opt/nifi/scripts/start.sh).
#
# nifi.properties keys (NiFi 2.x, "Python Extensions" section):
#   nifi.python.command                                 the interpreter (commented out in
#                                                       some releases: Python processors off)
#   nifi.python.extensions.source.directory.<name>      a directory scanned for processors;
#                                                       `default` is ./python/extensions
set -e
props="${NIFI_HOME:-/opt/nifi/nifi-current}/conf/nifi.properties"

set_prop() {
    if grep -q "^#\{0,1\}$1=" "$props"; then
        sed -i "s|^#\{0,1\}$1=.*|$1=$2|" "$props"
    else
        printf '%s=%s\n' "$1" "$2" >> "$props"
    fi
}

set_prop nifi.python.command python3
set_prop nifi.python.extensions.source.directory.loupe /opt/loupe/nifi/python/extensions

exec /opt/nifi/scripts/start.sh

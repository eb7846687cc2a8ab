#!/bin/sh
# gen_certs.sh DIR -- test PKI made fresh with openssl for the sec_ tests:
#   ca.pem/ca.key            the CA e2d and its clients trust
#   server.pem/server.key    e2d's certificate (localhost, 127.0.0.1), by ca
#   client.pem/client.key    a worker's client certificate, by ca
#   rogue-ca.pem, rogue.pem/rogue.key  a CA nobody trusts and a client
#                            certificate it signed
# EC P-256 keys keep it fast. Keys are mode 600.
set -eu
d=$1
mkdir -p "$d"
cd "$d"
umask 077
ca() { # name subject
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" 2>/dev/null
}
leaf() { # name ca subject extfile-line
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
        -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "e2 test CA"
ca rogue-ca "rogue CA"
leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
leaf client ca worker-1 "extendedKeyUsage=clientAuth"
leaf rogue rogue-ca worker-x "extendedKeyUsage=clientAuth"

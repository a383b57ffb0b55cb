#!/bin/bash
# Throwaway certificates for the end-to-end benchmark (never reused outside it):
# origin CA + origin leaf (origin.test and *.origin.test, so h1..hN.origin.test all verify),
# a CA for Squid's bumping, and a 1 MiB payload file.
set -euo pipefail
d=${1:?work dir}; mkdir -p "$d"; cd "$d"
[[ -f origin.pem && -f big.bin ]] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout origin-ca.key -out origin-ca.pem -days 30 \
  -subj "/CN=ProxyGuard Bench Origin CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout origin.key -out origin.csr -subj "/CN=origin.test" 2>/dev/null
printf 'subjectAltName=DNS:origin.test,DNS:*.origin.test,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > san.ext
openssl x509 -req -in origin.csr -CA origin-ca.pem -CAkey origin-ca.key -CAcreateserial -out origin.pem -days 30 -extfile san.ext 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout squid-ca.key -out squid-ca.pem -days 30 -subj "/CN=Squid Bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
head -c 1048576 /dev/urandom > big.bin
chmod 644 ./*.pem ./*.key big.bin

#!/bin/sh
# Managed by Salt (pki formula).
# Usage: certificate-current CERT KEY CA DAYS CN [O] [SANS]
# Exits 0 when CERT is current: it exists, is valid for more than DAYS days, belongs to KEY,
# chains to CA, has the common name CN (and the organization O when given), and exactly the
# subject alternative names SANS ("DNS:a, IP:1.2.3.4", any order). The states that issue
# certificates skip their round trip to the CA minion when it is.
crt=$1 key=$2 ca=$3 days=$4 cn=$5 org=${6:-} sans=${7:-}
[ -s "$crt" ] && [ -s "$key" ] && [ -s "$ca" ] || exit 1
openssl x509 -in "$crt" -noout -checkend "$((days * 86400))" >/dev/null 2>&1 || exit 1
[ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout)" ] || exit 1
openssl verify -CAfile "$ca" "$crt" >/dev/null 2>&1 || exit 1
rdns=$(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253 | sed 's/^subject=//' | tr ',' '\n')
printf '%s\n' "$rdns" | grep -qxF "CN=$cn" || exit 1
if [ -n "$org" ]; then
  printf '%s\n' "$rdns" | grep -qxF "O=$org" || exit 1
fi
normalize() { sed 's/IP Address:/IP:/g' | tr ',' '\n' | tr -d ' ' | sed '/^$/d' | sort; }
have=$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | normalize)
want=$(printf '%s' "$sans" | normalize)
[ "$have" = "$want" ]

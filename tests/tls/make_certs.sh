#!/usr/bin/env bash
# make_certs.sh DIR — the TLS tests' and benchmarks' certificates, made at
# run time with the openssl tool (nothing secret is checked in, nothing
# expires in the tree).  All keys are ECDSA P-256 (the issue's benchmark
# key) except rsa.key.  Writes into DIR (created):
#
#   ca.pem ca.key            the test CA ("corio test CA"); trust this one
#   server.pem server.key    leaf for localhost, 127.0.0.1 and ::1, signed by the CA
#   chain.pem                server.pem followed by ca.pem
#   other.pem other.key      leaf for other.test and *.wild.test (SNI tests)
#   expired.pem expired.key  leaf for localhost whose validity ended in the past
#   wronghost.pem .key       leaf for wrong.test only
#   client.pem client.key    client certificate (CN "corio test client", clientAuth)
#   rogue_ca.pem/.key        another CA nobody trusts
#   rogue.pem rogue.key      leaf for localhost signed by the rogue CA
#   rsa.pem rsa.key          RSA-2048 leaf for localhost, signed by the CA
#
# Idempotent: a DIR that already holds server.pem is left alone.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[[ -s server.pem && -s rsa.pem ]] && exit 0

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name cn
    ec_key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem" 2>/dev/null
}

# leaf name cn san ca [extra openssl x509 args...]
leaf() {
    local name=$1 cn=$2 san=$3 issuer=$4
    shift 4
    [[ -s $name.key ]] || ec_key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n%s\n' \
        "extendedKeyUsage=${EKU:-serverAuth}" "${san:+subjectAltName=$san}" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
        -sha256 -extfile "$name.ext" -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

ca ca "corio test CA"
ca rogue_ca "rogue test CA"
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" ca -days 3650
cat server.pem ca.pem >chain.pem
leaf other other.test "DNS:other.test,DNS:*.wild.test" ca -days 3650
leaf wronghost wrong.test "DNS:wrong.test" ca -days 3650
EKU=clientAuth leaf client "corio test client" "" ca -days 3650
leaf rogue localhost "DNS:localhost,IP:127.0.0.1" rogue_ca -days 3650
# expired: valid for the 2 days ending yesterday (openssl 3.0's x509 -req
# has no -not_before, so the CA signs with a faked clock through `ca`)
ec_key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>/dev/null
mkdir -p ca.db && : >ca.db/index.txt && echo 1000 >ca.db/serial
cat >ca.db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca.db
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
openssl ca -batch -config ca.db/ca.cnf -extensions ext -in expired.csr -out expired.pem \
    -startdate "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
    -notext 2>/dev/null
rm -rf expired.csr ca.db
# RSA leaf
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
leaf rsa localhost "DNS:localhost,IP:127.0.0.1" ca -days 3650
rm -f ./*.srl

#!/bin/sh
# Writes /data/bitcoin.conf from BITCOIN_NETWORK and BITCOIN_EXTRA_ARGS, as BTCPay Server's
# bitcoin image does, then runs the command as the user bitcoin.
set -eu
case "${1:-}" in
bitcoind | bitcoin-cli)
    case "${BITCOIN_NETWORK:-mainnet}" in
    regtest) chain=regtest section=regtest ;;
    testnet) chain=testnet section=test ;;
    signet) chain=signet section=signet ;;
    *) chain=main section=main ;;
    esac
    {
        [ "$chain" = main ] || echo "$chain=1"
        echo "[$section]"
        echo "printtoconsole=1"
        echo "rpcallowip=::/0"
        printf '%s\n' "${BITCOIN_EXTRA_ARGS:-}"
    } >/data/bitcoin.conf
    chown -R bitcoin:bitcoin /data
    # bitcoind finds its data directory, /data, through ~/.bitcoin.
    export HOME=/home/bitcoin
    exec setpriv --reuid=bitcoin --regid=bitcoin --init-groups "$@"
    ;;
esac
exec "$@"

# Bitcoin Core for the container tests, started the way BTCPay Server's bitcoin image starts it:
# settings only through BITCOIN_NETWORK and BITCOIN_EXTRA_ARGS, written to /data/bitcoin.conf at
# every start, the daemon running as the user bitcoin (uid 999) on /data. The binaries are the
# ones scripts/bitcoind.sh builds (they need only libc and libstdc++).
#
#   docker build --build-arg BASE_IMAGE=... -f bitcoind.Dockerfile CONTEXT
#
# where CONTEXT holds bitcoind, bitcoin-cli and bitcoind-entrypoint.sh.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN groupadd --gid 999 bitcoin \
 && useradd --uid 999 --gid bitcoin --create-home --shell /usr/sbin/nologin bitcoin \
 && install -d -o bitcoin -g bitcoin /data \
 && ln -s /data /home/bitcoin/.bitcoin
COPY bitcoind bitcoin-cli /usr/local/bin/
COPY bitcoind-entrypoint.sh /entrypoint.sh
VOLUME ["/data"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["bitcoind"]

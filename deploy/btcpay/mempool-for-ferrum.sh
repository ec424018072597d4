#!/bin/sh
# Writes a copy of btcpayserver-docker's opt-add-mempool fragment that works with Ferrum: the
# upstream fragment requires opt-add-electrumx, which would add ElectrumX's `electrumx` service
# next to Ferrum's (the generator then fails). The copy requires opt-add-ferrum.custom instead,
# and opt-txindex, which ElectrumX's fragment used to pull in and mempool's backend needs.
#
#   mempool-for-ferrum.sh < opt-add-mempool.yml > opt-add-mempool-ferrum.custom.yml
set -eu
out=$(sed -e 's/^\([[:space:]]*-[[:space:]]*\)"\{0,1\}opt-add-electrumx"\{0,1\}[[:space:]]*$/\1"opt-add-ferrum.custom"\
\1"opt-txindex"/')
case "$out" in
*'"opt-add-ferrum.custom"'*) printf '%s\n' "$out" ;;
*)
    echo "mempool-for-ferrum.sh: no \"opt-add-electrumx\" under required: in the input; is it opt-add-mempool.yml?" >&2
    exit 1
    ;;
esac

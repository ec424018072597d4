//! The Bitcoin networks Ferrum serves, and what differs between them: names, ports, genesis.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Mainnet,
    Testnet,
    Testnet4,
    Signet,
    Regtest,
}

impl Network {
    pub(crate) const ALL: [Network; 5] =
        [Network::Mainnet, Network::Testnet, Network::Testnet4, Network::Signet, Network::Regtest];

    /// The name Ferrum uses (`--network`), also ElectrumX's `NET` value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// The `chain` field of bitcoind's `getblockchaininfo`.
    pub(crate) fn core_chain(self) -> &'static str {
        match self {
            Network::Mainnet => "main",
            Network::Testnet => "test",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    pub(crate) fn from_core_chain(chain: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.core_chain() == chain)
    }

    /// The sub-directory of bitcoind's data directory that holds this network's files.
    pub(crate) fn datadir_subdir(self) -> &'static str {
        match self {
            Network::Mainnet => "",
            Network::Testnet => "testnet3",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    pub(crate) fn default_rpc_port(self) -> u16 {
        match self {
            Network::Mainnet => 8332,
            Network::Testnet => 18332,
            Network::Testnet4 => 48332,
            Network::Signet => 38332,
            Network::Regtest => 18443,
        }
    }

    pub(crate) fn default_p2p_port(self) -> u16 {
        match self {
            Network::Mainnet => 8333,
            Network::Testnet => 18333,
            Network::Testnet4 => 48333,
            Network::Signet => 38333,
            Network::Regtest => 18444,
        }
    }

    /// Electrum ports (TCP, TLS) that wallets expect on this network, as ElectrumX and the
    /// Electrum client use them: 50001/50002 on mainnet, 51001/51002 on the test networks.
    pub(crate) fn default_electrum_ports(self) -> (u16, u16) {
        match self {
            Network::Mainnet => (50001, 50002),
            _ => (51001, 51002),
        }
    }

    /// Well-known servers peer discovery starts from, as real names (ElectrumX's lists).
    pub(crate) fn peer_seeds(self) -> &'static [&'static str] {
        match self {
            Network::Mainnet => &[
                "electrum.vom-stausee.de s t",
                "electrum.hsmiths.com s t",
                "helicarrier.bauerj.eu s t",
                "electrum.hodlister.co s",
                "electrum3.hodlister.co s",
                "fortress.qtornado.com s443 t",
                "ecdsa.net s110 t",
                "e2.keff.org s t",
                "electrum.jochen-hoenicke.de s50005 t50003",
                "vps5.hsmiths.com s",
                "electrum.emzy.de s",
                "electrum1.cipig.net t10000 s20000",
                "ulrichard.ch s",
                "hodlers.beer s",
                "v7gtzf7nua6hdmb2wtqaqioqmesdb4xrlly4zwr7bvayxv2bpg665pqd.onion t",
                "explorerzydxu5ecjrkwceayqybizmpjjznk5izmitf2modhcusuqlid.onion t110",
            ],
            Network::Testnet => &[
                "testnet.qtornado.com s t",
                "blackie.c3-soft.com s57006 t57005",
                "electrum.blockstream.info t60001 s60002",
                "testnet.aranguren.org s t",
            ],
            Network::Testnet4 => &[
                "blackie.c3-soft.com s57010 t57009",
                "fulcrum.theuplink.net s60002",
                "bitcoin.stagemole.eu s5010 t5000",
                "testnet4.qtornado.com s51012 t51011",
            ],
            Network::Signet | Network::Regtest => &[],
        }
    }

    /// The status page and metrics port.
    pub(crate) fn default_http_port(self) -> u16 {
        match self {
            Network::Mainnet => 50080,
            _ => 51080,
        }
    }

    /// The P2P message start bytes.
    pub(crate) fn magic(self) -> [u8; 4] {
        match self {
            Network::Mainnet => [0xf9, 0xbe, 0xb4, 0xd9],
            Network::Testnet => [0x0b, 0x11, 0x09, 0x07],
            Network::Testnet4 => [0x1c, 0x16, 0x3f, 0x28],
            Network::Signet => [0x0a, 0x03, 0xcf, 0x40],
            Network::Regtest => [0xfa, 0xbf, 0xb5, 0xda],
        }
    }

    /// Genesis block hash in display (RPC) byte order.
    pub(crate) fn genesis_hash_hex(self) -> &'static str {
        match self {
            Network::Mainnet => "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            Network::Testnet => "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
            Network::Testnet4 => "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
            Network::Signet => "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
            Network::Regtest => "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = String;

    /// Accepts Ferrum's names, bitcoind's chain names and ElectrumX's `NET` values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mainnet" | "main" | "bitcoin" => Ok(Network::Mainnet),
            "testnet" | "test" | "testnet3" => Ok(Network::Testnet),
            "testnet4" => Ok(Network::Testnet4),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            other => {
                Err(format!("unknown network {other:?} (expected one of mainnet, testnet, testnet4, signet, regtest)"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>().unwrap(), n);
            assert_eq!(Network::from_core_chain(n.core_chain()), Some(n));
        }
        assert_eq!("BITCOIN".parse::<Network>().unwrap(), Network::Mainnet);
        assert!("litecoin".parse::<Network>().unwrap_err().contains("litecoin"));
    }
}

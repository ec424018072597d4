//! Hash types shared by every stage. Stored in internal (hashing) byte order; shown and parsed
//! in display order (byte-reversed hex), as bitcoind and Electrum clients write them.

use std::fmt;

use sha2::{Digest, Sha256};

/// Appends `bytes` as hex in reverse (display) order: the hot path of every large answer.
// Every index is in bounds by construction: nibbles are below 16 and `i` below 32.
#[allow(clippy::indexing_slicing)]
pub fn push_hex_rev(out: &mut String, bytes: &[u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    for (i, b) in bytes.iter().rev().enumerate() {
        buf[2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    // Only ASCII hex digits were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Parses display-order hex (64 characters).
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes).ok()?;
                bytes.reverse();
                Some($name(bytes))
            }

            /// Display-order hex.
            pub fn to_hex(&self) -> String {
                let mut out = String::with_capacity(64);
                push_hex_rev(&mut out, &self.0);
                out
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
    };
}

hash_type!(
    /// A transaction id.
    Txid
);
hash_type!(
    /// A block hash.
    BlockHash
);
hash_type!(
    /// SHA-256 of an output script: the key wallets subscribe to (`scripthash` in the protocol).
    ScriptHash
);

/// Double SHA-256.
pub fn sha256d(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Sha256::digest(h.finalize()).into()
}

impl ScriptHash {
    pub fn of_script(script: &[u8]) -> ScriptHash {
        ScriptHash(Sha256::digest(script).into())
    }
}

impl BlockHash {
    pub fn of_header(header: &[u8]) -> BlockHash {
        BlockHash(sha256d(&[header]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripthash_display_is_reversed() {
        let script = hex::decode("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").unwrap();
        let sh = ScriptHash::of_script(&script);
        assert_eq!(sh.to_hex(), "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161");
        assert_eq!(ScriptHash::from_hex(&sh.to_hex()), Some(sh));
        assert_eq!(ScriptHash::from_hex("zz"), None);
        assert_eq!(ScriptHash::from_hex(&"00".repeat(33)), None);
    }

    #[test]
    fn hex_of_every_byte_value() {
        let mut bytes = [0u8; 32];
        for start in [0u8, 32, 64, 96, 128, 160, 192, 224] {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = start + i as u8;
            }
            let mut reversed = bytes;
            reversed.reverse();
            let mut out = String::from("x");
            push_hex_rev(&mut out, &bytes);
            assert_eq!(out, format!("x{}", hex::encode(reversed)));
        }
    }
}

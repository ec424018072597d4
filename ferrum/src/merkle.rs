//! Merkle trees as Bitcoin builds them (an odd node is paired with itself): transaction
//! branches for `get_merkle` and header-chain branches for `cp_height` proofs.

use crate::types::sha256d;

fn parent(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    sha256d(&[a, b])
}

/// The level above: pairs hashed, an odd last node paired with itself.
fn next_level(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .filter_map(|p| {
            let a = p.first()?;
            Some(parent(a, p.get(1).unwrap_or(a)))
        })
        .collect()
}

/// The root of `leaves` (internal byte order); `None` for no leaves.
pub fn root(leaves: &[[u8; 32]]) -> Option<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    if level.is_empty() {
        return None;
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level.first().copied()
}

/// The branch proving leaf `pos`, deepest first, and the root.
pub fn branch(leaves: &[[u8; 32]], pos: usize) -> Option<(Vec<[u8; 32]>, [u8; 32])> {
    if pos >= leaves.len() {
        return None;
    }
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    let mut idx = pos;
    let mut path = Vec::new();
    while level.len() > 1 {
        let sibling = level.get(idx ^ 1).or_else(|| level.get(idx)).copied()?;
        path.push(sibling);
        level = next_level(&level);
        idx >>= 1;
    }
    Some((path, *level.first()?))
}

/// Recomputes the root from a leaf, its position and its branch (what a client does).
pub fn root_from_branch(leaf: [u8; 32], mut pos: usize, branch: &[[u8; 32]]) -> [u8; 32] {
    let mut h = leaf;
    for sibling in branch {
        h = if pos & 1 == 0 { parent(&h, sibling) } else { parent(sibling, &h) };
        pos >>= 1;
    }
    h
}

/// Display-order hex of an internal-order hash.
pub fn hex_display(h: &[u8; 32]) -> String {
    let mut out = String::with_capacity(64);
    crate::types::push_hex_rev(&mut out, h);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<[u8; 32]> {
        (0..n).map(|i| [i; 32]).collect()
    }

    #[test]
    fn every_branch_verifies() {
        for n in 1..=9u8 {
            let l = leaves(n);
            let r = root(&l).unwrap();
            for pos in 0..n as usize {
                let (b, root2) = branch(&l, pos).unwrap();
                assert_eq!(root2, r);
                assert_eq!(root_from_branch(l[pos], pos, &b), r, "n={n} pos={pos}");
            }
            assert!(branch(&l, n as usize).is_none());
        }
        assert_eq!(root(&[]), None);
        assert_eq!(root(&[[7; 32]]), Some([7; 32]));
    }
}

//! HMAC-SHA256 (RFC 2104), for the keyed hashes that stand in for a person: pseudonyms
//! ([`crate::privacy`]) and minimised fields ([`crate::minimise`]). A keyed hash, unlike a plain
//! one, cannot be recomputed from a guessed email or user key without the key.

use sha2::{Digest as _, Sha256};

/// `{prefix}` and the first 16 bytes, hex, of HMAC-SHA256(`key`, `value`).
pub(crate) fn keyed_hash(prefix: &str, key: &[u8], value: &str) -> String {
    let mac = hmac_sha256(key, value.as_bytes());
    let hex: String = mac[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(data).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_cases() {
        let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // Test case 2: a short key.
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block, hashed first.
        assert_eq!(
            hex(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(keyed_hash("x:", b"Jefe", "what do ya want for nothing?"), "x:5bdcc146bf60754e6a042426089575c7");
    }
}

//! [`KeyIndex`]: finds which of a fixed list of attribute keys a key is, comparing only the
//! keys of its length — a key is read per attribute of every span, so no hashing and no scan
//! of the whole list.

/// A fixed list of keys, looked up by their spelling.
///
/// ```text
/// let index = KeyIndex::new(["session.id", "user.id"]);
/// assert_eq!(index.find(b"user.id"), Some(("user.id", 1)));
/// ```
#[derive(Debug)]
pub(crate) struct KeyIndex {
    /// By length: the keys of that length.
    by_length: Vec<Vec<Known>>,
}

/// A key of the list, with its first and last eight bytes as numbers: two integer compares
/// tell keys of one length apart (and prove a key of up to 16 bytes equal) without a `memcmp`
/// call per candidate.
#[derive(Debug)]
struct Known {
    key: &'static str,
    position: usize,
    ends: Option<(u64, u64)>,
}

/// The first and last eight bytes of a key of at least eight bytes.
fn ends(key: &[u8]) -> Option<(u64, u64)> {
    let head = key.first_chunk::<8>()?;
    let tail = key.last_chunk::<8>()?;
    Some((u64::from_ne_bytes(*head), u64::from_ne_bytes(*tail)))
}

/// Whether two texts of one length are equal in their whole eight-byte words (the last
/// partial word is covered by the ends), compared as numbers: a `memcmp` call costs more than
/// a key's few words.
fn same_words(known: &str, key: &[u8]) -> bool {
    let word = |chunk: &[u8]| chunk.try_into().map_or(0, u64::from_ne_bytes);
    known.as_bytes().chunks_exact(8).zip(key.chunks_exact(8)).all(|(a, b)| word(a) == word(b))
}

impl KeyIndex {
    pub(crate) fn new(keys: impl IntoIterator<Item = &'static str>) -> Self {
        let mut by_length: Vec<Vec<Known>> = Vec::new();
        for (position, key) in keys.into_iter().enumerate() {
            if by_length.len() <= key.len() {
                by_length.resize_with(key.len() + 1, Vec::new);
            }
            by_length[key.len()].push(Known { key, position, ends: ends(key.as_bytes()) });
        }
        Self { by_length }
    }

    /// The key spelled `key`, and its position in the list.
    pub(crate) fn find(&self, key: &[u8]) -> Option<(&'static str, usize)> {
        let candidates = self.by_length.get(key.len())?;
        let found = match ends(key) {
            // The ends cover a key of up to 16 bytes; a longer one compares its middle too.
            Some(key_ends) => candidates
                .iter()
                .find(|known| known.ends == Some(key_ends) && (key.len() <= 16 || same_words(known.key, key))),
            None => candidates.iter().find(|known| known.key.as_bytes() == key),
        };
        found.map(|known| (known.key, known.position))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;

    #[test]
    fn finds_keys_by_spelling_and_position() {
        let index = KeyIndex::new([
            "session.id",
            "user.id",
            "user.hash",
            "error.type",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.xxxxx_tokens",
        ]);
        assert_eq!(index.find(b"user.id"), Some(("user.id", 1)));
        assert_eq!(index.find(b"error.type"), Some(("error.type", 3)));
        assert_eq!(index.find(b"gen_ai.usage.input_tokens"), Some(("gen_ai.usage.input_tokens", 4)));
        assert_eq!(index.find(b"gen_ai.usage.xxxxx_tokens"), Some(("gen_ai.usage.xxxxx_tokens", 5)));
        // Same length, same first and last eight bytes, another middle.
        assert_eq!(index.find(b"gen_ai.usage.yyyyy_tokens"), None);
        assert_eq!(index.find(b"error.typf"), None);
        assert_eq!(index.find(b"user.idx"), None);
        assert_eq!(index.find(b"user.ix"), None);
        assert_eq!(index.find(b""), None);
        assert_eq!(index.find(&[b'x'; 300]), None);
    }
}

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
    /// By length: the keys of that length and their positions in the list.
    by_length: Vec<Vec<(&'static str, usize)>>,
}

impl KeyIndex {
    pub(crate) fn new(keys: impl IntoIterator<Item = &'static str>) -> Self {
        let mut by_length: Vec<Vec<(&'static str, usize)>> = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            if by_length.len() <= key.len() {
                by_length.resize_with(key.len() + 1, Vec::new);
            }
            by_length[key.len()].push((key, i));
        }
        Self { by_length }
    }

    /// The key spelled `key`, and its position in the list.
    pub(crate) fn find(&self, key: &[u8]) -> Option<(&'static str, usize)> {
        self.by_length.get(key.len())?.iter().find(|(known, _)| known.as_bytes() == key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;

    #[test]
    fn finds_keys_by_spelling_and_position() {
        let index = KeyIndex::new(["session.id", "user.id", "user.hash", "error.type"]);
        assert_eq!(index.find(b"user.id"), Some(("user.id", 1)));
        assert_eq!(index.find(b"error.type"), Some(("error.type", 3)));
        assert_eq!(index.find(b"user.idx"), None);
        assert_eq!(index.find(b""), None);
        assert_eq!(index.find(&[b'x'; 300]), None);
    }
}

//! Keys and values. Keys are built big-endian so sled's byte order is the
//! natural order (ids, timestamps). Values are one version byte followed by
//! MessagePack with field names, so a record can grow fields (`#[serde(default)]`)
//! and an old version can be upgraded on read. A record stored by the million
//! (a message) may keep a compact form of its own instead
//! ([`Record::encode_body`]); the version byte still tells the forms apart.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Tree;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value in tree `{tree}`")]
    Empty { tree: &'static str },
    #[error(
        "record in tree `{tree}` has version {found}, this twin reads up to {supported}; upgrade twin"
    )]
    UnknownVersion {
        tree: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("record in tree `{tree}` cannot be decoded: {source}")]
    Decode {
        tree: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
    #[error("record in tree `{tree}` cannot be decoded: {detail}")]
    Malformed { tree: &'static str, detail: String },
    #[error("record for tree `{tree}` cannot be encoded: {source}")]
    Encode {
        tree: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
}

/// A value stored in one tree, with a schema version.
pub trait Record: Serialize + DeserializeOwned {
    const TREE: Tree;
    /// Bump when the shape changes in a way `#[serde(default)]` cannot absorb,
    /// and teach [`Record::upgrade`] to read the old version.
    const VERSION: u8 = 1;

    /// Write the value (after the version byte): MessagePack with field names
    /// unless the record keeps a form of its own.
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        rmp_serde::encode::write_named(out, self).map_err(|source| CodecError::Encode {
            tree: Self::TREE.name(),
            source,
        })
    }

    /// Read a value of the current version (the bytes after the version byte).
    fn decode_body(body: &[u8]) -> Result<Self, CodecError> {
        rmp_serde::from_slice(body).map_err(|source| CodecError::Decode {
            tree: Self::TREE.name(),
            source,
        })
    }

    /// Read a value written with an older `version`.
    fn upgrade(version: u8, _body: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::UnknownVersion {
            tree: Self::TREE.name(),
            found: version,
            supported: Self::VERSION,
        })
    }
}

pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// [`encode`], appending to `out`.
pub fn encode_into<T: Record>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(T::VERSION);
    value.encode_body(out)
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, CodecError> {
    let tree = T::TREE.name();
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty { tree })?;
    if version == T::VERSION {
        T::decode_body(body)
    } else {
        T::upgrade(version, body)
    }
}

/// Builds an order-preserving key: integers big-endian, strings 0-terminated
/// (a 0 byte inside is escaped as 0x00 0xFF) so prefixes sort before extensions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new() -> Key {
        Key(Vec::new())
    }

    pub fn u64(mut self, v: u64) -> Key {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Signed values keep their order (the sign bit is flipped).
    pub fn i64(self, v: i64) -> Key {
        self.u64((v as u64) ^ (1 << 63))
    }

    pub fn str(mut self, s: &str) -> Key {
        for &b in s.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.push(0);
        self
    }

    pub fn bytes(mut self, b: &[u8]) -> Key {
        self.0.extend_from_slice(b);
        self
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
    }
    impl Record for V1 {
        const TREE: Tree = Tree::Profile;
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        #[serde(default)]
        b: String,
    }
    impl Record for V2 {
        const TREE: Tree = Tree::Profile;
        const VERSION: u8 = 2;
        fn upgrade(version: u8, body: &[u8]) -> Result<Self, CodecError> {
            assert_eq!(version, 1);
            let old: V1 = rmp_serde::from_slice(body).unwrap();
            Ok(V2 {
                a: old.a,
                b: "upgraded".into(),
            })
        }
    }

    #[test]
    fn values_round_trip_with_version_byte() {
        let bytes = encode(&V1 { a: 7 }).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(decode::<V1>(&bytes).unwrap(), V1 { a: 7 });
    }

    #[test]
    fn old_versions_are_upgraded_on_read() {
        let bytes = encode(&V1 { a: 7 }).unwrap();
        assert_eq!(
            decode::<V2>(&bytes).unwrap(),
            V2 {
                a: 7,
                b: "upgraded".into()
            }
        );
    }

    #[test]
    fn newer_versions_are_refused_clearly() {
        let bytes = encode(&V2 {
            a: 1,
            b: String::new(),
        })
        .unwrap();
        let err = decode::<V1>(&bytes).unwrap_err();
        assert!(err.to_string().contains("upgrade twin"), "{err}");
    }

    #[test]
    fn keys_sort_like_their_parts() {
        let k = |n: u64, s: &str| Key::new().u64(n).str(s).into_vec();
        assert!(k(1, "z") < k(2, "a"));
        assert!(k(256, "a") > k(255, "zz"));
        assert!(k(1, "ab") < k(1, "abc"));
        assert!(Key::new().i64(-5).into_vec() < Key::new().i64(3).into_vec());
        assert_ne!(
            Key::new().str("a\0b").into_vec(),
            Key::new().str("a").str("b").into_vec()
        );
    }
}

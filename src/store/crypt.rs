//! Encryption at rest (opt-in): see `docs/privacy.md` for the whole design.
//!
//! - A passphrase goes through Argon2id (salt and parameters stored in the
//!   store's `meta` tree) to a key-encryption key, which unwraps a random
//!   32-byte data key. `twin rekey` re-wraps the data key; nothing else changes.
//! - Every value of every data tree is sealed with XChaCha20-Poly1305 (random
//!   nonce; the tree and the stored key are authenticated with it).
//! - Every key is replaced by a keyed, invertible, prefix-preserving transform
//!   (bit i is flipped by an AES-CMAC PRF of bits 0..i, as in Crypto-PAn): names,
//!   numbers, ids and times in keys are gone, while prefix scans still work.
//!   The store sorts scan results by the real key, so callers see no difference.
//! - [`Crypt::seal`] / [`Crypt::open`] are what `Store::seal` / `Store::open_sealed`
//!   use for files kept beside the store.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aes::Aes256;
use aes::cipher::BlockEncrypt;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

/// The `meta` key that holds the [`Header`] of an encrypted store.
pub const HEADER_KEY: &[u8] = b"crypt";
/// First byte of a sealed value or file.
const SEALED_V1: u8 = 0xE1;
const NONCE: usize = 24;
/// Magic at the start of a sealed file (so a plain file is told apart).
pub const FILE_MAGIC: &[u8; 8] = b"twinseal";

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("wrong passphrase for the encrypted store {path}; nothing was changed — try again")]
    WrongPassphrase { path: String },
    #[error(
        "the store {path} is encrypted: give its passphrase (on a terminal twin asks for it; in --batch use --passphrase-file PATH, --passphrase-fd N or TWIN_PASSPHRASE_FD)"
    )]
    Locked { path: String },
    #[error("sealed data in {what} cannot be opened: it was changed or belongs to another store")]
    Tampered { what: String },
    #[error("the passphrase is empty; choose one of at least 8 characters")]
    EmptyPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("the encryption header is damaged ({0}); restore a backup of the store")]
    Header(String),
}

/// Argon2id cost parameters, stored with the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option (64 MiB, 3 passes).
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// What the `meta` tree holds for an encrypted store: enough to unwrap the data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub version: u8,
    pub kdf: KdfParams,
    pub salt: [u8; 16],
    /// nonce (24) + the data key sealed with the key-encryption key (32 + 16).
    pub wrapped: Vec<u8>,
}

/// A passphrase; zeroed when dropped.
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    pub fn new(s: impl Into<Vec<u8>>) -> Result<Passphrase, CryptError> {
        let mut v: Vec<u8> = s.into();
        while matches!(v.last(), Some(b'\n' | b'\r')) {
            v.pop();
        }
        if v.is_empty() {
            return Err(CryptError::EmptyPassphrase);
        }
        Ok(Passphrase(v))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

fn wipe(b: &mut [u8]) {
    for x in b.iter_mut() {
        // Volatile so the compiler keeps the writes.
        unsafe { std::ptr::write_volatile(x, 0) };
    }
}

pub fn random<const N: usize>() -> Result<[u8; N], CryptError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| CryptError::Random(e.to_string()))?;
    Ok(b)
}

fn kek(pass: &Passphrase, salt: &[u8; 16], p: KdfParams) -> Result<[u8; 32], CryptError> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| CryptError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(pass.bytes(), salt, &mut out)
        .map_err(|e| CryptError::Kdf(e.to_string()))?;
    Ok(out)
}

const WRAP_AAD: &[u8] = b"twin data key v1";

/// A new header that wraps `data_key` under `pass`.
pub fn wrap(data_key: &[u8; 32], pass: &Passphrase, kdf: KdfParams) -> Result<Header, CryptError> {
    let salt = random::<16>()?;
    let mut k = kek(pass, &salt, kdf)?;
    let aead = XChaCha20Poly1305::new((&k).into());
    wipe(&mut k);
    let nonce = random::<NONCE>()?;
    let ct = aead
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: data_key,
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| CryptError::Kdf("wrapping failed".into()))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&ct);
    Ok(Header {
        version: 1,
        kdf,
        salt,
        wrapped,
    })
}

/// The data key inside `header`, or [`CryptError::WrongPassphrase`].
pub fn unwrap(header: &Header, pass: &Passphrase, path: &str) -> Result<[u8; 32], CryptError> {
    if header.version != 1 || header.wrapped.len() != NONCE + 32 + 16 {
        return Err(CryptError::Header(format!(
            "version {}, {} wrapped bytes",
            header.version,
            header.wrapped.len()
        )));
    }
    let mut k = kek(pass, &header.salt, header.kdf)?;
    let aead = XChaCha20Poly1305::new((&k).into());
    wipe(&mut k);
    let (nonce, ct) = header.wrapped.split_at(NONCE);
    let mut dk = aead
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| CryptError::WrongPassphrase { path: path.into() })?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&dk);
    wipe(&mut dk);
    Ok(out)
}

/// The unlocked store's keys.
pub struct Crypt {
    values: XChaCha20Poly1305,
    keys: Aes256,
    k1: [u8; 16],
    k2: [u8; 16],
}

fn subkey(data_key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    use blake2::digest::Mac;
    let mut m = <blake2::Blake2bMac<blake2::digest::consts::U32> as Mac>::new_from_slice(data_key)
        .expect("32-byte key fits BLAKE2b");
    m.update(label);
    m.finalize().into_bytes().into()
}

fn dbl(b: [u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(b);
    let r = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
    r.to_be_bytes()
}

impl Crypt {
    pub fn new(data_key: &[u8; 32]) -> Crypt {
        let mut vk = subkey(data_key, b"twin values v1");
        let mut kk = subkey(data_key, b"twin keys v1");
        let values = XChaCha20Poly1305::new((&vk).into());
        let keys = Aes256::new((&kk).into());
        wipe(&mut vk);
        wipe(&mut kk);
        let mut l = aes::Block::default();
        keys.encrypt_block(&mut l);
        let k1 = dbl(l.into());
        let k2 = dbl(k1);
        Crypt {
            values,
            keys,
            k1,
            k2,
        }
    }

    fn aes(&self, b: [u8; 16]) -> [u8; 16] {
        let mut blk = aes::Block::from(b);
        self.keys.encrypt_block(&mut blk);
        blk.into()
    }

    /// Transform a key (`encrypt`) or undo it: bit i of the output is bit i of
    /// the input XOR the top bit of CMAC(bits 0..i of the plain key).
    fn transform(&self, input: &[u8], encrypt: bool) -> Vec<u8> {
        let mut out = vec![0u8; input.len()];
        let plain_bit = |plain: &[u8], i: usize| (plain[i / 8] >> (7 - i % 8)) & 1;
        // CBC state over the complete 128-bit blocks before the current one.
        let mut chain = [0u8; 16];
        let mut chain_blocks = 0usize;
        let nbits = input.len() * 8;
        for i in 0..nbits {
            let plain: &[u8] = if encrypt { input } else { &out };
            let full = i / 128;
            let rem = i % 128;
            let (prev, last) = if rem == 0 && i > 0 {
                // Exactly `full` complete blocks: the last one ends the message.
                while chain_blocks + 1 < full {
                    chain = self.chain_block(chain, &plain[chain_blocks * 16..][..16]);
                    chain_blocks += 1;
                }
                let mut last = [0u8; 16];
                last.copy_from_slice(&plain[(full - 1) * 16..][..16]);
                (chain, xor(last, self.k1))
            } else {
                while chain_blocks < full {
                    chain = self.chain_block(chain, &plain[chain_blocks * 16..][..16]);
                    chain_blocks += 1;
                }
                let mut last = [0u8; 16];
                let start = full * 128;
                for j in 0..rem {
                    if plain_bit(plain, start + j) == 1 {
                        last[j / 8] |= 1 << (7 - j % 8);
                    }
                }
                last[rem / 8] |= 1 << (7 - rem % 8);
                (chain, xor(last, self.k2))
            };
            let t = self.aes(xor(prev, last));
            let flip = t[0] >> 7;
            let bit = ((input[i / 8] >> (7 - i % 8)) & 1) ^ flip;
            out[i / 8] |= bit << (7 - i % 8);
        }
        out
    }

    fn chain_block(&self, chain: [u8; 16], block: &[u8]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(block);
        self.aes(xor(chain, b))
    }

    /// The stored form of `key` (prefix-preserving: the stored form of a
    /// prefix is a prefix of the stored form).
    pub fn hide_key(&self, key: &[u8]) -> Vec<u8> {
        self.transform(key, true)
    }

    /// The key back from its stored form.
    pub fn reveal_key(&self, stored: &[u8]) -> Vec<u8> {
        self.transform(stored, false)
    }

    /// Seal `plain`; `context` (the tree and stored key) is authenticated with it.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptError> {
        let nonce = random::<NONCE>()?;
        let ct = self
            .values
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| CryptError::Tampered {
                what: "sealing".into(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>, CryptError> {
        let tampered = || CryptError::Tampered { what: what.into() };
        if sealed.len() < 1 + NONCE + 16 || sealed[0] != SEALED_V1 {
            return Err(tampered());
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE);
        self.values
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map_err(|_| tampered())
    }
}

fn xor(a: [u8; 16], b: [u8; 16]) -> [u8; 16] {
    let mut o = [0u8; 16];
    for i in 0..16 {
        o[i] = a[i] ^ b[i];
    }
    o
}

/// Where passphrases come from in this process: the front-end installs a
/// source (a terminal prompt, a file, a descriptor) and [`super::Store::open`]
/// asks it only when the store it opens is encrypted.
pub type PassphraseSource = Box<dyn Fn() -> Result<Passphrase, String> + Send + Sync>;

struct Unlock {
    source: Option<PassphraseSource>,
    /// Data keys already unwrapped in this process, by salt (Argon2 runs once).
    keys: HashMap<[u8; 16], [u8; 32]>,
}

fn unlock() -> &'static Mutex<Unlock> {
    static U: OnceLock<Mutex<Unlock>> = OnceLock::new();
    U.get_or_init(|| {
        Mutex::new(Unlock {
            source: None,
            keys: HashMap::new(),
        })
    })
}

/// Install where this process gets a passphrase from.
pub fn set_passphrase_source(source: PassphraseSource) {
    unlock().lock().expect("unlock lock").source = Some(source);
}

/// Ask the installed source for a passphrase (`None` when none is installed).
pub fn ask_passphrase() -> Option<Result<Passphrase, String>> {
    let u = unlock().lock().expect("unlock lock");
    u.source.as_ref().map(|s| s())
}

/// The data key for `header`: from this process's cache, else from `given`,
/// else from the installed passphrase source.
pub(crate) fn data_key(
    header: &Header,
    given: Option<&Passphrase>,
    path: &str,
) -> Result<[u8; 32], super::StoreError> {
    if given.is_none()
        && let Some(k) = unlock().lock().expect("unlock lock").keys.get(&header.salt)
    {
        return Ok(*k);
    }
    let asked;
    let pass = match given {
        Some(p) => p,
        None => {
            asked = match ask_passphrase() {
                Some(Ok(p)) => p,
                Some(Err(e)) => return Err(super::StoreError::Aborted(e)),
                None => return Err(CryptError::Locked { path: path.into() }.into()),
            };
            &asked
        }
    };
    let dk = unwrap(header, pass, path)?;
    unlock()
        .lock()
        .expect("unlock lock")
        .keys
        .insert(header.salt, dk);
    Ok(dk)
}

/// Open a sealed file (`twinseal` header) with the data key of any store this
/// process has unlocked: for code that loads such a file by path without the
/// store at hand (llama.cpp loading an adapter). A plain file comes back as it is.
pub fn open_file_any(bytes: &[u8]) -> Result<Vec<u8>, CryptError> {
    if !bytes.starts_with(FILE_MAGIC) {
        return Ok(bytes.to_vec());
    }
    let keys: Vec<[u8; 32]> = unlock()
        .lock()
        .expect("unlock lock")
        .keys
        .values()
        .copied()
        .collect();
    for k in &keys {
        if let Ok(plain) = Crypt::new(k).open(FILE_MAGIC, &bytes[FILE_MAGIC.len()..], "a file") {
            return Ok(plain);
        }
    }
    Err(CryptError::Tampered {
        what: if keys.is_empty() {
            "a sealed file: open its encrypted store first (give the passphrase)".into()
        } else {
            "a sealed file of another store".into()
        },
    })
}

/// Forget cached data keys (after a rekey, so the old passphrase stops working here too).
pub(crate) fn forget_cached_keys() {
    unlock().lock().expect("unlock lock").keys.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Crypt {
        Crypt::new(&[7u8; 32])
    }

    #[test]
    fn key_transform_is_invertible_and_prefix_preserving() {
        let c = c();
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"aname:alice\0".to_vec(),
            b"aname:alicia\0".to_vec(),
            (0..40u8).collect(),
            (0..33u8).rev().collect(),
            vec![0xFF; 32],
        ];
        for k in &keys {
            let h = c.hide_key(k);
            assert_eq!(h.len(), k.len());
            assert_eq!(&c.reveal_key(&h), k);
            for n in 0..k.len() {
                assert_eq!(c.hide_key(&k[..n]), h[..n].to_vec(), "prefix {n} of {k:?}");
            }
        }
        assert_ne!(c.hide_key(b"aname:alice\0"), b"aname:alice\0".to_vec());
        // Another data key gives another transform.
        assert_ne!(
            Crypt::new(&[8u8; 32]).hide_key(b"aname:alice\0"),
            c.hide_key(b"aname:alice\0")
        );
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let c = c();
        let s = c.seal(b"messages\0k1", b"hello there").unwrap();
        assert!(!s.windows(5).any(|w| w == b"hello"));
        assert_eq!(c.open(b"messages\0k1", &s, "x").unwrap(), b"hello there");
        assert!(c.open(b"messages\0k2", &s, "x").is_err());
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(c.open(b"messages\0k1", &bad, "x").is_err());
    }

    #[test]
    fn wrong_passphrase_is_told_apart() {
        let kdf = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let dk = [3u8; 32];
        let h = wrap(&dk, &Passphrase::new("right horse").unwrap(), kdf).unwrap();
        assert_eq!(
            unwrap(&h, &Passphrase::new("right horse").unwrap(), "s").unwrap(),
            dk
        );
        let e = unwrap(&h, &Passphrase::new("wrong horse").unwrap(), "s").unwrap_err();
        assert!(matches!(e, CryptError::WrongPassphrase { .. }), "{e}");
        assert!(Passphrase::new("\n").is_err());
    }
}

//! obshell's "hybrid encryption" authentication (auth v2), as obshell's server and its
//! SDKs speak it, for the session API.
//!
//! A client reads the exporter's RSA public key (`GET /api/v1/secret`: base64 of the
//! PKCS#1 DER), then sends `X-OCS-Header`: base64 of RSA PKCS#1 v1.5 blocks that hold
//! JSON `{auth, ts, uri, keys}`: the password, the header's expiry (Unix seconds), the
//! request's path and query, and the AES-128 key and IV of an encrypted body. Auth v1
//! (`X-OCS-Auth`) is not served: `/api/v1/info` offers v2 only, which obshell's SDK
//! then selects.
//!
//! Stricter than obshell: the expiry may not lie further ahead than
//! `max_header_lifetime` (obshell trusts any expiry the client picks, so a captured
//! header would work for as long as its author chose), a wrong password answers as a
//! header that does not decrypt (obshell tells them apart, which lets a client check
//! guesses, and a padding oracle's answers, online), and attempts are limited per
//! client ([`ClientKey`]: an IPv4 address, an IPv6 /64), counted before the RSA
//! work, so concurrent attempts cannot all pass the check, with one RSA
//! decryption at a time.
//!
//! PKCS#1 v1.5 decryption on a network path is a padding oracle risk (Bleichenbacher;
//! the Marvin timing attack). Decryption is AWS-LC's (through aws-lc-rs), not the
//! RustCrypto `rsa` crate's (RUSTSEC-2023-0071). Every header that does not decrypt
//! to the expected JSON gets the same answer, after the same work: a block that does
//! not decrypt is replaced by a fixed one and the whole text still goes through the
//! JSON parser. What remains is the library's own timing, which TLS in front of the
//! exporter (`--web.config.file`) takes off the network.

use crate::secret::Secret;
use crate::web::ClientKey;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The request header that carries the encrypted credentials.
pub const HEADER: &str = "x-ocs-header";
/// Longer headers are refused before any decryption: a real one is under 2 KiB
/// (eight 2048-bit blocks); each block allowed is one more RSA decryption a guess
/// can cost.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Failed attempts (and attempts under way) a client may make per [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Clients whose attempts are remembered at most; past it, those whose window has
/// passed go first, then the window with the fewest attempts, one at a time: a
/// client that used up its attempts is the last to be forgotten.
const MAX_TRACKED_CLIENTS: usize = 4096;

/// Why a header was refused, with obshell's error code for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Not base64, not whole blocks, a block that does not decrypt, not the JSON the
    /// protocol defines, or not the password: one answer for all of them.
    Undecryptable,
    /// `uri` is not this request's path and query.
    UriMismatch,
    /// `ts` has passed.
    Expired,
    /// `ts` lies further ahead than `max_header_lifetime`.
    TooFarAhead,
    /// Too many failed attempts from this client address lately.
    TooManyAttempts,
}

impl HeaderError {
    /// obshell's `errCode`.
    pub fn err_code(self) -> &'static str {
        match self {
            HeaderError::Undecryptable => "Security.Authentication.Header.DecryptFailed",
            HeaderError::UriMismatch => "Security.Authentication.Header.UriMismatch",
            HeaderError::Expired => "Security.Authentication.Expired",
            HeaderError::TooFarAhead => "Security.Authentication.Timestamp.Invalid",
            HeaderError::TooManyAttempts => "Security.Authentication.TooManyAttempts",
        }
    }

    /// obshell's old numeric code, which its SDK's retry logic reads: 1 makes it
    /// fetch the key again (the exporter may have restarted with a new one).
    pub fn code(self) -> u16 {
        match self {
            HeaderError::Undecryptable => 1,
            _ => 10008,
        }
    }

    /// What to tell the client; never which part of an undecryptable header failed.
    pub fn message(self) -> &'static str {
        match self {
            HeaderError::Undecryptable => {
                "the X-OCS-Header was refused: it does not decrypt with this exporter's key, or \
                 its password is not passthrough.obshell_auth's; fetch the key again from \
                 /api/v1/secret and check the password"
            }
            HeaderError::UriMismatch => {
                "the X-OCS-Header was made for another request: its uri must be this request's path and query"
            }
            HeaderError::Expired => "the X-OCS-Header has expired: check the client's clock",
            HeaderError::TooFarAhead => {
                "the X-OCS-Header expires further ahead than passthrough.obshell_auth.max_header_lifetime allows: check the client's clock and its lifetime setting"
            }
            HeaderError::TooManyAttempts => {
                "too many failed authentication attempts from this address: wait a minute"
            }
        }
    }
}

/// A verified header: the AES key and IV it carries for the request's body.
#[derive(Debug, Clone)]
pub struct Verified {
    pub body_key: Option<[u8; 32]>,
}

impl Verified {
    /// The request body as sent under this header: base64 of AES-128-CBC with PKCS#7
    /// padding, under the header's key and IV. None when it is not that.
    pub fn open_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::cipher::{
            DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128,
        };
        let keys = self.body_key?;
        let (key, iv) = keys.split_at(16);
        let mut sealed = base64::engine::general_purpose::STANDARD
            .decode(body.trim_ascii())
            .ok()?;
        let key =
            PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_128, key).ok()?).ok()?;
        let iv: [u8; 16] = iv.try_into().ok()?;
        let plain = key
            .decrypt(&mut sealed, DecryptionContext::Iv128(iv.into()))
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The JSON inside a header. obshell's Go server reads the keys case-insensitively;
/// its SDK sends them in lower case.
#[derive(serde::Deserialize)]
struct Plain {
    #[serde(alias = "Auth")]
    auth: String,
    #[serde(alias = "Ts")]
    ts: Timestamp,
    #[serde(alias = "Uri")]
    uri: String,
    #[serde(alias = "Keys", default)]
    keys: Option<String>,
}

/// `ts` as the SDK sends it (a string of digits), or as a number.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Text(String),
    Number(i64),
}

/// The key pair, the password clients must send, and the failure counts.
pub struct ObshellAuth {
    password: Secret,
    key: Pkcs1PrivateDecryptingKey,
    /// The public key as `/api/v1/secret` gives it.
    public_key: String,
    max_lifetime: Duration,
    attempts: Mutex<HashMap<ClientKey, Window>>,
    /// One RSA decryption at a time: a flood of headers costs one core at most. Its
    /// permit goes with the work, so a client that hangs up frees it only when the
    /// decryption ends.
    turn: Arc<tokio::sync::Semaphore>,
}

/// A client's attempts since `since`: failed ones and those under way.
#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    count: u32,
}

impl std::fmt::Debug for ObshellAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObshellAuth")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

pub use crate::config::pem::KeyError;

impl ObshellAuth {
    /// With the key in `pkcs8` (DER), or a new 2048-bit one.
    pub fn new(
        password: Secret,
        pkcs8: Option<&[u8]>,
        max_lifetime: Duration,
    ) -> Result<Self, KeyError> {
        let key = match pkcs8 {
            Some(der) => crate::config::pem::decrypting_key(der)?,
            None => {
                PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?
            }
        };
        let spki =
            AsDer::<PublicKeyX509Der>::as_der(&key.public_key()).map_err(|_| KeyError::NotPkcs8)?;
        let pkcs1 = rsa_public_key_of(spki.as_ref()).ok_or(KeyError::NotPkcs8)?;
        Ok(Self {
            public_key: base64::engine::general_purpose::STANDARD.encode(pkcs1),
            key: Pkcs1PrivateDecryptingKey::new(key).map_err(|_| KeyError::NotPkcs8)?,
            password,
            max_lifetime,
            attempts: Mutex::new(HashMap::new()),
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// The public key, base64 of its PKCS#1 DER, as obshell gives it.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Checks `header` for a request to `uri` (path and query, as received) from
    /// `peer`, at `now`. The attempt is counted first, before it waits for its turn;
    /// the RSA work (slow by design) runs on a blocking thread, one at a time.
    pub async fn verify(
        self: &Arc<Self>,
        header: &str,
        uri: &str,
        peer: Option<IpAddr>,
        now: SystemTime,
    ) -> Result<Verified, HeaderError> {
        let client = peer.map(ClientKey::from);
        if let Some(client) = client {
            self.begin_attempt(client)?;
        }
        let result = match self.turn.clone().acquire_owned().await {
            Err(_) => Err(HeaderError::Undecryptable),
            Ok(turn) => {
                let (auth, header, uri) = (self.clone(), header.to_string(), uri.to_string());
                tokio::task::spawn_blocking(move || {
                    let _turn = turn;
                    auth.check(&header, &uri, now)
                })
                .await
                .unwrap_or(Err(HeaderError::Undecryptable))
            }
        };
        if let (Ok(_), Some(client)) = (&result, client) {
            self.forgive_attempt(client);
        }
        result
    }

    fn check(&self, header: &str, uri: &str, now: SystemTime) -> Result<Verified, HeaderError> {
        let plain = self.decrypt(header).ok_or(HeaderError::Undecryptable)?;
        let password_ok =
            constant_time_eq(plain.auth.as_bytes(), self.password.expose().as_bytes());
        if !password_ok {
            return Err(HeaderError::Undecryptable);
        }
        if plain.uri != uri {
            return Err(HeaderError::UriMismatch);
        }
        let expires = match plain.ts {
            Timestamp::Number(n) => Some(n),
            Timestamp::Text(text) => text.trim().parse::<i64>().ok(),
        }
        .ok_or(HeaderError::Undecryptable)?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        if expires <= now {
            return Err(HeaderError::Expired);
        }
        if expires - now > self.max_lifetime.as_secs() as i64 {
            return Err(HeaderError::TooFarAhead);
        }
        let body_key = plain
            .keys
            .filter(|k| !k.is_empty())
            .map(|k| {
                base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or(HeaderError::Undecryptable)
            })
            .transpose()?;
        Ok(Verified { body_key })
    }

    /// The header's JSON, or None; the same work whichever part fails (see the
    /// module docs).
    fn decrypt(&self, header: &str) -> Option<Plain> {
        if header.len() > MAX_HEADER_BYTES {
            return None;
        }
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .ok()?;
        let block = self.key.key_size_bytes();
        if sealed.is_empty() || sealed.len() % block != 0 {
            return None;
        }
        let mut text = Vec::with_capacity(sealed.len());
        let mut out = vec![0u8; self.key.min_output_size()];
        let mut failed = false;
        for chunk in sealed.chunks(block) {
            match self.key.decrypt(chunk, &mut out) {
                Ok(plain) => text.extend_from_slice(plain),
                Err(_) => {
                    failed = true;
                    text.extend(std::iter::repeat_n(b' ', block - 11));
                }
            }
        }
        let parsed = serde_json::from_slice::<Plain>(&text);
        match (failed, parsed) {
            (false, Ok(plain)) => Some(plain),
            _ => None,
        }
    }

    /// Counts an attempt of `client`, or refuses it when the client has used its
    /// attempts of the window. Counted before any work, so attempts sent at once
    /// cannot all pass the check before the first fails.
    fn begin_attempt(&self, client: ClientKey) -> Result<(), HeaderError> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() >= MAX_TRACKED_CLIENTS && !attempts.contains_key(&client) {
            attempts.retain(|_, w| w.since.elapsed() < FAILURE_WINDOW);
            if attempts.len() >= MAX_TRACKED_CLIENTS {
                // Never everyone at once, and never first those that were refused:
                // only the window with the fewest attempts (the oldest of them) goes.
                let least = attempts
                    .iter()
                    .min_by_key(|(_, w)| (w.count, w.since))
                    .map(|(k, _)| *k);
                if let Some(least) = least {
                    attempts.remove(&least);
                }
            }
        }
        let window = attempts.entry(client).or_insert(Window {
            since: Instant::now(),
            count: 0,
        });
        if window.since.elapsed() >= FAILURE_WINDOW {
            *window = Window {
                since: Instant::now(),
                count: 0,
            };
        }
        if window.count >= MAX_FAILURES {
            return Err(HeaderError::TooManyAttempts);
        }
        window.count += 1;
        Ok(())
    }

    /// A counted attempt succeeded: it does not count against the client.
    fn forgive_attempt(&self, client: ClientKey) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = attempts.get_mut(&client) {
            window.count = window.count.saturating_sub(1);
        }
    }
}

/// The `RSAPublicKey` (PKCS#1) inside a `SubjectPublicKeyInfo`: the content of its
/// BIT STRING, after the unused-bits byte.
fn rsa_public_key_of(spki: &[u8]) -> Option<&[u8]> {
    let (tag, outer, _) = der_element(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, rest) = der_element(outer)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, bits, _) = der_element(rest)?;
    match (tag, bits.split_first()) {
        (0x03, Some((0, key))) => Some(key),
        _ => None,
    }
}

/// One DER element: its tag, its content, and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Compares without returning early at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    crate::web::auth::constant_time_eq(a, b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};

    /// A header as obshell's SDK builds it: the JSON in 53-byte chunks, each sealed
    /// with the public key, all base64.
    pub fn seal(public_key_b64: &str, json: &str) -> String {
        let pkcs1 = base64::engine::general_purpose::STANDARD
            .decode(public_key_b64)
            .unwrap();
        let key =
            Pkcs1PublicEncryptingKey::new(PublicEncryptingKey::from_der(&spki_of(&pkcs1)).unwrap())
                .unwrap();
        let mut sealed = Vec::new();
        for chunk in json.as_bytes().chunks(53) {
            let mut out = vec![0u8; key.ciphertext_size()];
            sealed.extend_from_slice(key.encrypt(chunk, &mut out).unwrap());
        }
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }

    /// The SubjectPublicKeyInfo around an RSA PKCS#1 public key.
    fn spki_of(pkcs1: &[u8]) -> Vec<u8> {
        fn element(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let len = content.len();
            if len < 0x80 {
                out.push(len as u8);
            } else {
                let bytes: Vec<u8> = len
                    .to_be_bytes()
                    .into_iter()
                    .skip_while(|b| *b == 0)
                    .collect();
                out.push(0x80 | bytes.len() as u8);
                out.extend(bytes);
            }
            out.extend_from_slice(content);
            out
        }
        let algorithm = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0u8];
        bits.extend_from_slice(pkcs1);
        let mut content = algorithm.to_vec();
        content.extend(element(0x03, &bits));
        element(0x30, &content)
    }

    fn auth() -> Arc<ObshellAuth> {
        Arc::new(
            ObshellAuth::new(Secret::new("s3cret".into()), None, Duration::from_secs(600)).unwrap(),
        )
    }

    fn header(auth: &ObshellAuth, password: &str, ts: i64, uri: &str) -> String {
        let keys = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        seal(
            auth.public_key(),
            &serde_json::json!({"auth": password, "ts": ts.to_string(), "uri": uri, "keys": keys})
                .to_string(),
        )
    }

    fn now() -> (SystemTime, i64) {
        let now = SystemTime::now();
        (
            now,
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64,
        )
    }

    #[tokio::test]
    async fn the_sdk_s_header_is_accepted_for_its_uri_only() {
        let auth = auth();
        let (now, secs) = now();
        let uri = "/api/v1/tenant/t1/sessions?page=1&size=9223372036854775807";
        let good = header(&auth, "s3cret", secs + 60, uri);
        let verified = auth.verify(&good, uri, None, now).await.unwrap();
        assert_eq!(verified.body_key, Some([7u8; 32]));
        let other = "/api/v1/tenant/t1/sessions/stats";
        assert_eq!(
            auth.verify(&good, other, None, now).await.unwrap_err(),
            HeaderError::UriMismatch
        );
    }

    #[tokio::test]
    async fn each_check_refuses_with_obshell_s_code() {
        let auth = auth();
        let (now, secs) = now();
        let uri = "/api/v1/tenant/t1/sessions";
        for (header, expected) in [
            (
                header(&auth, "wrong", secs + 60, uri),
                HeaderError::Undecryptable,
            ),
            (header(&auth, "s3cret", secs - 1, uri), HeaderError::Expired),
            (
                header(&auth, "s3cret", secs + 601, uri),
                HeaderError::TooFarAhead,
            ),
            ("not base64!".to_string(), HeaderError::Undecryptable),
            (
                base64::engine::general_purpose::STANDARD.encode([1u8; 256]),
                HeaderError::Undecryptable,
            ),
            (
                seal(auth.public_key(), "{\"auth\": \"s3cret\"}"),
                HeaderError::Undecryptable,
            ),
            ("A".repeat(MAX_HEADER_BYTES + 4), HeaderError::Undecryptable),
        ] {
            assert_eq!(
                auth.verify(&header, uri, None, now).await.unwrap_err(),
                expected
            );
        }
        assert_eq!(HeaderError::Undecryptable.code(), 1);
        assert_eq!(HeaderError::Expired.code(), 10008);
    }

    #[tokio::test]
    async fn a_header_for_another_key_is_undecryptable() {
        let (mine, theirs) = (auth(), auth());
        let (now, secs) = now();
        let uri = "/api/v1/tenant/t1/sessions";
        let foreign = header(&theirs, "s3cret", secs + 60, uri);
        assert_eq!(
            mine.verify(&foreign, uri, None, now).await.unwrap_err(),
            HeaderError::Undecryptable
        );
    }

    #[tokio::test]
    async fn failures_are_limited_per_client_address() {
        let auth = auth();
        let (now, secs) = now();
        let uri = "/x";
        let (attacker, other): (IpAddr, IpAddr) =
            ("127.0.0.9".parse().unwrap(), "127.0.0.8".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.verify("AAAA", uri, Some(attacker), now)
                    .await
                    .unwrap_err(),
                HeaderError::Undecryptable
            );
        }
        let good = header(&auth, "s3cret", secs + 60, uri);
        assert_eq!(
            auth.verify(&good, uri, Some(attacker), now)
                .await
                .unwrap_err(),
            HeaderError::TooManyAttempts
        );
        assert!(auth.verify(&good, uri, Some(other), now).await.is_ok());
        // Good headers do not use up the budget.
        for _ in 0..(2 * MAX_FAILURES) {
            assert!(auth.verify(&good, uri, Some(other), now).await.is_ok());
        }
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_per_64() {
        let auth = auth();
        let (now, _) = now();
        for i in 0..MAX_FAILURES {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert_eq!(
                auth.verify("AAAA", "/x", Some(address), now)
                    .await
                    .unwrap_err(),
                HeaderError::Undecryptable
            );
        }
        let fresh: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(
            auth.verify("AAAA", "/x", Some(fresh), now)
                .await
                .unwrap_err(),
            HeaderError::TooManyAttempts,
            "a new address of the same /64 has no new budget"
        );
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(
            auth.verify("AAAA", "/x", Some(elsewhere), now)
                .await
                .unwrap_err(),
            HeaderError::Undecryptable
        );
    }

    #[tokio::test]
    async fn many_clients_never_make_it_forget_everyone() {
        let auth = auth();
        let (now, _) = now();
        let attacker: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            let _ = auth.verify("AAAA", "/x", Some(attacker), now).await;
        }
        // As many other clients as are tracked, one attempt each (counted without
        // the RSA work).
        for i in 0..MAX_TRACKED_CLIENTS as u32 {
            let client = ClientKey::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            auth.begin_attempt(client).unwrap();
        }
        assert!(auth.attempts.lock().unwrap().len() <= MAX_TRACKED_CLIENTS);
        // Windows of one attempt went, one at a time: the attacker, refused, is
        // still counted, and so is a later one.
        assert_eq!(
            auth.verify("AAAA", "/x", Some(attacker), now)
                .await
                .unwrap_err(),
            HeaderError::TooManyAttempts,
            "the refused client is the last to be forgotten"
        );
        let later: IpAddr = "127.0.0.10".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            let _ = auth.verify("AAAA", "/x", Some(later), now).await;
        }
        for i in 0..10u32 {
            let client = ClientKey::from(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)));
            auth.begin_attempt(client).unwrap();
        }
        assert_eq!(
            auth.verify("AAAA", "/x", Some(later), now)
                .await
                .unwrap_err(),
            HeaderError::TooManyAttempts,
            "ten new clients do not wipe the others"
        );
    }

    #[test]
    fn a_body_under_the_header_s_key_is_opened() {
        use aws_lc_rs::cipher::{
            EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey, AES_128,
        };
        let (key, iv) = ([3u8; 16], [5u8; 16]);
        let sealing =
            PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_128, &key).unwrap())
                .unwrap();
        let mut body = br#"{"session_ids": [7, 8]}"#.to_vec();
        sealing
            .less_safe_encrypt(&mut body, EncryptionContext::Iv128(iv.into()))
            .unwrap();
        let sent = base64::engine::general_purpose::STANDARD.encode(&body);
        let mut keys = [0u8; 32];
        keys[..16].copy_from_slice(&key);
        keys[16..].copy_from_slice(&iv);
        let verified = Verified {
            body_key: Some(keys),
        };
        assert_eq!(
            verified.open_body(sent.as_bytes()).unwrap(),
            br#"{"session_ids": [7, 8]}"#
        );
        assert_eq!(verified.open_body(b"not base64"), None);
        assert_eq!(Verified { body_key: None }.open_body(sent.as_bytes()), None);
    }

    #[test]
    fn the_public_key_is_pkcs1_der() {
        let auth = auth();
        let der = base64::engine::general_purpose::STANDARD
            .decode(auth.public_key())
            .unwrap();
        // SEQUENCE { INTEGER modulus, INTEGER exponent }
        let (tag, content, rest) = der_element(&der).unwrap();
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (tag, modulus, rest) = der_element(content).unwrap();
        assert_eq!(tag, 0x02);
        assert!(modulus.len() >= 256);
        let (tag, exponent, _) = der_element(rest).unwrap();
        assert_eq!((tag, exponent), (0x02, &[1u8, 0, 1][..]));
    }
}

//! The `member_bindings` table (migrations 14 and 15): a member's auto-debit binding to a wallet
//! (docs/protocol.md §18), and the sealing of its tokens. The access and refresh tokens are
//! stored only sealed with AES-256-GCM under the key of `[members] token_key_file`, with the
//! member id, the token's kind and the key id as associated data, so a sealed token moved to
//! another member's row, or from the refresh to the access column, does not open.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Row, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::query::{self, Cells, Table};
use super::{Journal, JournalError};
use crate::clock::to_journal;

/// A binding's state: consulted and waiting for the customer, exchanging (the auth code
/// held sealed while `applyToken` is asked for tokens), bound (tokens held), failed (the
/// wallet refused the auth code: bind again), or revoked (tokens erased; the row stays as
/// the record of the binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    AwaitingApproval,
    Exchanging,
    Bound,
    Failed,
    Revoked,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::AwaitingApproval => "awaiting_approval",
            BindingState::Exchanging => "exchanging",
            BindingState::Bound => "bound",
            BindingState::Failed => "failed",
            BindingState::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Option<BindingState> {
        [
            BindingState::AwaitingApproval,
            BindingState::Exchanging,
            BindingState::Bound,
            BindingState::Failed,
            BindingState::Revoked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A token as the journal keeps it: sealed, with the key id that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// Nonce, then ciphertext and tag.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(key {}, {} bytes)", self.key_id, self.blob.len())
    }
}

/// A token in the clear: kept in zeroed memory, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(text.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which token a sealed blob holds; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
    /// The wallet's auth code, held while it is exchanged (migration 15).
    AuthCode,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::AuthCode => "auth_code",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "token sealed under key {0}, which is neither token_key_file nor one of token_key_previous_files"
    )]
    UnknownKey(String),
    #[error("a sealed token did not open: it belongs to another member or was altered")]
    Tampered,
    #[error("no random bytes for a nonce")]
    Random,
}

/// One 32-byte token key and its id (the first 8 bytes of its SHA-256, in hex: it names the
/// key without telling anything of it).
struct TokenKey {
    id: String,
    key: LessSafeKey,
}

/// The key tokens are sealed with, and the earlier keys they may still be sealed under
/// (docs/operations.md §4.5).
pub struct TokenKeys {
    current: TokenKey,
    previous: Vec<TokenKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenKeys(current {}, {} previous)",
            self.current.id,
            self.previous.len()
        )
    }
}

impl TokenKey {
    fn new(bytes: &[u8]) -> Result<TokenKey, String> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "a token key is 32 bytes (raw, or base64 of them)".to_string())?;
        let digest = Sha256::digest(bytes);
        Ok(TokenKey {
            id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            key: LessSafeKey::new(key),
        })
    }
}

/// Reads a token key file: 32 raw bytes, or their base64 (one line). Refused when group or
/// others may read it, as private keys are (`gateway/keys.rs`).
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "mode {mode:04o} lets others read the token key: chmod 600 (or 400) it, owned by the service user"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?);
    if bytes.len() == 32 {
        return Ok(bytes);
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| "neither 32 raw bytes nor base64 text".to_string())?;
    let decoded = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| "neither 32 raw bytes nor base64 of 32 bytes".to_string())?,
    );
    if decoded.len() != 32 {
        return Err(format!(
            "base64 of {} bytes; a token key is 32 random bytes (head -c 32 /dev/urandom | base64)",
            decoded.len()
        ));
    }
    Ok(decoded)
}

impl TokenKeys {
    /// The current key and the earlier ones, each 32 bytes.
    pub fn new(current: &[u8], previous: &[&[u8]]) -> Result<TokenKeys, String> {
        Ok(TokenKeys {
            current: TokenKey::new(current)?,
            previous: previous
                .iter()
                .map(|k| TokenKey::new(k))
                .collect::<Result<_, _>>()?,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key new tokens are sealed under.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    fn aad(member_id: &str, kind: TokenKind, key_id: &str) -> Vec<u8> {
        format!(
            "scanpay member token v1\0{member_id}\0{}\0{key_id}",
            kind.as_str()
        )
        .into_bytes()
    }

    /// Seals `token` for `member_id` under the current key, with a fresh random nonce.
    pub fn seal(
        &self,
        member_id: &str,
        kind: TokenKind,
        token: &Secret,
    ) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = Zeroizing::new(token.expose().as_bytes().to_vec());
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(member_id, kind, &self.current.id)),
                &mut *data,
            )
            .map_err(|_| SealError::Random)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&data);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            blob,
        })
    }

    /// Opens a token sealed for `member_id` under the current or an earlier key.
    pub fn open(
        &self,
        member_id: &str,
        kind: TokenKind,
        sealed: &Sealed,
    ) -> Result<Secret, SealError> {
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN {
            return Err(SealError::Tampered);
        }
        let (nonce, data) = sealed.blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Tampered)?;
        let mut data = Zeroizing::new(data.to_vec());
        let plain = key
            .key
            .open_in_place(
                nonce,
                Aad::from(Self::aad(member_id, kind, &key.id)),
                &mut data,
            )
            .map_err(|_| SealError::Tampered)?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Tampered)?;
        Ok(Secret::new(text))
    }
}

/// A member's binding as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    pub member_id: String,
    /// The wallet (`customerBelongsTo`, the payment's `paymentMethodType`).
    pub wallet: String,
    pub state: BindingState,
    /// The `authState` the consult was sent with; the approval must come back with it.
    pub auth_state: Option<String>,
    /// The customer's login id as the wallet gave it (masked by the wallet).
    pub login_id: Option<String>,
    pub access_token: Option<Sealed>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<Sealed>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The auth code being exchanged, sealed; only while `exchanging`.
    pub auth_code: Option<Sealed>,
    /// The wallet's code for a refused exchange or refresh.
    pub result_code: Option<String>,
    /// What happened and what to do, for the operator; never a secret.
    pub reason: Option<String>,
    /// Why a person must look (a failed exchange or refresh); `None` once the member binds
    /// again or is revoked.
    pub attention: Option<String>,
}

impl Table for BindingRow {
    const SELECT: &'static str = "SELECT member_id, wallet, state, auth_state, login_id, key_id, \
         access_token, access_expires_at, refresh_token, refresh_expires_at, created_at, \
         updated_at, auth_code, result_code, reason, attention FROM member_bindings";

    fn from_row(r: &Row<'_>) -> Result<BindingRow, JournalError> {
        let member_id: String = r.get(0)?;
        let c = Cells::new(r, "member binding", &member_id);
        let key_id: Option<String> = c.get(5)?;
        let sealed = |column: usize| -> Result<Option<Sealed>, JournalError> {
            Ok(match (c.get::<Option<Vec<u8>>>(column)?, &key_id) {
                (Some(blob), Some(key_id)) => Some(Sealed {
                    key_id: key_id.clone(),
                    blob,
                }),
                _ => None,
            })
        };
        Ok(BindingRow {
            wallet: c.get(1)?,
            state: c.parsed(2, "unknown binding state", BindingState::parse)?,
            auth_state: c.get(3)?,
            login_id: c.get(4)?,
            access_token: sealed(6)?,
            access_expires_at: c.time_or_none(7)?,
            refresh_token: sealed(8)?,
            refresh_expires_at: c.time_or_none(9)?,
            created_at: c.time(10)?,
            updated_at: c.time(11)?,
            auth_code: sealed(12)?,
            result_code: c.get(13)?,
            reason: c.get(14)?,
            attention: c.get(15)?,
            member_id,
        })
    }
}

/// What `applyToken` gave, sealed, for [`Journal::bind_member`] and
/// [`Journal::refresh_member`].
#[derive(Debug, Clone)]
pub struct SealedTokens {
    pub access_token: Sealed,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<Sealed>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub login_id: Option<String>,
}

impl Journal {
    /// The binding of `member_id`, if it ever had one.
    pub fn member_binding(&self, member_id: &str) -> Result<Option<BindingRow>, JournalError> {
        query::row(&self.conn(), "WHERE member_id = ?1", [member_id])
    }

    /// Bound members whose access token expires before `before`, soonest first; not those
    /// whose refresh the wallet refused (noted for a person: the token will not come back).
    pub fn bindings_expiring(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<BindingRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state = 'bound' AND access_expires_at IS NOT NULL AND access_expires_at < ?1 \
             AND attention IS NULL ORDER BY access_expires_at",
            [to_journal(before)],
        )
    }

    /// Bound members whose tokens are sealed under another key than `key_id` (to reseal
    /// after a rotation).
    pub fn bindings_sealed_under_other_keys(
        &self,
        key_id: &str,
    ) -> Result<Vec<BindingRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state = 'bound' AND key_id <> ?1 ORDER BY member_id",
            [key_id],
        )
    }

    /// Records a consult for `member_id`: `awaiting_approval` with `auth_state`. Refused while
    /// the member is bound (the binding is deleted first); an earlier consult or a revoked
    /// binding is replaced.
    pub fn start_binding(
        &self,
        member_id: &str,
        wallet: &str,
        auth_state: &str,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<BindingRow> = query::row(&tx, "WHERE member_id = ?1", [member_id])?;
        match existing.as_ref().map(|b| b.state) {
            Some(BindingState::Bound) => {
                return Err(JournalError::Binding {
                    member: member_id.to_string(),
                    why: "is bound already: DELETE the binding before binding again".into(),
                });
            }
            Some(BindingState::Exchanging) => {
                return Err(JournalError::Binding {
                    member: member_id.to_string(),
                    why: "has an auth code being exchanged: GET the binding until it is bound or failed".into(),
                });
            }
            _ => {}
        }
        let now = to_journal(now);
        query::execute(
            &tx,
            "INSERT INTO member_bindings (member_id, wallet, state, auth_state, created_at, updated_at) \
             VALUES (?1, ?2, 'awaiting_approval', ?3, ?4, ?4) \
             ON CONFLICT (member_id) DO UPDATE SET wallet = ?2, state = 'awaiting_approval', \
             auth_state = ?3, login_id = NULL, key_id = NULL, access_token = NULL, \
             access_expires_at = NULL, refresh_token = NULL, refresh_expires_at = NULL, \
             auth_code = NULL, result_code = NULL, reason = NULL, attention = NULL, \
             updated_at = ?4",
            params![member_id, wallet, auth_state, now],
        )?;
        let row = query::row(&tx, "WHERE member_id = ?1", [member_id])?
            .ok_or_else(|| JournalError::Corrupt(format!("binding {member_id} not written")))?;
        tx.commit()?;
        Ok(row)
    }

    /// `awaiting_approval` → `exchanging` with the auth code sealed, written before
    /// `applyToken` is sent: a crash after the wallet answered leaves the code to retry
    /// (and the wallet to refuse, a code working once), never tokens without a binding.
    pub fn begin_exchange(
        &self,
        member_id: &str,
        auth_code: &Sealed,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.update_binding(
            member_id,
            BindingState::AwaitingApproval,
            "state = 'exchanging', key_id = ?2, auth_code = ?3, result_code = NULL, \
             reason = NULL, attention = NULL, updated_at = ?4",
            params![member_id, auth_code.key_id, auth_code.blob, to_journal(now)],
        )
    }

    /// `exchanging` → `bound` with the sealed tokens; the auth code erased in the same write.
    pub fn bind_member(
        &self,
        member_id: &str,
        tokens: &SealedTokens,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.write_tokens(member_id, tokens, now, BindingState::Exchanging, true)
    }

    /// A bound member's tokens replaced by refreshed ones; a refresh failure noted before is
    /// cleared, the wallet having taken the refresh token.
    pub fn refresh_member(
        &self,
        member_id: &str,
        tokens: &SealedTokens,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.write_tokens(member_id, tokens, now, BindingState::Bound, true)
    }

    /// A bound member's tokens resealed under the current key; what was noted stays.
    pub fn reseal_member(
        &self,
        member_id: &str,
        tokens: &SealedTokens,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.write_tokens(member_id, tokens, now, BindingState::Bound, false)
    }

    /// `exchanging` → `failed`: the wallet refused the auth code. The code is erased; the
    /// wallet's code and what to do are kept, and the binding needs a person.
    pub fn fail_binding(
        &self,
        member_id: &str,
        result_code: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.update_binding(
            member_id,
            BindingState::Exchanging,
            "state = 'failed', auth_state = NULL, key_id = NULL, auth_code = NULL, \
             result_code = ?2, reason = ?3, attention = ?3, updated_at = ?4",
            params![member_id, result_code, reason, to_journal(now)],
        )
    }

    /// A bound member whose refresh the wallet refused: still bound while the access token
    /// lasts, noted for a person.
    pub fn note_refresh_failure(
        &self,
        member_id: &str,
        result_code: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        self.update_binding(
            member_id,
            BindingState::Bound,
            "result_code = ?2, reason = ?3, attention = ?3, updated_at = ?4",
            params![member_id, result_code, reason, to_journal(now)],
        )
    }

    /// Bindings left `exchanging` (an unclear answer, or a crash), oldest first.
    pub fn bindings_exchanging(&self) -> Result<Vec<BindingRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state = 'exchanging' ORDER BY updated_at",
            params![],
        )
    }

    /// Bindings that need a person (a failed exchange or refresh), by member.
    pub fn bindings_needing_attention(&self) -> Result<Vec<BindingRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE attention IS NOT NULL ORDER BY member_id",
            params![],
        )
    }

    /// The binding awaiting approval that was consulted with `auth_state`.
    pub fn binding_awaiting(&self, auth_state: &str) -> Result<Option<BindingRow>, JournalError> {
        query::row(
            &self.conn(),
            "WHERE state = 'awaiting_approval' AND auth_state = ?1",
            [auth_state],
        )
    }

    /// One UPDATE of `member_id`'s row, only in state `from`, in one transaction.
    fn update_binding(
        &self,
        member_id: &str,
        from: BindingState,
        set: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<BindingRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "UPDATE member_bindings SET {set} WHERE member_id = ?1 AND state = '{}'",
            from.as_str()
        );
        if query::execute(&tx, &sql, values)? == 0 {
            return Err(JournalError::Binding {
                member: member_id.to_string(),
                why: format!("is not {}", from.as_str()),
            });
        }
        let row = query::row(&tx, "WHERE member_id = ?1", [member_id])?
            .ok_or_else(|| JournalError::Corrupt(format!("binding {member_id} not written")))?;
        tx.commit()?;
        Ok(row)
    }

    fn write_tokens(
        &self,
        member_id: &str,
        t: &SealedTokens,
        now: DateTime<Utc>,
        from: BindingState,
        clear_notes: bool,
    ) -> Result<BindingRow, JournalError> {
        if t.refresh_token
            .as_ref()
            .is_some_and(|r| r.key_id != t.access_token.key_id)
        {
            return Err(JournalError::Corrupt(
                "the two tokens of a binding are sealed under one key".into(),
            ));
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = query::execute(
            &tx,
            "UPDATE member_bindings SET state = 'bound', auth_state = NULL, \
             login_id = coalesce(?2, login_id), key_id = ?3, access_token = ?4, \
             access_expires_at = ?5, refresh_token = ?6, refresh_expires_at = ?7, updated_at = ?8, \
             auth_code = NULL, \
             result_code = CASE WHEN ?10 THEN NULL ELSE result_code END, \
             reason = CASE WHEN ?10 THEN NULL ELSE reason END, \
             attention = CASE WHEN ?10 THEN NULL ELSE attention END \
             WHERE member_id = ?1 AND state = ?9",
            params![
                member_id,
                t.login_id,
                t.access_token.key_id,
                t.access_token.blob,
                t.access_expires_at.map(to_journal),
                t.refresh_token.as_ref().map(|r| &r.blob),
                t.refresh_expires_at.map(to_journal),
                to_journal(now),
                from.as_str(),
                clear_notes,
            ],
        )?;
        if changed == 0 {
            return Err(JournalError::Binding {
                member: member_id.to_string(),
                why: format!("is not {}", from.as_str()),
            });
        }
        let row = query::row(&tx, "WHERE member_id = ?1", [member_id])?
            .ok_or_else(|| JournalError::Corrupt(format!("binding {member_id} not written")))?;
        tx.commit()?;
        Ok(row)
    }

    /// The binding ended: its tokens erased (secure_delete zeroes the freed pages), the row
    /// kept as `revoked`.
    pub fn revoke_member(
        &self,
        member_id: &str,
        now: DateTime<Utc>,
    ) -> Result<BindingRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = query::execute(
            &tx,
            "UPDATE member_bindings SET state = 'revoked', auth_state = NULL, key_id = NULL, \
             access_token = NULL, access_expires_at = NULL, refresh_token = NULL, \
             refresh_expires_at = NULL, auth_code = NULL, result_code = NULL, reason = NULL, \
             attention = NULL, updated_at = ?2 WHERE member_id = ?1",
            params![member_id, to_journal(now)],
        )?;
        if changed == 0 {
            return Err(JournalError::Binding {
                member: member_id.to_string(),
                why: "has no binding".into(),
            });
        }
        let row = query::row(&tx, "WHERE member_id = ?1", [member_id])?
            .ok_or_else(|| JournalError::Corrupt(format!("binding {member_id} not written")))?;
        tx.commit()?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], &[]).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_member_its_kind_and_a_known_key() {
        let k = keys();
        let token = Secret::new("28100000ACCESS_TOKEN_TEXT");
        let a = k.seal("M1", TokenKind::Access, &token).unwrap();
        let b = k.seal("M1", TokenKind::Access, &token).unwrap();
        assert_ne!(a.blob, b.blob, "a fresh nonce per seal");
        assert!(
            !a.blob
                .windows(token.expose().len())
                .any(|w| w == token.expose().as_bytes())
        );
        assert_eq!(k.open("M1", TokenKind::Access, &a).unwrap(), token);
        assert_eq!(
            k.open("M2", TokenKind::Access, &a),
            Err(SealError::Tampered)
        );
        assert_eq!(
            k.open("M1", TokenKind::Refresh, &a),
            Err(SealError::Tampered)
        );
        let mut altered = a.clone();
        let last = altered.blob.len() - 1;
        altered.blob[last] ^= 1;
        assert_eq!(
            k.open("M1", TokenKind::Access, &altered),
            Err(SealError::Tampered)
        );
        // Rotation: the old key listed as previous opens it; a new seal uses the new key.
        let rotated = TokenKeys::new(&[9u8; 32], &[&[7u8; 32]]).unwrap();
        assert_eq!(rotated.open("M1", TokenKind::Access, &a).unwrap(), token);
        assert_ne!(rotated.current_id(), k.current_id());
        let other = TokenKeys::new(&[9u8; 32], &[]).unwrap();
        assert!(matches!(
            other.open("M1", TokenKind::Access, &a),
            Err(SealError::UnknownKey(_))
        ));
        assert!(TokenKeys::new(&[1u8; 16], &[]).is_err());
    }

    #[test]
    fn key_files_are_refused_when_others_may_read_them_or_not_32_bytes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("member-token.key");
        std::fs::write(&path, STANDARD.encode([3u8; 32]) + "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_key_file(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(&read_key_file(&path).unwrap()[..], &[3u8; 32]);
        std::fs::write(&path, [5u8; 32]).unwrap();
        assert_eq!(&read_key_file(&path).unwrap()[..], &[5u8; 32]);
        std::fs::write(&path, STANDARD.encode([3u8; 16])).unwrap();
        assert!(read_key_file(&path).unwrap_err().contains("16 bytes"));
    }

    #[test]
    fn a_binding_goes_awaiting_bound_revoked_and_revoking_erases_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let now = Utc::now();
        let k = keys();
        let row = j.start_binding("M1", "ALIPAY_CN", "st1", now).unwrap();
        assert_eq!(row.state, BindingState::AwaitingApproval);
        let tokens = SealedTokens {
            access_token: k
                .seal("M1", TokenKind::Access, &Secret::new("acc"))
                .unwrap(),
            access_expires_at: Some(now + chrono::Duration::hours(1)),
            refresh_token: Some(
                k.seal("M1", TokenKind::Refresh, &Secret::new("ref"))
                    .unwrap(),
            ),
            refresh_expires_at: Some(now + chrono::Duration::days(30)),
            login_id: Some("138****0000".into()),
        };
        // Refresh before a binding: refused, nothing written.
        assert!(j.refresh_member("M1", &tokens, now).is_err());
        // Tokens only for an exchange written first.
        assert!(j.bind_member("M1", &tokens, now).is_err());
        let code = k
            .seal("M1", TokenKind::AuthCode, &Secret::new("code1"))
            .unwrap();
        let exchanging = j.begin_exchange("M1", &code, now).unwrap();
        assert_eq!(exchanging.state, BindingState::Exchanging);
        assert_eq!(exchanging.auth_code.as_ref(), Some(&code));
        assert_eq!(j.bindings_exchanging().unwrap().len(), 1);
        assert!(j.begin_exchange("M1", &code, now).is_err());
        assert!(j.start_binding("M1", "ALIPAY_CN", "st9", now).is_err());
        assert_eq!(
            k.open("M1", TokenKind::AuthCode, &code).unwrap().expose(),
            "code1"
        );
        assert!(k.open("M1", TokenKind::Access, &code).is_err());
        let bound = j.bind_member("M1", &tokens, now).unwrap();
        assert!(bound.auth_code.is_none());
        assert!(j.bindings_exchanging().unwrap().is_empty());
        assert_eq!(bound.state, BindingState::Bound);
        assert_eq!(bound.auth_state, None);
        let opened = k
            .open(
                "M1",
                TokenKind::Access,
                bound.access_token.as_ref().unwrap(),
            )
            .unwrap();
        assert_eq!(opened.expose(), "acc");
        assert!(j.start_binding("M1", "ALIPAY_CN", "st2", now).is_err());
        assert!(j.bind_member("M1", &tokens, now).is_err());
        assert_eq!(
            j.bindings_expiring(now + chrono::Duration::hours(2))
                .unwrap()
                .len(),
            1
        );
        assert!(j.bindings_expiring(now).unwrap().is_empty());
        assert!(
            j.bindings_sealed_under_other_keys(k.current_id())
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            j.bindings_sealed_under_other_keys("0011223344556677")
                .unwrap()
                .len(),
            1
        );
        let revoked = j.revoke_member("M1", now).unwrap();
        assert_eq!(revoked.state, BindingState::Revoked);
        assert!(revoked.access_token.is_none() && revoked.refresh_token.is_none());
        assert!(j.revoke_member("M2", now).is_err());
        // A revoked member may bind again.
        j.start_binding("M1", "ALIPAY_CN", "st3", now).unwrap();
        assert_eq!(
            j.binding_awaiting("st3").unwrap().map(|b| b.member_id),
            Some("M1".to_string())
        );
        assert!(j.binding_awaiting("st1").unwrap().is_none());
    }

    /// Migration 15 rebuilds the table: a binding written under 14 keeps every column.
    #[test]
    fn a_binding_written_before_migration_15_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &crate::journal::schema::MIGRATIONS[..14] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO member_bindings (member_id, wallet, state, key_id, access_token, \
                 access_expires_at, refresh_token, created_at, updated_at) VALUES ('M1', \
                 'ALIPAY_CN', 'bound', 'k1', x'0102', '2027-01-01T00:00:00.000Z', x'0304', \
                 '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z'); \
                 PRAGMA user_version = 14;",
            )
            .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let b = j.member_binding("M1").unwrap().unwrap();
        assert_eq!(b.state, BindingState::Bound);
        assert_eq!(b.access_token.map(|t| t.blob), Some(vec![1, 2]));
        assert_eq!(b.refresh_token.map(|t| t.blob), Some(vec![3, 4]));
        assert!(b.auth_code.is_none() && b.attention.is_none());
        assert_eq!(
            j.bindings_expiring(Utc::now() + chrono::Duration::days(3650))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_refused_exchange_fails_needs_attention_until_bound_again() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let now = Utc::now();
        let k = keys();
        j.start_binding("M1", "ALIPAY_CN", "st1", now).unwrap();
        let code = k
            .seal("M1", TokenKind::AuthCode, &Secret::new("code1"))
            .unwrap();
        j.begin_exchange("M1", &code, now).unwrap();
        let failed = j
            .fail_binding("M1", "INVALID_CODE", "bind the wallet again", now)
            .unwrap();
        assert_eq!(failed.state, BindingState::Failed);
        assert!(failed.auth_code.is_none() && failed.access_token.is_none());
        assert_eq!(failed.result_code.as_deref(), Some("INVALID_CODE"));
        assert_eq!(j.bindings_needing_attention().unwrap().len(), 1);
        // Only an exchange fails.
        assert!(j.fail_binding("M1", "X", "y", now).is_err());
        // The CHECKs hold the invariants whatever the code does.
        let broken = j.conn().execute(
            "UPDATE member_bindings SET state = 'bound' WHERE member_id = 'M1'",
            [],
        );
        assert!(broken.is_err(), "bound without tokens");
        let broken = j.conn().execute(
            "UPDATE member_bindings SET state = 'exchanging' WHERE member_id = 'M1'",
            [],
        );
        assert!(broken.is_err(), "exchanging without a code");
        let again = j.start_binding("M1", "ALIPAY_CN", "st2", now).unwrap();
        assert_eq!(again.attention, None);
        assert!(j.bindings_needing_attention().unwrap().is_empty());
    }
}

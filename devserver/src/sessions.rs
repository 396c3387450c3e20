//! The server-side refresh-token store: opaque tokens grouped in families,
//! with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Each login starts a family. Each successful refresh marks the presented
//! token rotated and issues a new one in the same family (its lifetime
//! starts afresh). Presenting a rotated token again revokes the whole
//! family, unless it happens within the grace window, in which case the
//! family's current token is handed out again.
//!
//! In DPoP mode a family started with a proof is bound to the proof key's
//! thumbprint: refreshing it needs a proof by the same key, and a refresh
//! without one, or with another key's, changes nothing at all (a thief
//! holding the token must not be able to rotate it, nor end the session).

use std::collections::HashMap;

use crate::ids::{random_id, ID_BYTES, REFRESH_TOKEN_BYTES};

/// Prune expired records after this many insertions.
const PRUNE_EVERY: usize = 1024;

/// Lifecycle of one refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    /// The family's current token.
    Active,
    /// Exchanged for a successor at `at_ms`.
    Rotated { at_ms: u64 },
}

#[derive(Debug)]
struct TokenRecord {
    family: String,
    expires_at_ms: u64,
    state: TokenState,
}

#[derive(Debug)]
struct Family {
    user: String,
    revoked: bool,
    /// The family's current (latest) refresh token.
    latest: String,
    /// Keep the family record at least until then (latest refresh-token
    /// expiry, or the expiry of an access token minted for it).
    keep_until_ms: u64,
    /// Thumbprint of the DPoP key the family is bound to.
    jkt: Option<String>,
}

/// The DPoP key a refresh request proves possession of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKey<'a> {
    /// DPoP mode is off: bindings are not checked.
    Unchecked,
    /// DPoP mode is on and the request carries no proof.
    Absent,
    /// The thumbprint of the request's (valid) proof key.
    Jkt(&'a str),
}

/// A refresh token handed out to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Its family id (the `fam` claim of access tokens).
    pub family: String,
    /// The user the family belongs to.
    pub user: String,
    /// Thumbprint of the DPoP key the family is bound to.
    pub jkt: Option<String>,
}

/// A successful refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was rotated; here is its successor.
    Rotated(Issued),
    /// A rotated token came back within the grace window: nothing revoked,
    /// here is the family's current token again.
    GraceReuse(Issued),
}

/// Why a refresh token was refused.
#[derive(Debug)]
pub enum RefreshError {
    /// Not a token this server issued (or forgotten after a reset).
    Invalid,
    /// The token's lifetime is over.
    Expired,
    /// The token's family was revoked (logout or earlier reuse).
    Revoked,
    /// A rotated token was presented again: its family is now revoked.
    ReuseDetected,
    /// The family is DPoP-bound and the request has no proof.
    ProofMissing,
    /// The family is DPoP-bound to another key than the proof's.
    KeyMismatch,
    /// The random source failed.
    Random(getrandom::Error),
}

impl RefreshError {
    /// Human-readable description for error bodies.
    pub fn description(&self) -> &'static str {
        match self {
            RefreshError::Invalid => "Invalid refresh token",
            RefreshError::Expired => "Refresh token has expired",
            RefreshError::Revoked => "Refresh token has been revoked",
            RefreshError::ReuseDetected => {
                "Refresh token reuse detected; the token family has been revoked"
            }
            RefreshError::ProofMissing => {
                "The refresh token is DPoP-bound: a DPoP proof by its key is required"
            }
            RefreshError::KeyMismatch => {
                "The DPoP proof's key is not the key the refresh token is bound to"
            }
            RefreshError::Random(_) => "Could not generate a token",
        }
    }
}

/// All refresh tokens and families. Not synchronised: keep it behind a lock
/// so that a rotation is atomic.
#[derive(Debug, Default)]
pub struct SessionStore {
    tokens: HashMap<String, TokenRecord>,
    families: HashMap<String, Family>,
    inserts: usize,
}

impl SessionStore {
    /// Starts a new family for `user` (a login), bound to the DPoP key
    /// `jkt` if given, and returns its first token.
    pub fn start_family(
        &mut self,
        user: &str,
        now_ms: u64,
        ttl_ms: u64,
        jkt: Option<&str>,
    ) -> Result<Issued, getrandom::Error> {
        let family = random_id(ID_BYTES)?;
        let token = random_id(REFRESH_TOKEN_BYTES)?;
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        self.families.insert(
            family.clone(),
            Family {
                user: user.to_string(),
                revoked: false,
                latest: token.clone(),
                keep_until_ms: expires_at_ms,
                jkt: jkt.map(str::to_string),
            },
        );
        self.insert_token(&token, &family, expires_at_ms, now_ms);
        Ok(Issued {
            refresh_token: token,
            family,
            user: user.to_string(),
            jkt: jkt.map(str::to_string),
        })
    }

    /// Exchanges `token` according to the rotation rules. A bound family's
    /// key is checked first: on a mismatch nothing changes.
    pub fn refresh(
        &mut self,
        token: &str,
        now_ms: u64,
        ttl_ms: u64,
        grace_ms: u64,
        key: ProofKey<'_>,
    ) -> Result<RefreshOutcome, RefreshError> {
        let (family_id, state, expires_at_ms) = match self.tokens.get(token) {
            Some(r) => (r.family.clone(), r.state, r.expires_at_ms),
            None => return Err(RefreshError::Invalid),
        };
        let Some(family) = self.families.get_mut(&family_id) else {
            return Err(RefreshError::Invalid);
        };
        if let Some(bound) = family.jkt.as_deref() {
            match key {
                ProofKey::Unchecked => {}
                ProofKey::Absent => return Err(RefreshError::ProofMissing),
                ProofKey::Jkt(presented) if presented != bound => {
                    return Err(RefreshError::KeyMismatch)
                }
                ProofKey::Jkt(_) => {}
            }
        }
        let jkt = family.jkt.clone();
        if family.revoked {
            return Err(RefreshError::Revoked);
        }
        if let TokenState::Rotated { at_ms } = state {
            if grace_ms > 0 && now_ms.saturating_sub(at_ms) <= grace_ms {
                let latest = family.latest.clone();
                let user = family.user.clone();
                return match self.tokens.get(&latest) {
                    Some(r) if r.expires_at_ms > now_ms => Ok(RefreshOutcome::GraceReuse(Issued {
                        refresh_token: latest,
                        family: family_id,
                        user,
                        jkt,
                    })),
                    _ => Err(RefreshError::Expired),
                };
            }
            family.revoked = true;
            return Err(RefreshError::ReuseDetected);
        }
        if expires_at_ms <= now_ms {
            return Err(RefreshError::Expired);
        }
        let successor = random_id(REFRESH_TOKEN_BYTES).map_err(RefreshError::Random)?;
        let successor_expiry = now_ms.saturating_add(ttl_ms);
        family.latest = successor.clone();
        family.keep_until_ms = family.keep_until_ms.max(successor_expiry);
        let user = family.user.clone();
        if let Some(r) = self.tokens.get_mut(token) {
            r.state = TokenState::Rotated { at_ms: now_ms };
        }
        self.insert_token(&successor, &family_id, successor_expiry, now_ms);
        Ok(RefreshOutcome::Rotated(Issued {
            refresh_token: successor,
            family: family_id,
            user,
            jkt,
        }))
    }

    /// Family id of a known refresh token (whatever its state).
    pub fn family_of(&self, token: &str) -> Option<String> {
        self.tokens.get(token).map(|r| r.family.clone())
    }

    /// Revokes a family; returns whether it existed and was active.
    pub fn revoke_family(&mut self, family: &str) -> bool {
        match self.families.get_mut(family) {
            Some(f) if !f.revoked => {
                f.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Whether access tokens of `family` may still be accepted.
    pub fn family_active(&self, family: &str) -> bool {
        self.families.get(family).is_some_and(|f| !f.revoked)
    }

    /// Keeps a family's record while an access token minted for it lives.
    pub fn note_access_token(&mut self, family: &str, expires_at_ms: u64) {
        if let Some(f) = self.families.get_mut(family) {
            f.keep_until_ms = f.keep_until_ms.max(expires_at_ms);
        }
    }

    /// Forgets every token and family.
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.families.clear();
        self.inserts = 0;
    }

    /// Number of families currently stored (for diagnostics).
    pub fn family_count(&self) -> usize {
        self.families.len()
    }

    fn insert_token(&mut self, token: &str, family: &str, expires_at_ms: u64, now_ms: u64) {
        self.tokens.insert(
            token.to_string(),
            TokenRecord {
                family: family.to_string(),
                expires_at_ms,
                state: TokenState::Active,
            },
        );
        self.inserts += 1;
        if self.inserts >= PRUNE_EVERY {
            self.inserts = 0;
            self.prune(now_ms);
        }
    }

    /// Drops records that can no longer matter: expired tokens and families
    /// with no live token left.
    fn prune(&mut self, now_ms: u64) {
        self.tokens.retain(|_, r| r.expires_at_ms > now_ms);
        self.families.retain(|_, f| f.keep_until_ms > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_then_reuse_revokes_family() {
        let mut s = SessionStore::default();
        let first = s
            .start_family("user1", 1_000, 10_000, None)
            .expect("random");
        let RefreshOutcome::Rotated(second) = s
            .refresh(&first.refresh_token, 2_000, 10_000, 0, ProofKey::Unchecked)
            .expect("ok")
        else {
            panic!("expected rotation");
        };
        assert_eq!(second.family, first.family);
        assert!(matches!(
            s.refresh(&first.refresh_token, 3_000, 10_000, 0, ProofKey::Unchecked),
            Err(RefreshError::ReuseDetected)
        ));
        assert!(!s.family_active(&first.family));
        assert!(matches!(
            s.refresh(&second.refresh_token, 3_000, 10_000, 0, ProofKey::Unchecked),
            Err(RefreshError::Revoked)
        ));
    }

    #[test]
    fn grace_returns_latest() {
        let mut s = SessionStore::default();
        let first = s.start_family("user1", 0, 10_000, None).expect("random");
        let RefreshOutcome::Rotated(second) = s
            .refresh(&first.refresh_token, 100, 10_000, 500, ProofKey::Unchecked)
            .expect("ok")
        else {
            panic!("expected rotation");
        };
        let again = s
            .refresh(&first.refresh_token, 400, 10_000, 500, ProofKey::Unchecked)
            .expect("grace");
        assert_eq!(again, RefreshOutcome::GraceReuse(second));
        assert!(s.family_active(&first.family));
        assert!(matches!(
            s.refresh(&first.refresh_token, 700, 10_000, 500, ProofKey::Unchecked),
            Err(RefreshError::ReuseDetected)
        ));
    }

    #[test]
    fn bound_family_needs_its_key_and_keeps_it() {
        let mut s = SessionStore::default();
        let first = s
            .start_family("user1", 0, 10_000, Some("k1"))
            .expect("random");
        assert_eq!(first.jkt.as_deref(), Some("k1"));
        for key in [ProofKey::Absent, ProofKey::Jkt("k2")] {
            assert!(s
                .refresh(&first.refresh_token, 100, 10_000, 0, key)
                .is_err());
        }
        // Nothing was rotated nor revoked by the refusals.
        let RefreshOutcome::Rotated(second) = s
            .refresh(&first.refresh_token, 200, 10_000, 0, ProofKey::Jkt("k1"))
            .expect("ok")
        else {
            panic!("expected rotation");
        };
        assert_eq!(second.jkt.as_deref(), Some("k1"));
        assert!(s.family_active(&first.family));
        // A reuse without the key does not revoke the family either.
        assert!(matches!(
            s.refresh(&first.refresh_token, 300, 10_000, 0, ProofKey::Absent),
            Err(RefreshError::ProofMissing)
        ));
        assert!(s.family_active(&first.family));
        // Unbound families take any key (or none).
        let other = s.start_family("user1", 0, 10_000, None).expect("random");
        assert!(s
            .refresh(&other.refresh_token, 100, 10_000, 0, ProofKey::Jkt("k9"))
            .is_ok());
    }

    #[test]
    fn expiry_and_pruning() {
        let mut s = SessionStore::default();
        let first = s.start_family("user1", 0, 1_000, None).expect("random");
        assert!(matches!(
            s.refresh(&first.refresh_token, 1_000, 1_000, 0, ProofKey::Unchecked),
            Err(RefreshError::Expired)
        ));
        s.prune(5_000);
        assert_eq!(s.family_count(), 0);
        assert!(matches!(
            s.refresh(&first.refresh_token, 5_000, 1_000, 0, ProofKey::Unchecked),
            Err(RefreshError::Invalid)
        ));
    }
}

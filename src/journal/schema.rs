//! Numbered schema migrations. `PRAGMA user_version` holds the number of migrations applied;
//! each runs in one immediate transaction; a journal newer than this program is refused.
//! Append new migrations; never edit a released one.

use rusqlite::{Connection, TransactionBehavior};

use super::JournalError;

pub const MIGRATIONS: &[&str] = &[
    // 1: sales, attempts, refunds.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE sales (
    id              TEXT PRIMARY KEY,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    reference       TEXT,
    subject         TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),
    state           TEXT NOT NULL CHECK (state IN
                    ('awaiting_scan','processing','paid','failed','cancelled','expired')),
    reason          TEXT,
    message         TEXT
) STRICT;
-- Open sales are few; the partial index keeps lookups by state independent of history.
CREATE INDEX sales_open ON sales (state) WHERE state IN ('awaiting_scan','processing');
CREATE INDEX sales_created ON sales (created_at);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    sale_id          TEXT NOT NULL REFERENCES sales (id),
    seq              INTEGER NOT NULL,
    request_id       TEXT NOT NULL UNIQUE,
    gateway          TEXT NOT NULL,
    wallet           TEXT NOT NULL,
    code_masked      TEXT NOT NULL,
    -- No longer written (NULL); earlier versions kept the full code until the attempt ended.
    code             TEXT,
    code_hash        TEXT NOT NULL,
    amount_minor     INTEGER NOT NULL CHECK (amount_minor > 0),
    currency         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                     ('pending','succeeded','failed','unknown','cancelling','cancelled')),
    result_code      TEXT,
    result_message   TEXT,
    gateway_trade_id TEXT,
    paid_then_refunded INTEGER NOT NULL DEFAULT 0,
    needs_attention  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deadline_at      TEXT NOT NULL,
    pay_requests     INTEGER NOT NULL DEFAULT 0,
    inquiries        INTEGER NOT NULL DEFAULT 0,
    cancels          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sale_id, seq),
    CHECK ((code IS NULL) OR state IN ('pending','unknown','cancelling'))
) STRICT;
CREATE INDEX attempts_open ON attempts (state) WHERE state IN ('pending','unknown','cancelling');
CREATE INDEX attempts_code_hash ON attempts (code_hash);
CREATE INDEX attempts_sale ON attempts (sale_id);

CREATE TABLE refunds (
    id               INTEGER PRIMARY KEY,
    sale_id          TEXT NOT NULL REFERENCES sales (id),
    attempt_id       INTEGER NOT NULL REFERENCES attempts (id),
    request_id       TEXT NOT NULL UNIQUE,
    amount_minor     INTEGER NOT NULL CHECK (amount_minor > 0),
    currency         TEXT NOT NULL,
    reason           TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending','succeeded','failed','unknown')),
    result_code      TEXT,
    result_message   TEXT,
    gateway_refund_id TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX refunds_open ON refunds (state) WHERE state IN ('pending','unknown');
CREATE INDEX refunds_sale ON refunds (sale_id);
"#,
    // 2: attempts flagged for a person are listed without reading all history.
    r#"
CREATE INDEX attempts_attention ON attempts (id) WHERE needs_attention IS NOT NULL;
"#,
    // 3: events for the register, so a client that reconnects resumes where it left off.
    r#"
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    sale_id TEXT,
    data    TEXT NOT NULL
) STRICT;
CREATE INDEX events_at ON events (at);
"#,
    // 4: reconciliation picks a day's payments by when they ended and refunds by when they
    // were made, without reading all history.
    r#"
CREATE INDEX attempts_updated ON attempts (updated_at);
CREATE INDEX refunds_created ON refunds (created_at);
"#,
    // 5: a sale in doubt the register replaced by a new sale for the same basket: it must end
    // reversed, never paid.
    r#"
CREATE TABLE supersessions (
    sale_id TEXT PRIMARY KEY REFERENCES sales (id),
    by_sale TEXT NOT NULL REFERENCES sales (id),
    at      TEXT NOT NULL
) STRICT;
"#,
    // 6: what is left of an attempt's in-doubt window, and the wall time it was measured at:
    // the window runs on the monotonic clock, and a restart resumes what was left.
    r#"
ALTER TABLE attempts ADD COLUMN budget_left_ms INTEGER;
ALTER TABLE attempts ADD COLUMN budget_at TEXT;
"#,
    // 7: fewer index writes per payment, and no full payment code left anywhere.
    //
    // The indexes on `attempts` after this, each for a query that needs it:
    // - `request_id` (UNIQUE): one request id, one attempt; lookups by request id (refunds,
    //   recovery, a journal's newest attempt);
    // - `(sale_id, seq)` (UNIQUE): a sale's attempts in order, and counting them;
    // - `attempts_open` (partial, open states): the watchdog's sweep and startup;
    // - `attempts_code_hash`: refusing a code used before, on every scan;
    // - `attempts_attention` (partial): attempts flagged for a person;
    // - `attempts_ended` (partial, final states): reconciliation's attempts that ended on a
    //   day. Open attempts updated that day are found through `attempts_open`. An attempt
    //   enters it once, when it ends, not on every write while open.
    //
    // Dropped: `attempts_sale`, which `(sale_id, seq)` already serves; `attempts_updated`,
    // which every attempt write moved; `events_at`, which no query reads.
    //
    // Codes: earlier versions kept the full code of an open attempt. Nothing reads it (a
    // resend happens within the call; recovery inquires and cancels by request id), so it is
    // cleared now, with secure_delete on for this migration.
    r#"
DROP INDEX attempts_sale;
DROP INDEX attempts_updated;
CREATE INDEX attempts_ended ON attempts (updated_at)
    WHERE state IN ('succeeded','failed','cancelled');
DROP INDEX events_at;
UPDATE attempts SET code = NULL WHERE code IS NOT NULL;
"#,
    // 8: what operators did through the API (the console, or a register's back office):
    // who, when, what, the answer they got. `request_id` is the action's idempotency key:
    // the same key answers the stored result again instead of acting twice. Kept with the
    // books, never pruned.
    r#"
CREATE TABLE operator_actions (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT UNIQUE,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    operator    TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    note        TEXT,
    status      INTEGER NOT NULL,
    result      TEXT NOT NULL
) STRICT;
CREATE INDEX operator_actions_target ON operator_actions (target) WHERE target IS NOT NULL;
"#,
    // 9: what the provider said moved for a paid attempt besides the order amount (from the
    // pay answer or the inquiry that decided it): what the buyer paid, what the store
    // receives, points, the invoiceable amount, the fund channels and the vouchers, minor
    // units of the attempt's currency. The discounts are kept summed as well, by who funds
    // them, for the day report. No row: the provider stated nothing beyond the order.
    // Column names are the table's own, so a join with `attempts` is unambiguous.
    r#"
CREATE TABLE attempt_money (
    attempt_id              INTEGER PRIMARY KEY REFERENCES attempts (id),
    money_source            TEXT NOT NULL CHECK (money_source IN ('pay','inquiry')),
    buyer_paid_minor        INTEGER CHECK (buyer_paid_minor >= 0),
    received_minor          INTEGER CHECK (received_minor >= 0),
    point_minor             INTEGER CHECK (point_minor >= 0),
    invoice_minor           INTEGER CHECK (invoice_minor >= 0),
    merchant_discount_minor INTEGER NOT NULL CHECK (merchant_discount_minor >= 0),
    platform_discount_minor INTEGER NOT NULL CHECK (platform_discount_minor >= 0),
    fund_bills              TEXT NOT NULL,
    vouchers                TEXT NOT NULL,
    money_at                TEXT NOT NULL
) STRICT;
"#,
    // 10: what the register said about a sale's basket for the provider's campaigns: the
    // discountable and undiscountable parts, the goods, the cashier; JSON of minor units in
    // the sale's currency. The cashier is kept apart too, for counting by cashier. No row: the
    // register said nothing of it.
    r#"
CREATE TABLE sale_baskets (
    sale_id     TEXT PRIMARY KEY REFERENCES sales (id),
    operator_id TEXT,
    basket      TEXT NOT NULL
) STRICT;
"#,
    // 11: shifts. A shift covers the sales created from its opening to its closing; closing
    // numbers its Z-report: the next number after the highest given, in the closing's
    // transaction, so numbers never repeat (UNIQUE) and never skip. The report is kept as it
    // was closed, for reprints. At most one shift is open.
    r#"
CREATE TABLE shifts (
    id        INTEGER PRIMARY KEY,
    opened_at TEXT NOT NULL,
    opened_by TEXT,
    closed_at TEXT,
    z_number  INTEGER UNIQUE CHECK (z_number >= 1),
    report    TEXT,
    CHECK ((closed_at IS NULL) = (z_number IS NULL) AND (z_number IS NULL) = (report IS NULL))
) STRICT;
CREATE UNIQUE INDEX shifts_one_open ON shifts ((closed_at IS NULL)) WHERE closed_at IS NULL;
"#,
    // 12: which merchant key signed an attempt's pay request (an AMS key version, a key's
    // fingerprint, an app certificate's SN): after a key rotation the journal tells which
    // key each payment went out under. NULL for attempts written before.
    r#"
ALTER TABLE attempts ADD COLUMN signing_key TEXT;
"#,
    // 13: how the customer pays an attempt: NULL for a scanned payment code, a code the
    // merchant presented (an order's QR, an entry-code payment) with what the customer scans
    // (or is sent to) and until when, or a member's auto-debit.
    r#"
ALTER TABLE attempts ADD COLUMN method TEXT CHECK (method IN ('order_code','entry_code','member'));
ALTER TABLE attempts ADD COLUMN presented TEXT;
ALTER TABLE attempts ADD COLUMN presented_expires_at TEXT;
"#,
    // 14: members' auto-debit bindings (`journal/members.rs`). Tokens are stored only sealed
    // (AES-256-GCM, the key id beside them); a binding is bound exactly when it holds an
    // access token.
    r#"
CREATE TABLE member_bindings (
    member_id          TEXT PRIMARY KEY,
    wallet             TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('awaiting_approval','bound','revoked')),
    auth_state         TEXT,
    login_id           TEXT,
    key_id             TEXT,
    access_token       BLOB,
    access_expires_at  TEXT,
    refresh_token      BLOB,
    refresh_expires_at TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK ((state = 'bound') = (access_token IS NOT NULL)),
    CHECK (access_token IS NULL OR key_id IS NOT NULL)
) STRICT;
CREATE INDEX member_bindings_expiring ON member_bindings (access_expires_at) WHERE state = 'bound';
"#,
    // 15: an auth code is exchanged write-before-send (docs/protocol.md §18): `exchanging`
    // holds it sealed (as tokens are) until the answer's tokens replace it, so a crash
    // between the wallet's answer and the write is retried or reported, never half-stored.
    // `failed`: the wallet refused the code. `result_code`/`reason`: the wallet's code and
    // what to do; `attention`: why a person must look (a failed exchange or refresh), cleared
    // when the member binds again or is revoked. A CHECK changes, so the table is rebuilt.
    r#"
CREATE TABLE member_bindings_v15 (
    member_id          TEXT PRIMARY KEY,
    wallet             TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN
                       ('awaiting_approval','exchanging','bound','failed','revoked')),
    auth_state         TEXT,
    login_id           TEXT,
    key_id             TEXT,
    access_token       BLOB,
    access_expires_at  TEXT,
    refresh_token      BLOB,
    refresh_expires_at TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    auth_code          BLOB,
    result_code        TEXT,
    reason             TEXT,
    attention          TEXT,
    CHECK ((state = 'bound') = (access_token IS NOT NULL)),
    CHECK ((state = 'exchanging') = (auth_code IS NOT NULL)),
    CHECK (access_token IS NULL OR key_id IS NOT NULL),
    CHECK (auth_code IS NULL OR key_id IS NOT NULL)
) STRICT;
INSERT INTO member_bindings_v15 (member_id, wallet, state, auth_state, login_id, key_id,
    access_token, access_expires_at, refresh_token, refresh_expires_at, created_at, updated_at)
    SELECT member_id, wallet, state, auth_state, login_id, key_id, access_token,
    access_expires_at, refresh_token, refresh_expires_at, created_at, updated_at
    FROM member_bindings;
DROP TABLE member_bindings;
ALTER TABLE member_bindings_v15 RENAME TO member_bindings;
CREATE INDEX member_bindings_expiring ON member_bindings (access_expires_at) WHERE state = 'bound';
"#,
];

pub fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    // A migration that clears data (7: payment codes) zeroes what it frees.
    conn.pragma_update(None, "secure_delete", "ON")?;
    let result = apply(conn);
    conn.pragma_update(None, "secure_delete", "FAST")?;
    result
}

fn apply(conn: &mut Connection) -> Result<(), JournalError> {
    let known = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > known {
        return Err(JournalError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

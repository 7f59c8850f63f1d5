//! The schema and every statement, built once per store for its table names. Each statement is
//! one round trip: the ones that must tell "gone" from "superseded" from "too large" answer all
//! of it in one row (data-modifying CTEs), so the happy path never needs a second query.

/// The statements of one store.
pub(crate) struct Sql {
    pub(crate) migrate: String,
    pub(crate) create: String,
    pub(crate) load: String,
    pub(crate) delete_expired: String,
    pub(crate) ttl: String,
    pub(crate) save: String,
    pub(crate) save_why: String,
    pub(crate) touch: String,
    pub(crate) destroy: String,
    pub(crate) supersede: String,
    pub(crate) sweep: String,
    pub(crate) sweep_owners: String,
    pub(crate) owner_index: String,
    pub(crate) owner_unindex: String,
    pub(crate) owner_entries: String,
    /// An admission's read, under the owner's lock: the entries that have not lapsed.
    pub(crate) owner_admit_read: String,
    /// An admission's write: removes the entries named, then writes the entry.
    pub(crate) owner_admit_write: String,
    /// A refresh: rewrites the entry only if it is there.
    pub(crate) owner_refresh: String,
    pub(crate) scan: String,
}

/// An update of the live row under `$1` that is not a supersede marker (`set` is its `SET`
/// list), answering `(found, superseded, updated)` in one row: the row is locked first, so the
/// answer describes the row the update saw.
fn guarded_update(t: &str, set: &str) -> String {
    format!(
        "WITH cur AS (
             SELECT key, successor FROM {t}
             WHERE key = $1 AND expires_at > now() FOR UPDATE),
         upd AS (
             UPDATE {t} s SET {set}
             FROM cur WHERE s.key = cur.key AND cur.successor IS NULL
             RETURNING 1)
         SELECT (SELECT count(*) FROM cur),
                (SELECT count(*) FROM cur WHERE successor IS NOT NULL),
                (SELECT count(*) FROM upd)"
    )
}

/// Whether `name` is a table name this store accepts: an identifier (letters, digits, `_`, not
/// starting with a digit, at most 50 bytes so the derived names fit Postgres's 63), optionally
/// schema-qualified (`schema.table`).
pub(crate) fn valid_table(name: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 50
            && !s.as_bytes()[0].is_ascii_digit()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    match name.split_once('.') {
        Some((schema, table)) => ident(schema) && ident(table),
        None => ident(name),
    }
}

/// The SQL a DBA runs to create the schema by hand (what [`crate::PostgresStore::migrate`]
/// runs), for the table `table`.
pub fn schema(table: &str) -> String {
    let (t, o) = names(table);
    let (ti, oi, ou) = index_names(table);
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
    key        text PRIMARY KEY,
    data       jsonb NOT NULL,
    expire     bigint,
    max_age    bigint NOT NULL,
    created    bigint,
    successor  text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {ti} ON {t} (expires_at);
CREATE TABLE IF NOT EXISTS {o} (
    owner  text NOT NULL,
    handle text NOT NULL,
    key    text NOT NULL,
    since  bigint NOT NULL,
    seen   bigint NOT NULL,
    device text,
    until  bigint NOT NULL,
    PRIMARY KEY (owner, handle)
);
CREATE INDEX IF NOT EXISTS {oi} ON {o} (until);
CREATE INDEX IF NOT EXISTS {ou} ON {o} (key);
"
    )
}

/// The quoted names of the sessions table and its owner-index table.
fn names(table: &str) -> (String, String) {
    let quote = |s: &str| {
        s.split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    };
    (quote(table), quote(&format!("{table}_owners")))
}

/// The index names (unqualified: an index lives in its table's schema).
fn index_names(table: &str) -> (String, String, String) {
    let base = table.rsplit('.').next().unwrap_or(table);
    (
        format!("\"{base}_expires_at\""),
        format!("\"{base}_owners_until\""),
        format!("\"{base}_owners_key\""),
    )
}

impl Sql {
    pub(crate) fn new(table: &str) -> Sql {
        let (t, o) = names(table);
        // Writes an entry ($1 owner, $3 handle, ...); its time never shrinks.
        let upsert = format!(
            "INSERT INTO {o} AS e (owner, handle, key, since, seen, device, until)
                 VALUES ($1, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (owner, handle) DO UPDATE SET key = EXCLUDED.key,
                     since = EXCLUDED.since, seen = EXCLUDED.seen, device = EXCLUDED.device,
                     until = GREATEST(e.until, EXCLUDED.until)"
        );
        let ms = "* interval '1 millisecond'";
        let merged = "(CASE WHEN $2 THEN $3::jsonb ELSE (data - $4::text[]) || $3::jsonb END)";
        let size = format!(
            "(SELECT coalesce(sum(octet_length(k) + octet_length(v)), 0)
              FROM jsonb_each_text({merged}) AS e(k, v))"
        );
        Sql {
            migrate: schema(table),
            // An expired row counts as nothing: a create takes its place.
            create: format!(
                "INSERT INTO {t} AS s (key, data, expire, max_age, created, successor, expires_at)
                 VALUES ($1, $2, $3, $4, $5, NULL, now() + $6::bigint {ms})
                 ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, expire = EXCLUDED.expire,
                     max_age = EXCLUDED.max_age, created = EXCLUDED.created, successor = NULL,
                     expires_at = EXCLUDED.expires_at
                 WHERE s.expires_at <= now()
                 RETURNING 1"
            ),
            // Reads the row and whether it is live (a read: it works on a read-only server).
            load: format!(
                "SELECT data, expire, max_age, created, successor, expires_at > now() FROM {t}
                 WHERE key = $1"
            ),
            // The lazy delete of a row a load found expired.
            delete_expired: format!("DELETE FROM {t} WHERE key = $1 AND expires_at <= now()"),
            // The time a row (record or marker) has left, for tests and monitoring.
            ttl: format!(
                "SELECT (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint FROM {t}
                 WHERE key = $1 AND expires_at > now()"
            ),
            // Applies the delta to the live, unsuperseded row if the result fits the limit, in
            // one UPDATE: `(data - removed) || set` merges per top-level key, computed from the
            // row as it is when the update runs (a concurrent save is waited for and merged
            // over, never lost). The size is what a create counts: each key's bytes plus its
            // value's JSON text. No row: `save_why` tells gone from superseded from too large.
            save: format!(
                "UPDATE {t} SET data = {merged}, expire = $5, max_age = $6, created = $7,
                     expires_at = now() + $8::bigint {ms}
                 WHERE key = $1 AND expires_at > now() AND successor IS NULL
                   AND {size} <= $9
                 RETURNING 1"
            ),
            // Why a save wrote nothing: (superseded, size of the merged data), no row if gone.
            save_why: format!(
                "SELECT successor IS NOT NULL, {size} FROM {t}
                 WHERE key = $1 AND expires_at > now()"
            ),
            touch: guarded_update(
                &t,
                &format!(
                    "expire = $2, max_age = $3, created = $4, expires_at = now() + $5::bigint {ms}"
                ),
            ),
            // What was there: the successor of a live marker, whether the row was live.
            destroy: format!(
                "DELETE FROM {t} WHERE key = $1 RETURNING successor, expires_at > now()"
            ),
            supersede: guarded_update(
                &t,
                &format!(
                    "successor = $2, data = '{{}}'::jsonb, expires_at = now() + $3::bigint {ms}"
                ),
            ),
            // A batch of expired rows (`SKIP LOCKED`: two sweepers never wait on each other).
            sweep: format!(
                "DELETE FROM {t} WHERE key IN (
                     SELECT key FROM {t} WHERE expires_at <= now()
                     LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING 1"
            ),
            sweep_owners: format!(
                "DELETE FROM {o} WHERE (owner, handle) IN (
                     SELECT owner, handle FROM {o} WHERE until <= $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING 1"
            ),
            // Drops the owner's lapsed entries (but the one written) and writes the entry; its
            // time never shrinks.
            owner_index: format!(
                "WITH gone AS (
                     DELETE FROM {o} WHERE owner = $1 AND until <= $2 AND handle <> $3)
 {upsert}"
            ),
            owner_unindex: format!(
                "DELETE FROM {o} WHERE owner = $1 AND (until <= $2 OR handle = ANY($3))"
            ),
            // A batch of live keys after `$1`, in key order (the primary key's index).
            scan: format!(
                "SELECT key FROM {t} WHERE key > $1 AND expires_at > now() ORDER BY key LIMIT $2"
            ),
            // Entries with their live record's time left (NULL: no live record), in one query.
            owner_entries: format!(
                "SELECT e.handle, e.key, e.since, e.seen, e.device, e.until,
                        (EXTRACT(EPOCH FROM (s.expires_at - now())) * 1000)::bigint
                 FROM {o} e
                 LEFT JOIN {t} s ON s.key = e.key AND s.expires_at > now()
                                AND s.successor IS NULL AND isfinite(s.expires_at)
                 WHERE e.owner = $1 AND e.until > $2"
            ),
            // An admission under a limit: the read under the owner's lock, then the write
            // (the entries named in $9 go), and a refresh that rewrites only an entry that is there.
            owner_admit_read: format!(
                "SELECT handle, key, since, seen, device FROM {o}
                 WHERE owner = $1 AND until > $2"
            ),
            owner_admit_write: format!(
                "WITH gone AS (
                     DELETE FROM {o} WHERE owner = $1 AND handle <> $3
                         AND (until <= $2 OR handle = ANY($9)))
 {upsert}"
            ),
            owner_refresh: format!(
                "UPDATE {o} AS e SET key = $4, since = $5, seen = $6, device = $7,
                     until = GREATEST(e.until, $8)
                 WHERE owner = $1 AND handle = $3 AND until > $2
                 RETURNING 1"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        for ok in ["sessions", "app.sessions", "_s1", "S"] {
            assert!(valid_table(ok), "{ok}");
        }
        for bad in [
            "",
            "1s",
            "a-b",
            "a.b.c",
            "s; drop table x",
            "\"s\"",
            &"x".repeat(51),
        ] {
            assert!(!valid_table(bad), "{bad}");
        }
        let s = schema("app.sessions");
        assert!(s.contains("\"app\".\"sessions\"") && s.contains("\"app\".\"sessions_owners\""));
        assert!(s.contains("\"sessions_expires_at\""));
    }
}
